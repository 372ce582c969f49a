import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MAX_GRAMMAR_ENUM_VALUES,
  MAX_GRAMMAR_REPETITION,
  MAX_GRAMMAR_RULES,
  MAX_GRAMMAR_SUBSCHEMAS,
  MAX_GRAMMAR_TEXT_CHARS,
  checkGrammarBounds,
  requestSchemas,
} from "../../../contracts/grammar-bounds.js";
import { generationParamsSchema } from "../../../contracts/generation-params.js";
import { normalizeJsonSchema } from "../../../contracts/grammar-schema.js";
import { parseCompletionBody } from "../../../gateway/openai/request.js";
import { ApiError } from "../../../gateway/errors.js";

const SECRET = "SECRET-enum-value-9f3a";

function objectOf(n: number, property: (i: number) => Record<string, unknown>): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) properties[`field_${i}`] = property(i);
  return { type: "object", properties, required: Object.keys(properties) };
}

function check(schema: Record<string, unknown>) {
  return checkGrammarBounds([{ path: ["response_format", "json_schema", "schema"], schema: normalizeJsonSchema(schema) }]);
}

describe("grammar bounds of a request's schemas", () => {
  it("measures what the grammar holds: a keyword checked after generation costs it nothing", () => {
    const plain = check({ type: "object", properties: { when: { type: "string", format: "date" }, n: { type: "integer" } }, required: ["when", "n"] });
    // The format is the grammar's; the length beside it and the bounds are checked after generation.
    const checked = check({
      type: "object",
      properties: { when: { type: "string", format: "date", maxLength: 5000 }, n: { type: "integer", minimum: 1, exclusiveMaximum: 10, multipleOf: 3 } },
      required: ["when", "n"],
    });
    assert.equal(checked.problem, null);
    assert.deepEqual(checked.estimate, plain.estimate);
    assert.match(check({ type: "string", maxLength: 5000 }).problem?.message ?? "", /maxLength is 5000, over the bound of 1000/);
  });

  it("passes an ordinary schema, with a small estimate", () => {
    const { estimate, problem } = check({
      type: "object",
      properties: {
        name: { type: "string", maxLength: 16 },
        colour: { enum: ["black", "white"] },
        tags: { type: "array", items: { type: "string" }, maxItems: 5 },
      },
      required: ["name", "colour", "tags"],
    });
    assert.equal(problem, null);
    assert.equal(estimate.subschemas, 5);
    assert.equal(estimate.enumValues, 2);
    assert.ok(estimate.rules > 0 && estimate.rules < 200, String(estimate.rules));
  });

  for (const [key, schema] of [
    ["maxLength", (n: number) => ({ type: "string", maxLength: n })],
    ["minLength", (n: number) => ({ type: "string", minLength: n })],
    ["maxItems", (n: number) => ({ type: "array", items: { type: "integer" }, maxItems: n })],
    ["minItems", (n: number) => ({ type: "array", items: { type: "integer" }, minItems: n })],
    ["maxProperties", (n: number) => ({ type: "object", additionalProperties: { type: "integer" }, maxProperties: n })],
    ["minProperties", (n: number) => ({ type: "object", additionalProperties: { type: "integer" }, minProperties: n })],
  ] as const) {
    it(`holds ${key} to MAX_GRAMMAR_REPETITION, naming where and the bound`, () => {
      assert.equal(check(objectOf(1, () => schema(MAX_GRAMMAR_REPETITION))).problem, null);
      // 2,001-32,000 passed before and failed in llama.cpp (issue 24).
      for (const n of [MAX_GRAMMAR_REPETITION + 1, 2001, 32_000]) {
        const { problem } = check(objectOf(1, () => schema(n)));
        assert.ok(problem);
        assert.equal(problem.path.join("."), `response_format.json_schema.schema.properties.field_0.${key}`);
        assert.match(problem.message, new RegExp(`^${key} is ${n}, over the bound of ${MAX_GRAMMAR_REPETITION} \\(MAX_GRAMMAR_REPETITION`));
      }
    });
  }

  it("refuses thousands of properties with distinct bounds (issue 24) by the rule estimate, cheaply", () => {
    const hostile = normalizeJsonSchema(objectOf(3000, (i) => ({ type: "string", maxLength: 1000 - (i % 1000) })));
    const started = performance.now();
    const { estimate, problem } = checkGrammarBounds([{ path: ["response_format", "json_schema", "schema"], schema: hostile }]);
    const took = performance.now() - started;
    assert.ok(estimate.rules > 500_000, String(estimate.rules));
    assert.ok(problem);
    assert.deepEqual(problem.path, ["response_format", "json_schema", "schema"]);
    assert.match(problem.message, new RegExp(`about ${estimate.rules} rules, over the bound of ${MAX_GRAMMAR_RULES} \\(MAX_GRAMMAR_RULES\\)`));
    // A few ms warm; generous for a loaded 2-core runner. Compiling it took seconds.
    assert.ok(took < 500, `the check took ${took} ms`);
  });

  it("counts a string rule once per distinct bounds, as node-llama-cpp names them", () => {
    const same = check(objectOf(100, () => ({ type: "string", maxLength: 1000 }))).estimate.rules;
    const distinct = check(objectOf(100, (i) => ({ type: "string", maxLength: 1000 - i }))).estimate.rules;
    assert.ok(same < 5000, String(same));
    assert.ok(distinct > 90_000, String(distinct));
    // Required repetitions are copied inline, not made rules: far cheaper than optional ones.
    const required = check(objectOf(100, (i) => ({ type: "string", minLength: 1000 - i, maxLength: 1000 - i }))).estimate.rules;
    assert.ok(required < 10_000, String(required));
  });

  it("holds subschemas, enum values and text to their bounds, over all the schemas together", () => {
    const many = check(objectOf(MAX_GRAMMAR_SUBSCHEMAS, () => ({ type: "integer" })));
    assert.match(
      many.problem!.message,
      new RegExp(`${MAX_GRAMMAR_SUBSCHEMAS + 1} subschemas, over the bound of ${MAX_GRAMMAR_SUBSCHEMAS} \\(MAX_GRAMMAR_SUBSCHEMAS\\)`),
    );
    const values = Array.from({ length: MAX_GRAMMAR_ENUM_VALUES + 1 }, (_, i) => `v${i}`);
    assert.match(check({ enum: values }).problem!.message, /1001 enum values, over the bound of 1000 \(MAX_GRAMMAR_ENUM_VALUES\)/);
    const long = "x".repeat(MAX_GRAMMAR_TEXT_CHARS / 2 + 1);
    assert.match(check({ enum: [long, `${long}y`] }).problem!.message, /over the bound of 120000 \(MAX_GRAMMAR_TEXT_CHARS\)/);

    // 26 tools of 40 properties pass one by one, not together ("required" makes one grammar of them).
    const tool = normalizeJsonSchema(objectOf(40, () => ({ type: "integer" })));
    const tools = Array.from({ length: 26 }, (_, i) => ({ type: "function", function: { name: `f${i}`, parameters: tool } }));
    assert.equal(checkGrammarBounds(requestSchemas({ tools: tools.slice(0, 1) })).problem, null);
    const together = checkGrammarBounds(requestSchemas({ tools }));
    assert.deepEqual(together.problem!.path, ["tools"]);
    assert.match(together.problem!.message, /^the request's schemas together hold 1066 subschemas, over the bound of 1000/);
  });

  it("counts $defs once, however often they are referenced", () => {
    const item = { type: "string", maxLength: 900 };
    const refs = check({
      type: "object",
      $defs: { Item: item },
      properties: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`p${i}`, { $ref: "#/$defs/Item" }])),
    });
    assert.equal(refs.problem, null);
    assert.ok(refs.estimate.rules < 3000, String(refs.estimate.rules));
  });

  it("refuses a definition that reaches itself before any value begins (llama.cpp refuses left recursion)", () => {
    const refused: Array<[Record<string, unknown>, string]> = [
      [{ $defs: { A: { $ref: "#/$defs/A" } }, $ref: "#/$defs/A" }, "A"],
      [{ $defs: { A: { $ref: "#/$defs/B" }, B: { anyOf: [{ type: "null" }, { $ref: "#/$defs/A" }] } }, $ref: "#/$defs/A" }, "A"],
      // B only leads into the cycle: the definition that closes it is named.
      [{ $defs: { B: { $ref: "#/$defs/A" }, A: { oneOf: [{ $ref: "#/$defs/A" }, { type: "string" }] } }, $ref: "#/$defs/B" }, "A"],
    ];
    for (const [schema, def] of refused) {
      const { problem } = check(schema);
      assert.equal(problem?.path.join("."), `response_format.json_schema.schema.$defs.${def}`, JSON.stringify(schema));
      assert.match(problem.message, /left recursion/);
    }
    // Recursion behind a character is fine: a linked list, a tree of arrays.
    const list = {
      $defs: { Node: { type: "object", properties: { next: { anyOf: [{ $ref: "#/$defs/Node" }, { type: "null" }] } }, required: ["next"] } },
      $ref: "#/$defs/Node",
    };
    assert.equal(check(list).problem, null);
    assert.equal(check({ $defs: { T: { type: "array", items: { $ref: "#/$defs/T" } } }, $ref: "#/$defs/T" }).problem, null);
  });

  it("never names a schema's values or property names in a message", () => {
    const messages = [
      check({ type: "object", properties: { [SECRET]: { type: "string", maxLength: 5000 } } }).problem!.message,
      check({ enum: Array.from({ length: 1001 }, (_, i) => `${SECRET}-${i}`) }).problem!.message,
      check(objectOf(3000, (i) => ({ enum: [`${SECRET}-${i}`, "b"], description: SECRET }))).problem!.message,
    ];
    for (const m of messages) assert.ok(!m.includes(SECRET), m);
  });

  it("the record schema keeps its looser bound, so an older gateway's record still decodes (the worker ends it)", () => {
    const params = { response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", maxLength: 5000 } } } };
    assert.equal(generationParamsSchema.safeParse(params).success, true);
  });
});

describe("the OpenAI route refuses a schema over a grammar bound", () => {
  const body = (schema: Record<string, unknown>) => ({
    model: "m",
    messages: [{ role: "user", content: "hi" }],
    response_format: { type: "json_schema", json_schema: { name: "out", schema } },
  });

  it("with invalid_request naming the keyword's path and the bound", () => {
    assert.throws(
      () => parseCompletionBody(body({ type: "object", properties: { note: { type: "string", maxLength: 2001 } }, required: ["note"] }), 32_000),
      (err: unknown) => {
        assert.ok(err instanceof ApiError, String(err));
        assert.equal(err.code, "invalid_request");
        assert.equal(err.param, "response_format.json_schema.schema.properties.note.maxLength");
        assert.match(err.message, /maxLength is 2001, over the bound of 1000 \(MAX_GRAMMAR_REPETITION/);
        return true;
      },
    );
  });

  it("and a tool's parameters, by the rule estimate", () => {
    const parameters = objectOf(100, (i) => ({ type: "string", maxLength: 1000 - i }));
    assert.throws(
      () =>
        parseCompletionBody(
          {
            model: "m",
            messages: [{ role: "user", content: "hi" }],
            tools: [{ type: "function", function: { name: "f", parameters } }],
            tool_choice: "required",
          },
          32_000,
        ),
      (err: unknown) => err instanceof ApiError && err.param === "tools.0.function.parameters" && /MAX_GRAMMAR_RULES/.test(err.message),
    );
  });

  it("but takes a schema at the bounds", () => {
    const input = parseCompletionBody(body(objectOf(9, (i) => ({ type: "string", maxLength: MAX_GRAMMAR_REPETITION - i }))), 32_000);
    assert.equal(input.body.response_format?.type, "json_schema");
  });
});
