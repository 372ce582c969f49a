/**
 * The images, checked without a Docker engine (none runs on this project's machines):
 * hadolint lints both Dockerfiles; their structure is read and held to the issue's
 * requirements (multi-stage, CUDA runtime base, Node 20, production dependencies only,
 * the CUDA binaries, non-root, node as PID 1); and the build stage is replayed for real:
 * the files the Dockerfile COPYs, filtered by .dockerignore, compile with the project's
 * TypeScript into the entry points the images and the chart run — one of which, the
 * model fetcher, is then run from that output against a cached model.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureTestModel } from "../../scripts/models.js";
import { REPO_ROOT } from "../helpers/services.js";
import { baseImage, dockerIgnoreMatcher, execForm, last, parseDockerfile, type Dockerfile, type Stage } from "./lib/dockerfile.js";
import { IMAGE_ENTRY_POINTS } from "./lib/images.js";
import { toolPath } from "./lib/tools.js";

const read = (f: string) => readFileSync(path.join(REPO_ROOT, f), "utf8");
const cuda = parseDockerfile(read("Dockerfile.cuda"));
const gateway = parseDockerfile(read("Dockerfile.gateway"));
const ignored = dockerIgnoreMatcher(read(".dockerignore"));

/** The stage whose /app/node_modules the final stage copies. */
function nodeModulesStage(df: Dockerfile): Stage {
  const final = df.stages.at(-1)!;
  const copy = final.instructions.find((i) => i.keyword === "COPY" && /--from=\S+ \/app\/node_modules/.test(i.args));
  assert.ok(copy, "the final stage copies node_modules from a build stage");
  const from = /--from=(\S+)/.exec(copy.args)![1];
  const stage = df.stages.find((s) => s.name === from);
  assert.ok(stage, `stage ${from} exists`);
  return stage;
}

function runCommands(stage: Stage): string {
  return stage.instructions
    .filter((i) => i.keyword === "RUN")
    .map((i) => i.args)
    .join("\n");
}

function commonChecks(df: Dockerfile, entry: string) {
  const final = df.stages.at(-1)!;
  assert.ok(df.stages.length >= 3, "multi-stage: dependencies and build apart from the runtime");
  const user = last(final, "USER");
  assert.ok(user, "the final stage sets USER");
  assert.match(user.args, /^[1-9]\d*(:[1-9]\d*)?$/, "a numeric non-root uid (runAsNonRoot can verify it)");
  const ep = execForm(last(final, "ENTRYPOINT")?.args ?? "");
  const cmd = execForm(last(final, "CMD")?.args ?? "");
  assert.deepEqual(ep, ["node"], "exec-form ENTRYPOINT node: node is PID 1 and gets SIGTERM (not npm, not a shell)");
  assert.deepEqual(cmd, [entry]);
  for (const s of df.stages) {
    assert.doesNotMatch(baseImage(df, s), /alpine|:latest$/, `stage ${s.name}: Debian/Ubuntu based, pinned by tag`);
  }
  const deps = runCommands(nodeModulesStage(df));
  assert.match(deps, /npm ci [^\n]*--omit=dev/, "the runtime's node_modules are production dependencies only");
  assert.doesNotMatch(deps, /npm (install|i) /, "npm ci, from the lock file");
  assert.match(df.globalArgs.NODE_IMAGE ?? "", /^node:24[.-]/, "Node 24, as in CI");
  // No model and no source tree in the runtime: only dist, node_modules and package.json.
  const copies = final.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
  for (const c of copies) {
    assert.match(c, /^(--from=\S+ (\/usr\/local\/bin\/node|\/app\/node_modules|\/app\/dist|\/app\/gateway\/web) |package\.json )/, `runtime COPY ${c}`);
  }
}

describe("Dockerfile.cuda (worker)", () => {
  it("is multi-stage, non-root, starts node directly, production dependencies only", () => {
    commonChecks(cuda, "dist/worker/main.js");
  });

  it("runs on a CUDA runtime base (Ubuntu), with Node 20 copied from the official image", () => {
    const final = cuda.stages.at(-1)!;
    assert.match(baseImage(cuda, final), /^nvidia\/cuda:\d+\.\d+\.\d+-runtime-ubuntu\d+\.\d+$/);
    const nodeCopy = final.instructions.find((i) => i.keyword === "COPY" && i.args.endsWith("/usr/local/bin/node /usr/local/bin/node"));
    assert.ok(nodeCopy);
    const from = /--from=(\S+)/.exec(nodeCopy.args)![1]!;
    const stage = cuda.stages.find((s) => s.name === from)!;
    assert.match(baseImage(cuda, stage), /^node:24[.-]/);
  });

  it("gets node-llama-cpp's CUDA binaries (CUDA 13 and the CUDA 12 fallback) and checks they are there", () => {
    const deps = nodeModulesStage(cuda);
    const run = runCommands(deps);
    assert.doesNotMatch(run, /--omit=optional|--no-optional/, "the CUDA binaries are optional dependencies: keep them");
    for (const rm of run.match(/rm -rf [^&\n]*/g) ?? []) {
      assert.doesNotMatch(rm, /linux-x64-cuda|@node-llama-cpp\/linux-x64(\s|$)/, "the CUDA and CPU packages are not pruned");
    }
    assert.match(run, /test -f node_modules\/@node-llama-cpp\/linux-x64-cuda\/bins\/linux-x64-cuda\/libggml-cuda\.so/);
    assert.match(run, /test -f node_modules\/@node-llama-cpp\/linux-x64-cuda-ext\/bins\/linux-x64-cuda\/fallback\/libggml-cuda\.so/);
    // npm ci installs them on linux/x64 only if the lock file lists them for that platform.
    const lock = JSON.parse(read("package-lock.json")) as { packages: Record<string, { os?: string[]; cpu?: string[] }> };
    for (const pkg of ["linux-x64-cuda", "linux-x64-cuda-ext", "linux-x64"]) {
      const entry = lock.packages[`node_modules/@node-llama-cpp/${pkg}`];
      assert.ok(entry, `package-lock.json has @node-llama-cpp/${pkg}`);
      assert.deepEqual([entry.os, entry.cpu], [["linux"], ["x64"]]);
    }
    const env = deps.instructions
      .filter((i) => i.keyword === "ENV")
      .map((i) => i.args)
      .join(" ");
    assert.match(env, /NODE_LLAMA_CPP_SKIP_DOWNLOAD=true/, "no llama.cpp download or build at install time");
  });

  it("defaults to the GPU and to /models for hf: downloads (the chart's volume)", () => {
    const env = cuda.stages
      .at(-1)!
      .instructions.filter((i) => i.keyword === "ENV")
      .map((i) => i.args)
      .join(" ");
    assert.match(env, /LLAMA_GPU=cuda/);
    assert.match(env, /MODEL_DIR=\/models/);
  });
});

describe("Dockerfile.gateway", () => {
  it("is multi-stage, non-root, starts node directly, production dependencies only", () => {
    commonChecks(gateway, "dist/gateway/main.js");
    assert.match(baseImage(gateway, gateway.stages.at(-1)!), /^node:24[.-]\S*-slim$/);
  });
  it("puts the chat page where the built gateway looks for it (beside dist/gateway/routes: ../web)", () => {
    const final = gateway.stages.at(-1)!;
    assert.ok(final.instructions.some((i) => i.keyword === "COPY" && i.args === "--from=build /app/gateway/web ./dist/gateway/web"));
    assert.ok(existsSync(path.join(REPO_ROOT, "gateway/web/index.html")));
    assert.match(read("gateway/routes/web.ts"), /"\.\.\/web\/index\.html"/, "gateway/routes/web.ts still looks in ../web");
  });
  it("leaves out the llama.cpp binaries, keeps librdkafka's (history reads)", () => {
    const run = runCommands(nodeModulesStage(gateway));
    assert.match(run, /npm ci [^\n]*--omit=dev/);
    assert.match(run, /rm -rf node_modules\/@node-llama-cpp/);
    assert.match(run, /require\('@confluentinc\/kafka-javascript'\)/);
  });
});

describe(".dockerignore", () => {
  it("keeps dependencies, build output, caches, models, git and tests out of the context", () => {
    for (const p of [
      "node_modules",
      "node_modules/pino/package.json",
      "dist/worker/main.js",
      ".cache/models/a.gguf",
      ".git/HEAD",
      "x/y.gguf",
      "test/unit/a.test.ts",
      "local.log",
    ]) {
      assert.ok(ignored(p), `${p} is ignored`);
    }
    for (const p of [
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "worker/main.ts",
      "gateway/main.ts",
      "contracts/config/worker.ts",
      "platform/kafka.ts",
      "scripts/deploy/fetch-model.ts",
    ]) {
      assert.ok(!ignored(p), `${p} is in the context`);
    }
  });
});

describe("hadolint", () => {
  it("passes both Dockerfiles", () => {
    const r = spawnSync(toolPath("hadolint"), ["Dockerfile.cuda", "Dockerfile.gateway"], { cwd: REPO_ROOT, encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
  it("fails a Dockerfile whose last USER is root (the linter is really looking)", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "hadolint-"));
    try {
      writeFileSync(path.join(dir, "Dockerfile"), read("Dockerfile.cuda").replace("USER 10001:10001", "USER root"));
      const r = spawnSync(toolPath("hadolint"), ["Dockerfile"], { cwd: dir, encoding: "utf8" });
      assert.notEqual(r.status, 0);
      assert.match(r.stdout, /DL3002/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the build stage, replayed", { timeout: 240_000 }, () => {
  const ctx = mkdtempSync(path.join(os.tmpdir(), "image-build-"));

  before(() => {
    // What `COPY <src> <dest>` in the build stage brings in, after .dockerignore.
    const build = cuda.stages.find((s) => s.name === "build")!;
    const sources = build.instructions.filter((i) => i.keyword === "COPY" && !i.args.startsWith("--from")).flatMap((i) => i.args.split(" ").slice(0, -1));
    for (const src of sources) {
      assert.ok(existsSync(path.join(REPO_ROOT, src)), `COPY ${src}: exists in the repo`);
      copyFiltered(src);
    }
    // npm ci in the image; here the repo's node_modules stand in for it.
    symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(ctx, "node_modules"), "dir");
  });

  after(() => rmSync(ctx, { recursive: true, force: true }));

  function copyFiltered(rel: string) {
    if (ignored(rel)) return;
    const from = path.join(REPO_ROOT, rel);
    if (statSync(from).isDirectory()) {
      for (const name of readdirSync(from)) copyFiltered(path.posix.join(rel, name));
      return;
    }
    mkdirSync(path.dirname(path.join(ctx, rel)), { recursive: true });
    cpSync(from, path.join(ctx, rel));
  }

  it("compiles into every entry point the images and the chart run", () => {
    execFileSync(process.execPath, [path.join(REPO_ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], {
      cwd: ctx,
      stdio: "pipe",
    });
    for (const entry of IMAGE_ENTRY_POINTS) assert.ok(existsSync(path.join(ctx, entry)), `${entry} is built`);
    assert.ok(!existsSync(path.join(ctx, "dist/test")), "tests are not in the image");
  });

  it("the built model fetcher finds a cached hf: model without the network, where the worker will look", async () => {
    const models = path.join(ctx, "models");
    mkdirSync(models);
    // node-llama-cpp's cache name for this URI (what its downloader writes).
    cpSync(await ensureTestModel(), path.join(models, "hf_ggml-org_models_tinyllamas_stories260K.gguf"));
    const uri = "hf:ggml-org/models/tinyllamas/stories260K.gguf";
    const r = spawnSync(process.execPath, ["dist/scripts/deploy/fetch-model.js"], {
      cwd: ctx,
      encoding: "utf8",
      env: { PATH: process.env.PATH, MODEL: uri, MODEL_DIR: models, HOME: ctx, LOG_LEVEL: "info" },
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /model already in the cache/);
    // The worker resolves MODEL in MODEL_DIR the same way and gets that file.
    const { resolveModelSource } = await import("../../worker/llm.js");
    const { pino } = await import("pino");
    const file = await resolveModelSource(uri, models, pino({ level: "silent" }));
    assert.equal(file, path.join(models, "hf_ggml-org_models_tinyllamas_stories260K.gguf"));

    const missing = spawnSync(process.execPath, ["dist/scripts/deploy/fetch-model.js"], {
      cwd: ctx,
      encoding: "utf8",
      env: { PATH: process.env.PATH, MODEL: path.join(models, "absent.gguf"), HOME: ctx },
    });
    assert.equal(missing.status, 1, "a missing local model file fails the init container");
    const unset = spawnSync(process.execPath, ["dist/scripts/deploy/fetch-model.js"], { cwd: ctx, encoding: "utf8", env: { PATH: process.env.PATH } });
    assert.equal(unset.status, 2);
  });
});
