/**
 * The LangChain package ships as its package.json says: `tsc -p` of its own tsconfig
 * (what `npm pack` runs) builds ESM with declarations, the `exports` entry and `types`
 * exist, and the built entry loads and exports the history class.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { REPO_ROOT } from "../../helpers/services.js";

const PACKAGE = path.join(REPO_ROOT, "packages", "langchain-kafka-history");

describe("@kafka-llm/langchain-kafka-history as built", () => {
  // Inside the repo, so the build resolves @langchain/core from the root's node_modules as an installed copy would.
  const out = path.join(REPO_ROOT, ".cache", `langchain-package-${process.pid}`);
  after(() => rmSync(out, { recursive: true, force: true }));

  it("builds ESM with types, and its exports entry loads", async () => {
    const manifest = JSON.parse(readFileSync(path.join(PACKAGE, "package.json"), "utf8"));
    assert.equal(manifest.type, "module");
    assert.ok(manifest.peerDependencies["@langchain/core"], "@langchain/core is a peer dependency");
    assert.equal(manifest.dependencies, undefined, "no runtime dependencies besides the peer");
    mkdirSync(out, { recursive: true });
    execFileSync(
      process.execPath,
      [path.join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(PACKAGE, "tsconfig.json"), "--outDir", path.join(out, "dist")],
      {
        stdio: "pipe",
      },
    );
    const entry = manifest.exports["."];
    for (const file of [entry.import, entry.types, manifest.types]) assert.ok(existsSync(path.join(out, file)), `${file} was built`);
    const built = await import(pathToFileURL(path.join(out, entry.import)).href);
    assert.equal(typeof built.KafkaChatMessageHistory, "function");
    assert.equal(typeof built.KafkaChatHistoryError, "function");
    const history = new built.KafkaChatMessageHistory({ baseUrl: "http://127.0.0.1:1", sessionId: "c" });
    const { BaseListChatMessageHistory } = await import("@langchain/core/chat_history");
    assert.ok(history instanceof BaseListChatMessageHistory, "a LangChain list chat message history");
    assert.match(readFileSync(path.join(out, entry.types), "utf8"), /KafkaChatMessageHistory/);
  });
});
