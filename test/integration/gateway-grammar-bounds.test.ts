/**
 * Hostile JSON schemas (issue 24, item 5) against a real gateway, broker and stories260K
 * worker: the OpenAI route answers 400 naming the bound for a repetition llama.cpp refuses
 * and for a schema whose grammar would be too large, a schema just inside the bounds is
 * answered with JSON it admits, and a request over a bound that reaches the worker anyway
 * (a record from an older gateway) ends with an invalid_request error event, with no enum
 * value of its schema in either service's output.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { MAX_GRAMMAR_REPETITION, MAX_GRAMMAR_RULES, checkGrammarBounds } from "../../contracts/grammar-bounds.js";
import { normalizeJsonSchema } from "../../contracts/grammar-schema.js";
import { topicNames } from "../../contracts/topics.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { apiClient, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "grammar-bounds-key-3";
const MODEL = "stories-260k";
const SECRET = "SECRET-tenant-enum-b7d2";

function objectOf(n: number, property: (i: number) => Record<string, unknown>): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) properties[`field_${i}`] = property(i);
  return { type: "object", properties, required: Object.keys(properties) };
}

/** 1,000 long enum values (the most MAX_GRAMMAR_ENUM_VALUES allows), sized to an estimate just under MAX_GRAMMAR_RULES. */
function justInside(): { schema: Record<string, unknown>; values: string[] } {
  const filler = "-".repeat(43);
  const values = Array.from({ length: 1000 }, (_, i) => `${SECRET}-${String(i).padStart(4, "0")}${filler}`);
  const schema = { type: "object", properties: { choice: { enum: values }, name: { type: "string", maxLength: 16 } }, required: ["choice", "name"] };
  return { schema, values };
}

describe("hostile schemas: grammar bounds through the gateway and the worker", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let chat: ChatOverKafka;
  let client: OpenAI;
  let api: ReturnType<typeof apiClient>;

  before(async () => {
    kafka = await useKafka();
    const prefix = uniquePrefix("grammar-bounds");
    const common = stackEnv(kafka, prefix, 1);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `team:${KEY}`, MODEL_NAME: MODEL });
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10" });
    chat = new ChatOverKafka(kafka, topicNames(prefix));
    await chat.start();
    client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120_000 });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    await chat?.stop();
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  const completion = (extra: Record<string, unknown>) =>
    api("POST", "/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 8, ...extra });
  const responseFormat = (schema: Record<string, unknown>) => ({ response_format: { type: "json_schema", json_schema: { name: "out", schema } } });

  it("answers 400 in OpenAI's shape naming a repetition bound llama.cpp refuses", async () => {
    for (const n of [MAX_GRAMMAR_REPETITION + 1, 2001, 32_000]) {
      const res = await completion(
        responseFormat({ type: "object", properties: { kind: { enum: [SECRET] }, note: { type: "string", maxLength: n } }, required: ["kind", "note"] }),
      );
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.error.type, "invalid_request_error");
      assert.equal(res.body.error.param, "response_format.json_schema.schema.properties.note.maxLength");
      assert.match(res.body.error.message, new RegExp(`maxLength is ${n}, over the bound of ${MAX_GRAMMAR_REPETITION} \\(MAX_GRAMMAR_REPETITION`));
    }
  });

  it("answers 400 naming MAX_GRAMMAR_RULES for thousands of properties with distinct bounds, at once", async () => {
    const hostile = objectOf(2000, (i) => ({ type: "string", maxLength: 1000 - (i % 1000) }));
    const started = performance.now();
    const res = await completion(responseFormat(hostile));
    const took = performance.now() - started;
    assert.equal(res.status, 400, res.text);
    assert.equal(res.body.error.param, "response_format.json_schema.schema");
    assert.match(res.body.error.message, new RegExp(`rules, over the bound of ${MAX_GRAMMAR_RULES} \\(MAX_GRAMMAR_RULES\\)`));
    assert.ok(took < 5000, `answered in ${took} ms`);

    const tools = await completion({ tools: [{ type: "function", function: { name: "f", parameters: hostile } }], tool_choice: "required" });
    assert.equal(tools.status, 400, tools.text);
    assert.equal(tools.body.error.param, "tools.0.function.parameters");
    assert.match(tools.body.error.message, /MAX_GRAMMAR_RULES/);
  });

  it("answers a schema just inside the bounds with JSON the schema admits", async () => {
    const { schema, values } = justInside();
    const { estimate, problem } = checkGrammarBounds([{ path: [], schema: normalizeJsonSchema(schema) }]);
    assert.equal(problem, null);
    assert.ok(estimate.rules > 0.9 * MAX_GRAMMAR_RULES, `estimated ${estimate.rules} rules`);

    const res = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Pick one" }],
      max_tokens: 400,
      temperature: 0,
      response_format: { type: "json_schema", json_schema: { name: "pick", schema } },
    });
    const choice = res.choices[0]!;
    assert.equal(choice.finish_reason, "stop", JSON.stringify(choice));
    const parsed = JSON.parse(choice.message.content!) as { choice: string; name: string };
    assert.ok(values.includes(parsed.choice), parsed.choice);
    assert.ok(parsed.name.length <= 16);
  });

  it("ends a request over a bound that reaches the worker (an older gateway's) with invalid_request, logging no schema value", async () => {
    const schema = normalizeJsonSchema({
      type: "object",
      properties: { kind: { enum: [SECRET, "other"] }, note: { type: "string", minLength: 2500 } },
      required: ["kind", "note"],
    });
    const requestId = await chat.turn("old-gateway-1", "Once upon a time", {
      params: { max_tokens: 8, response_format: { type: "json_schema", json_schema: { name: "out", schema } } },
    });
    const terminal = await chat.terminal(requestId, 60_000);
    assert.equal(terminal.type, "error", JSON.stringify(terminal));
    if (terminal.type !== "error") return;
    assert.equal(terminal.code, "invalid_request");
    assert.equal(terminal.retryable, false);
    assert.match(terminal.message, /^response_format: minLength is 2500, over the bound of 1000/);

    // The worker goes on: the next turn on the same conversation is answered.
    const next = await chat.terminal(await chat.turn("old-gateway-1", "Once upon a time", { params: { max_tokens: 8 } }), 60_000);
    assert.equal(next.type, "final", JSON.stringify(next));

    for (const [name, service] of [
      ["worker", worker],
      ["gateway", gateway],
    ] as const) {
      const output = service.output() + JSON.stringify(service.logs.map((l) => l.record));
      assert.ok(!output.includes(SECRET), `${name}'s output carries an enum value of a schema`);
    }
  });
});
