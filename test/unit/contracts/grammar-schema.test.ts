import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { SchemaProblem, normalizeJsonSchema } from "../../../contracts/grammar-schema.js";

function problem(schema: unknown, path: string, message: RegExp): void {
  assert.throws(
    () => normalizeJsonSchema(schema),
    (err: unknown) => {
      assert.ok(err instanceof SchemaProblem, String(err));
      assert.equal(err.path.join("."), path);
      assert.match(err.message, message);
      return true;
    },
  );
}

describe("JSON schemas for the grammar", () => {
  it("normalizes what zod-to-json-schema and OpenAI's strict mode emit, idempotently", () => {
    const schema = {
      $schema: "http://json-schema.org/draft-07/schema#",
      type: "object",
      properties: {
        pet: { $ref: "#/definitions/Pet" },
        tags: { type: "array", items: { type: "string", maxLength: 10 }, maxItems: 3, default: [] },
        when: { type: "string", format: "date" },
        n: { type: ["integer", "null"], description: "how many" },
      },
      required: ["pet"],
      additionalProperties: false,
      definitions: { Pet: { anyOf: [{ enum: ["cat", "dog"] }, { const: null }], title: "Pet" } },
    };
    const normalized = normalizeJsonSchema(schema);
    assert.deepEqual(normalized, {
      type: "object",
      $defs: { Pet: { oneOf: [{ enum: ["cat", "dog"] }, { const: null }] } },
      properties: {
        pet: { $ref: "#/$defs/Pet" },
        tags: { type: "array", items: { type: "string", maxLength: 10 }, maxItems: 3 },
        when: { type: "string", format: "date" },
        n: { type: ["integer", "null"], description: "how many" },
      },
      required: ["pet"],
      additionalProperties: false,
    });
    assert.deepEqual(normalizeJsonSchema(normalized), normalized);
  });

  it("drops the safe-integer bounds zod 4 writes on every integer, and refuses any other bound", () => {
    // What zod 4's toJSONSchema (behind openai's zodResponseFormat and LangChain's withStructuredOutput) writes.
    const int = { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 };
    const schema = {
      $schema: "http://json-schema.org/draft-07/schema#",
      type: "object",
      properties: { age: int, lives: { anyOf: [int, { type: "null" }] } },
      required: ["age", "lives"],
      additionalProperties: false,
    };
    assert.deepEqual(z.toJSONSchema(z.object({ age: z.number().int(), lives: z.int().nullable() }), { target: "draft-07" }), schema);
    assert.deepEqual(normalizeJsonSchema(schema), {
      type: "object",
      properties: { age: { type: "integer" }, lives: { oneOf: [{ type: "integer" }, { type: "null" }] } },
      required: ["age", "lives"],
      additionalProperties: false,
    });
    problem({ type: "integer", minimum: 0, maximum: 9007199254740991 }, "minimum", /"minimum" on this type cannot be expressed/);
    problem({ type: "integer", minimum: -9007199254740991, maximum: 10 }, "maximum", /"maximum" on this type cannot be expressed/);
    problem({ type: "number", minimum: -9007199254740991, maximum: 9007199254740991 }, "minimum", /"minimum" on this type cannot be expressed/);
  });

  it("names the part the grammar cannot express", () => {
    problem({ type: "string", pattern: "^a+$" }, "pattern", /"pattern" on a string schema cannot be expressed/);
    problem({ type: "object", properties: { a: { type: "number", maximum: 3 } } }, "properties.a.maximum", /"maximum" on this type/);
    problem({ type: "string", format: "email" }, "format", /format "email" cannot be expressed/);
    problem({ allOf: [{ type: "string" }] }, "allOf", /"allOf" on a schema/);
    problem({ type: "object", properties: { a: {} } }, "properties.a", /needs a type/);
    problem({ type: ["object", "null"] }, "type", /only string, number, integer, boolean and null/);
    problem({ $ref: "https://example.com/s.json" }, "$ref", /only local references/);
    problem({ type: "object", required: ["x"] }, "required", /"x", which is not in properties/);
    problem({ type: "array", items: { type: "array", uniqueItems: true } }, "items.uniqueItems", /"uniqueItems" on an array schema/);
    problem([], "", /must be a JSON Schema object/);
    problem({ type: "string", minLength: 5, maxLength: 2 }, "minLength", /must not exceed maxLength/);
    problem({ type: "array", items: { type: "string" }, maxItems: 1e9 }, "maxItems", /must be at most 32000/);
    problem(
      { type: "object", properties: { a: { $ref: "#/$defs/Missing" } }, $defs: { B: { type: "string" } } },
      "properties.a.$ref",
      /which no \$defs around it defines/,
    );
    problem({ type: "object", properties: {}, required: ["constructor"] }, "required", /"constructor", which is not in properties/);
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 40; i++) deep = { type: "array", items: deep };
    assert.throws(() => normalizeJsonSchema(deep), /nests deeper than 32 levels/);
  });
});
