/**
 * The worker's grammars on the real llama.cpp (node-llama-cpp's prebuilt binary; no model is
 * needed to parse a grammar): every repetition keyword compiles at MAX_GRAMMAR_REPETITION,
 * a schema over a bound is refused before llama.cpp sees it, and nothing the worker prints
 * about a refused or failed grammar carries the schema's values.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { getLlama, type Llama } from "node-llama-cpp";
import { KafkaLlmError } from "../../../contracts/errors.js";
import { MAX_GRAMMAR_REPETITION as N } from "../../../contracts/grammar-bounds.js";
import { normalizeJsonSchema } from "../../../contracts/grammar-schema.js";
import { GrammarCache, assertParamsWithinGrammarBounds } from "../../../worker/grammar.js";

const SECRET = "SECRET-tenant-enum-5c1e";

/** Over MAX_GRAMMAR_REPETITION and refused by llama.cpp too (minLength > 2000), with the secret as an enum value. */
const HOSTILE = {
  type: "object",
  properties: { kind: { enum: [SECRET, "other"] }, note: { type: "string", minLength: 2500, maxLength: 2500 } },
  required: ["kind", "note"],
};

describe("worker grammars on llama.cpp", { timeout: 120_000 }, () => {
  let llama: Llama;
  before(async () => {
    llama = await getLlama({ gpu: false, build: "never" });
  });
  after(async () => {
    await llama?.dispose();
  });

  const at = (schema: Record<string, unknown>) => normalizeJsonSchema({ type: "object", properties: { v: schema }, required: ["v"] });

  it("compiles every repetition keyword at MAX_GRAMMAR_REPETITION", async () => {
    const cache = new GrammarCache(llama);
    const item = { type: "integer" };
    const shapes: Record<string, Record<string, unknown>> = {
      maxLength: { type: "string", maxLength: N },
      minLength: { type: "string", minLength: N },
      "minLength = maxLength": { type: "string", minLength: N, maxLength: N },
      "minLength 1, maxLength": { type: "string", minLength: 1, maxLength: N },
      maxItems: { type: "array", items: item, maxItems: N },
      minItems: { type: "array", items: item, minItems: N },
      "minItems = maxItems": { type: "array", items: item, minItems: N, maxItems: N },
      "minItems 2, maxItems": { type: "array", items: item, minItems: 2, maxItems: N },
      "prefixItems, maxItems": { type: "array", prefixItems: [{ type: "string" }], items: item, maxItems: N },
      "items of objects": { type: "array", items: { type: "object", properties: { a: { type: "string" } }, required: ["a"] }, maxItems: N },
      maxProperties: { type: "object", additionalProperties: item, maxProperties: N },
      minProperties: { type: "object", additionalProperties: item, minProperties: N },
      "nested at the bound": { type: "array", items: { type: "array", items: { type: "string", maxLength: N }, maxItems: N }, maxItems: N },
    };
    for (const [name, schema] of Object.entries(shapes)) {
      await assert.doesNotReject(cache.forSchema(at(schema)), name);
    }
  });

  it("where llama.cpp refuses a maxItems of 1999, which passed the gateway before (issue 24)", async () => {
    // What the bound guards against; llama.cpp prints this (secret-free) grammar to stderr.
    const over = at({ type: "array", items: { type: "integer" }, maxItems: 1999 });
    await assert.rejects(llama.createGrammarForJsonSchema(over as never), /Failed to parse grammar/);
  });

  it("refuses the left recursion llama.cpp refuses, and compiles recursion behind a character", async () => {
    const cache = new GrammarCache(llama);
    const left = normalizeJsonSchema({ $defs: { A: { oneOf: [{ $ref: "#/$defs/A" }, { type: "string" }] } }, $ref: "#/$defs/A" });
    await assert.rejects(llama.createGrammarForJsonSchema(left as never), /Failed to parse grammar/);
    assert.throws(
      () => cache.forSchema(left),
      (err: unknown) => err instanceof KafkaLlmError && err.code === "invalid_request" && /left recursion/.test(err.message),
    );
    const list = {
      $defs: { Node: { type: "object", properties: { next: { anyOf: [{ $ref: "#/$defs/Node" }, { type: "null" }] } }, required: ["next"] } },
      $ref: "#/$defs/Node",
    };
    await assert.doesNotReject(cache.forSchema(normalizeJsonSchema(list)));
  });

  it("compiles what the grammar keeps of a schema with bounds, a pattern, formats, allOf and untyped values, and the grammar holds its shape", async () => {
    const cache = new GrammarCache(llama);
    const schema = normalizeJsonSchema({
      type: "object",
      properties: {
        city: { type: "string", pattern: "^[A-Z][a-z]+$" },
        days: { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 8 },
        email: { type: "string", format: "email" },
        anything: {},
        both: { allOf: [{ type: "string" }, { minLength: 2 }] },
        self: { $ref: "#" },
      },
      required: ["city", "days", "email", "anything", "both", "self"],
    });
    const grammar = await cache.forSchema(schema);
    // The grammar's own parse holds a value to what it keeps: the shape, not the bounds.
    const value = { city: "oslo", days: 99, email: "x", anything: [1, { a: null }], both: "b", self: { any: true } };
    assert.deepEqual(grammar.parse(JSON.stringify(value)), value);
    assert.throws(() => grammar.parse(JSON.stringify({ ...value, days: "7" })));
  });

  it("refuses a schema over a bound before compiling it, with invalid_request and no value of the schema", () => {
    const cache = new GrammarCache(llama);
    assert.throws(
      () => cache.forSchema(normalizeJsonSchema(HOSTILE)),
      (err: unknown) =>
        err instanceof KafkaLlmError &&
        err.code === "invalid_request" &&
        /minLength is 2500, over the bound of 1000/.test(err.message) &&
        !err.message.includes(SECRET),
    );
    const params = { response_format: { type: "json_schema" as const, json_schema: { name: "out", schema: normalizeJsonSchema(HOSTILE) } } };
    assert.throws(
      () => assertParamsWithinGrammarBounds(params),
      (err: unknown) =>
        err instanceof KafkaLlmError &&
        err.code === "invalid_request" &&
        err.message.startsWith("response_format: minLength is 2500") &&
        !err.message.includes("note"),
    );
  });

  it("reports a grammar node-llama-cpp fails to build without its text (generation_failed)", async () => {
    const failing = {
      createGrammarForJsonSchema: () => Promise.reject(new Error(`Failed to parse grammar: root ::= "${SECRET}"`)),
    } as unknown as Llama;
    const err = await new GrammarCache(failing).forSchema(normalizeJsonSchema({ enum: [SECRET] })).catch((e: unknown) => e);
    assert.ok(err instanceof KafkaLlmError);
    assert.equal(err.code, "generation_failed");
    assert.ok(!err.message.includes(SECRET) && err.cause === undefined, err.message);
  });
});

describe("a hostile schema's refusal as the worker logs it", { timeout: 120_000 }, () => {
  it("carries no enum value to stdout or stderr (llama.cpp prints a grammar it refuses)", () => {
    // A process of its own: llama.cpp writes a refused grammar to the process's stderr. A
    // file, not -e: node-llama-cpp tests its binary in a child started with our arguments.
    const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
    const script = `
      import { getLlama } from ${JSON.stringify(import.meta.resolve("node-llama-cpp"))};
      import { createLogger } from ${url("../../../platform/logger.ts")};
      import { GrammarCache } from ${url("../../../worker/grammar.ts")};
      import { normalizeJsonSchema } from ${url("../../../contracts/grammar-schema.ts")};
      const logger = createLogger("worker", "debug");
      const llama = await getLlama({ gpu: false, build: "never", logger: (level, message) => logger.error(message) });
      try {
        await new GrammarCache(llama).forSchema(normalizeJsonSchema(${JSON.stringify(HOSTILE)}));
        console.log("COMPILED");
      } catch (err) {
        // As worker/turn.ts logs a failed generation.
        logger.warn({ request_id: "r1", code: err.code, err }, "generation failed");
        console.log("REFUSED " + err.code);
      }
      await llama.dispose();
    `;
    const dir = mkdtempSync(path.join(tmpdir(), "grammar-log-"));
    const file = path.join(dir, "refuse.mts");
    writeFileSync(file, script);
    const child = spawnSync(process.execPath, ["--import", "tsx", file], { encoding: "utf8", timeout: 60_000 });
    rmSync(dir, { recursive: true, force: true });
    const output = child.stdout + child.stderr;
    assert.equal(child.status, 0, output);
    assert.match(child.stdout, /REFUSED invalid_request/);
    assert.match(child.stdout, /"msg":"generation failed"/);
    assert.ok(!output.includes(SECRET), output);
  });
});
