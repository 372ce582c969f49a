/**
 * The check of a finished reply against what the grammar cannot hold of its schema
 * (worker/schema-check.ts): the normalized schema a gateway puts in the record, ajv on it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KafkaLlmError } from "../../../contracts/errors.js";
import type { GenerationParams } from "../../../contracts/generation-params.js";
import { normalizeJsonSchema } from "../../../contracts/grammar-schema.js";
import { CHECK_TIMEOUT_MS, checkReply, schemaViolation } from "../../../worker/schema-check.js";

/** Pydantic 2's schema for Field(pattern=...), Field(gt=0, lt=8), EmailStr and Field(ge=0, le=1, multiple_of=0.5). */
const FORECAST = normalizeJsonSchema({
  title: "Forecast",
  type: "object",
  properties: {
    city: { title: "City", type: "string", pattern: "^[A-Z][a-z]+$" },
    days: { title: "Days", type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 8 },
    email: { title: "Email", type: "string", format: "email" },
    ratio: { title: "Ratio", type: "number", minimum: 0, maximum: 1, multipleOf: 0.5 },
  },
  required: ["city", "days", "email", "ratio"],
});
const GOOD = { city: "Oslo", days: 7, email: "ola@example.com", ratio: 0.5 };

const tool = (parameters: Record<string, unknown>): GenerationParams => ({
  tools: [{ type: "function", function: { name: "forecast", parameters } }],
  tool_choice: "required",
});
const call = (args: unknown) => [{ id: "call_1", type: "function" as const, function: { name: "forecast", arguments: JSON.stringify(args) } }];

describe("the check of a reply against its schema", () => {
  it("passes a value that satisfies every keyword", () => {
    assert.equal(schemaViolation(FORECAST, GOOD), null);
  });

  it("names the keyword, the schema's value for it and where, for each keyword the grammar cannot hold", () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...GOOD, days: 8 }, /^\/days must be < 8 \(exclusiveMaximum 8\)$/],
      [{ ...GOOD, days: 0 }, /^\/days must be > 0 \(exclusiveMinimum 0\)$/],
      [{ ...GOOD, city: "oslo" }, /^\/city must match pattern "\^\[A-Z\]\[a-z\]\+\$" \(pattern \^\[A-Z\]\[a-z\]\+\$\)$/],
      [{ ...GOOD, email: "not an address" }, /^\/email must match format "email" \(format email\)$/],
      [{ ...GOOD, ratio: 0.7 }, /^\/ratio must be multiple of 0.5 \(multipleOf 0.5\)$/],
      [{ ...GOOD, ratio: 1.5 }, /^\/ratio must be <= 1 \(maximum 1\)$/],
    ];
    for (const [value, message] of cases) assert.match(schemaViolation(FORECAST, value) ?? "passed", message, JSON.stringify(value));
  });

  it("fails a tool call whose arguments break its parameters with generation_failed naming the function and keyword", () => {
    checkReply(tool(FORECAST), { text: "", stopReason: "tool_calls", toolCalls: call(GOOD) });
    assert.throws(
      () => checkReply(tool(FORECAST), { text: "", stopReason: "tool_calls", toolCalls: call({ ...GOOD, days: 12 }) }),
      (err: unknown) =>
        err instanceof KafkaLlmError &&
        err.code === "generation_failed" &&
        err.retryable &&
        /the arguments of forecast do not satisfy its parameters: \/days must be < 8 \(exclusiveMaximum 8\)/.test(err.message),
    );
  });

  it("checks a finished json_schema reply, and not one cut short", () => {
    const params: GenerationParams = { response_format: { type: "json_schema", json_schema: { name: "f", schema: FORECAST } } };
    const bad = JSON.stringify({ ...GOOD, city: "x" });
    assert.throws(() => checkReply(params, { text: bad, stopReason: "stop" }), /response_format.json_schema: \/city must match pattern/);
    checkReply(params, { text: bad, stopReason: "length" });
    checkReply(params, { text: JSON.stringify(GOOD), stopReason: "stop" });
  });

  it("checks what the grammar admits as any value: allOf, not, uniqueItems, a reference to the root", () => {
    const tree = normalizeJsonSchema({
      type: "object",
      properties: { name: { allOf: [{ type: "string" }, { minLength: 2 }] }, kids: { type: "array", items: { $ref: "#" }, uniqueItems: true } },
      required: ["name", "kids"],
    });
    assert.equal(schemaViolation(tree, { name: "ab", kids: [{ name: "cd", kids: [] }] }), null);
    assert.match(
      schemaViolation(tree, { name: "ab", kids: [{ name: "c", kids: [] }] }) ?? "",
      /^\/kids\/0\/name must NOT have fewer than 2 characters \(minLength 2\)/,
    );
    assert.match(
      schemaViolation(tree, {
        name: "ab",
        kids: [
          { name: "cd", kids: [] },
          { name: "cd", kids: [] },
        ],
      }) ?? "",
      /\(uniqueItems true\)/,
    );
  });

  it("stops a pattern that backtracks without end at the time limit", () => {
    const evil = normalizeJsonSchema({ type: "string", pattern: "^(a+)+$" });
    const started = performance.now();
    assert.throws(
      () => schemaViolation(evil, "a".repeat(40) + "b"),
      (err: unknown) => err instanceof KafkaLlmError && err.code === "generation_failed" && /took over 100 ms/.test(err.message),
    );
    assert.ok(performance.now() - started < CHECK_TIMEOUT_MS * 5, "the check is interrupted, not left to run for minutes");
    assert.equal(schemaViolation(evil, "aaaa"), null, "the same pattern on a short value still checks");
  });
});
