/**
 * The committed interface documents (docs/openapi.json, docs/asyncapi.yaml,
 * contracts/schema/*.json) are what the code generates: change a schema, run
 * `npx tsx scripts/interfaces.ts`, commit the result.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { createRequire } from "node:module";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { parse } from "yaml";
import { turnRequestSchema } from "../../../contracts/records/requests.js";
import { interfaceDocuments, staleDocuments } from "../../../scripts/interfaces.js";
import { REPO_ROOT } from "../../helpers/services.js";

describe("interface documents", () => {
  it("the committed files match what the code generates", () => {
    assert.deepEqual(staleDocuments(), [], "run npx tsx scripts/interfaces.ts and commit the result");
  });

  it("a stale file is caught", () => {
    const stale = staleDocuments(path.join(REPO_ROOT, "no-such-dir"));
    assert.deepEqual(stale.sort(), [...interfaceDocuments().keys()].sort());
  });

  it("the AsyncAPI document is valid AsyncAPI 3.0 (the spec's own JSON Schema)", () => {
    const spec = createRequire(import.meta.url)("@asyncapi/specs/schemas/3.0.0-without-$id.json") as object;
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const validate = ajv.compile(spec);
    const doc = parse(readFileSync(path.join(REPO_ROOT, "docs/asyncapi.yaml"), "utf8")) as Record<string, unknown>;
    assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 5), null, 2));
    // The validator does catch a broken document.
    assert.equal(validate({ ...doc, operations: { bad: { action: "publish", channel: { $ref: "#/channels/requests" } } } }), false);
  });

  it("the AsyncAPI document refers to every committed schema, and each parses", () => {
    const doc = parse(readFileSync(path.join(REPO_ROOT, "docs/asyncapi.yaml"), "utf8"));
    assert.equal(doc.asyncapi, "3.0.0");
    const refs: string[] = [];
    for (const channel of Object.values(doc.channels) as any[]) {
      for (const message of Object.values(channel.messages) as any[]) if (message.payload?.schema?.$ref) refs.push(message.payload.schema.$ref);
    }
    const files = [...interfaceDocuments().keys()].filter((f) => f.startsWith("contracts/schema/"));
    assert.deepEqual(refs.map((r) => path.normalize(path.join("docs", r))).sort(), files.sort());
    for (const file of files) assert.equal(JSON.parse(readFileSync(path.join(REPO_ROOT, file), "utf8")).$schema, "http://json-schema.org/draft-07/schema#");
  });

  it("the request schema requires what the worker's schema requires", () => {
    const schema = JSON.parse(readFileSync(path.join(REPO_ROOT, "contracts/schema/chat-request.schema.json"), "utf8"));
    const turn = schema.oneOf.find((s: any) => s.properties.type.const === "turn");
    const shape = turnRequestSchema.shape;
    const required = Object.entries(shape)
      .filter(([, v]) => !v.safeParse(undefined).success)
      .map(([k]) => k);
    assert.deepEqual([...turn.required].sort(), required.sort());
    assert.equal(turn.additionalProperties, false);
  });
});
