import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { SchemaProblem, grammarSchemaOf, normalizeJsonSchema } from "../../../contracts/grammar-schema.js";

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

/** Any JSON value, as the grammar spells it. */
const ANY = { oneOf: [{ type: ["string", "number", "boolean", "null"] }, { type: "array" }, { type: "object", additionalProperties: true }] };

/** What Pydantic 2's model_json_schema() writes for Field(pattern=...), Field(gt=, lt=), EmailStr and Field(ge=, le=, multiple_of=). */
const PYDANTIC = {
  title: "Forecast",
  type: "object",
  properties: {
    city: { title: "City", type: "string", pattern: "^[A-Z][a-z]+$", description: "A capitalised city name" },
    days: { title: "Days", type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 8 },
    email: { title: "Email", type: "string", format: "email" },
    ratio: { title: "Ratio", type: "number", minimum: 0, maximum: 1, multipleOf: 0.5 },
    when: { title: "When", type: "string", format: "date" },
    unit: { $ref: "#/$defs/Unit" },
  },
  required: ["city", "days", "email", "ratio", "when", "unit"],
  $defs: { Unit: { title: "Unit", type: "string", enum: ["celsius", "fahrenheit"] } },
};

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
      $defs: { Pet: { anyOf: [{ enum: ["cat", "dog"] }, { const: null }] } },
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
    // The grammar takes anyOf as oneOf (it writes exactly one branch, which satisfies both) and has no use for required.
    assert.deepEqual(grammarSchemaOf(normalized), {
      type: "object",
      $defs: { Pet: { oneOf: [{ enum: ["cat", "dog"] }, { const: null }] } },
      properties: {
        pet: { $ref: "#/$defs/Pet" },
        tags: { type: "array", items: { type: "string", maxLength: 10 }, maxItems: 3 },
        when: { type: "string", format: "date" },
        n: { type: ["integer", "null"], description: "how many" },
      },
      additionalProperties: false,
    });
  });

  it("accepts Pydantic's bounds, pattern and email format, keeps them for the check and leaves them out of the grammar", () => {
    const normalized = normalizeJsonSchema(PYDANTIC);
    assert.deepEqual(normalized, {
      type: "object",
      properties: {
        city: { type: "string", pattern: "^[A-Z][a-z]+$", description: "A capitalised city name" },
        days: { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 8 },
        email: { type: "string", format: "email" },
        ratio: { type: "number", minimum: 0, maximum: 1, multipleOf: 0.5 },
        when: { type: "string", format: "date" },
        unit: { $ref: "#/$defs/Unit" },
      },
      required: ["city", "days", "email", "ratio", "when", "unit"],
      $defs: { Unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
    });
    assert.deepEqual(normalizeJsonSchema(normalized), normalized);
    const grammar = grammarSchemaOf(normalized);
    assert.deepEqual(grammar, {
      type: "object",
      properties: {
        // What the grammar cannot hold is told to the model in the description (node-llama-cpp documents it in tool mode).
        city: { type: "string", description: "A capitalised city name (pattern ^[A-Z][a-z]+$)" },
        days: { type: "integer", description: "(exclusiveMinimum 0, exclusiveMaximum 8)" },
        email: { type: "string", description: "(format email)" },
        ratio: { type: "number", description: "(minimum 0, maximum 1, multipleOf 0.5)" },
        when: { type: "string", format: "date" },
        unit: { $ref: "#/$defs/Unit" },
      },
      $defs: { Unit: { enum: ["celsius", "fahrenheit"] } },
    });
    assert.deepEqual(grammarSchemaOf(grammar), grammar, "idempotent");
  });

  it("keeps the safe-integer bounds zod 4 writes on every integer, for the check", () => {
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
    const { $schema: _, ...rest } = schema;
    assert.deepEqual(normalizeJsonSchema(schema), rest);
    const bounded = { type: "integer", description: "(minimum -9007199254740991, maximum 9007199254740991)" };
    assert.deepEqual(grammarSchemaOf(normalizeJsonSchema(schema)).properties, { age: bounded, lives: { oneOf: [bounded, { type: "null" }] } });
  });

  it("reads older drafts' spellings in their 2020-12 form", () => {
    assert.deepEqual(
      normalizeJsonSchema({
        type: "object",
        properties: {
          n: { type: "number", maximum: 5, exclusiveMaximum: true, minimum: 1, exclusiveMinimum: false },
          pair: { type: "array", items: [{ type: "string" }, { type: "integer" }], additionalItems: false },
        },
        dependencies: { a: ["b"], c: { required: ["d"] } },
      }),
      {
        type: "object",
        properties: {
          n: { type: "number", exclusiveMaximum: 5, minimum: 1 },
          pair: { type: "array", items: false, prefixItems: [{ type: "string" }, { type: "integer" }] },
        },
        dependentRequired: { a: ["b"] },
        dependentSchemas: { c: { required: ["d"] } },
      },
    );
  });

  it("accepts what a non-strict tool may send, and lets the grammar admit any value where it cannot shape one", () => {
    const loose = normalizeJsonSchema({
      type: "object",
      properties: {
        anything: {},
        either: { type: ["object", "null"], properties: { a: { type: "string" } } },
        both: { allOf: [{ type: "string" }, { minLength: 2 }] },
        one: { allOf: [{ $ref: "#/$defs/Id" }], description: "Pydantic's reference with a description" },
        notNull: { not: { type: "null" } },
        self: { $ref: "#" },
        tags: { type: "array", items: { type: "string" }, uniqueItems: true, contains: { const: "x" } },
        objects: { enum: [{ a: 1 }, "b"] },
      },
      $defs: { Id: { type: "string", format: "uuid" } },
    });
    assert.deepEqual(grammarSchemaOf(loose).properties, {
      anything: ANY,
      either: { oneOf: [{ type: "object", properties: { a: { type: "string" } } }, { type: "null" }] },
      both: ANY,
      one: { $ref: "#/$defs/Id", description: "Pydantic's reference with a description" },
      notNull: ANY,
      self: ANY,
      tags: { type: "array", items: { type: "string" } },
      objects: ANY,
    });
  });

  it("names the part no reply could be checked against", () => {
    problem({ type: "string", pattern: "^(a" }, "pattern", /is not a regular expression/);
    problem({ type: "object", patternProperties: { "[": { type: "string" } } }, "patternProperties.[", /is not a regular expression/);
    problem({ type: "object", properties: { a: { type: "number", maximum: "3" } } }, "properties.a.maximum", /must be a number/);
    problem({ type: "number", multipleOf: 0 }, "multipleOf", /must be a number above 0/);
    problem({ type: "number", minimum: 3, maximum: 1 }, "minimum", /must not exceed maximum/);
    problem({ type: "string", format: 5 }, "format", /must be a string/);
    problem({ type: ["object", "thing"] }, "type", /must be one of object, array, string/);
    problem({ $ref: "https://example.com/s.json" }, "$ref", /only references inside the schema/);
    problem({ type: "object", required: ["x"] }, "required", /"x", which is not in properties/);
    problem([], "", /must be a JSON Schema object/);
    problem({ type: "object", properties: { a: 5 } }, "properties.a", /must be a JSON Schema object/);
    problem({ type: "string", minLength: 5, maxLength: 2 }, "minLength", /must not exceed maxLength/);
    problem({ type: "array", items: { type: "string" }, maxItems: 1e9 }, "maxItems", /must be at most 32000/);
    problem({ anyOf: [] }, "anyOf", /must be a non-empty array of schemas/);
    problem(
      { type: "object", properties: { a: { $ref: "#/$defs/Missing" } }, $defs: { B: { type: "string" } } },
      "properties.a.$ref",
      /which is not a schema of this document/,
    );
    problem({ type: "object", properties: {}, required: ["constructor"] }, "required", /"constructor", which is not in properties/);
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 40; i++) deep = { type: "array", items: deep };
    assert.throws(() => normalizeJsonSchema(deep), /nests deeper than 32 levels/);
  });
});
