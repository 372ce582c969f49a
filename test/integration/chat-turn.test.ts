/**
 * The walking skeleton end to end: real broker, real worker with stories260K, real
 * gateway, all over real sockets. One chat turn goes HTTP → chat.requests → worker →
 * chat.events → SSE.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ChatEvent, FinalEvent } from "../../contracts/records/events.js";
import { DLQ_HEADERS } from "../../contracts/records/dead-letter.js";
import { topicNames } from "../../contracts/topics.js";
import { eventually, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { kafkaConfigFor, produceRecords, readTopic, useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents, readSse } from "../helpers/sse.js";

describe("one chat turn through Kafka", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let gateway: Service;
  const prefix = uniquePrefix("turn");
  const topics = topicNames(prefix);

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix, 2);
    gateway = await startGateway(common, { GATEWAY_AUTH: "none" });
    worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "200" }, "worker-a");
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  async function post(conversationId: string, body: unknown): Promise<Response> {
    return fetch(`${gateway.baseUrl}/v1/conversations/${conversationId}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  }

  async function send(conversationId: string, content: string): Promise<string> {
    const res = await post(conversationId, { content });
    assert.equal(res.status, 202, await res.clone().text());
    const body = (await res.json()) as { request_id: string; conversation_id: string };
    assert.equal(body.conversation_id, conversationId);
    assert.match(body.request_id, /^[0-9a-f-]{36}$/);
    return body.request_id;
  }

  function assertCompleteStream(events: ChatEvent[], requestId: string, conversationId: string): FinalEvent {
    assert.ok(events.length >= 3, `expected start, deltas and final, got ${events.map((e) => e.type).join(",")}`);
    events.forEach((e, i) => {
      assert.equal(e.seq, i, "sequence numbers in order, without gaps");
      assert.equal(e.request_id, requestId);
      assert.equal(e.conversation_id, conversationId);
    });
    assert.equal(events[0]!.type, "start");
    const final = events.at(-1)!;
    assert.equal(final.type, "final", "the final event comes last");
    const deltas = events.slice(1, -1);
    assert.ok(
      deltas.every((e) => e.type === "delta"),
      "only deltas between start and final",
    );
    const texts = deltas.map((e) => (e.type === "delta" ? e.text : ""));
    assert.ok(
      texts.every((t) => t.length > 0),
      "deltas are not empty",
    );
    const finalEvent = final as FinalEvent;
    assert.equal(texts.join(""), finalEvent.reply, "the deltas add up to the final reply");
    assert.ok(finalEvent.usage.completion_tokens > 0);
    assert.ok(finalEvent.usage.prompt_tokens > 0);
    assert.ok(["stop", "length"].includes(finalEvent.stop_reason));
    for (const key of ["queue_wait_ms", "time_to_first_token_ms", "generation_ms"] as const) {
      assert.ok(finalEvent.timings[key] >= 0, `${key} is set`);
    }
    return finalEvent;
  }

  it("streams a reply to a client that connects at once", async () => {
    const requestId = await send("conv-1", "Tell me a story about a cat.");
    const events = chatEvents(await readSse(`${gateway.baseUrl}/v1/requests/${requestId}/events`));
    const final = assertCompleteStream(events, requestId, "conv-1");
    const deltas = events.filter((e) => e.type === "delta").length;
    assert.ok(deltas < final.usage.completion_tokens, `deltas are batched, not one per token (${deltas} deltas for ${final.usage.completion_tokens} tokens)`);
  });

  it("replays the whole stream to a client that connects after the reply is done", async () => {
    const requestId = await send("conv-2", "Once upon a time");
    // Wait for the turn to finish before connecting: follow once, then connect again.
    await readSse(`${gateway.baseUrl}/v1/requests/${requestId}/events`);
    const late = chatEvents(await readSse(`${gateway.baseUrl}/v1/requests/${requestId}/events`));
    assertCompleteStream(late, requestId, "conv-2");
  });

  it("resumes after Last-Event-ID", async () => {
    const requestId = await send("conv-3", "Hello");
    const all = chatEvents(await readSse(`${gateway.baseUrl}/v1/requests/${requestId}/events`));
    const resumed = chatEvents(await readSse(`${gateway.baseUrl}/v1/requests/${requestId}/events`, { lastEventId: "1" }));
    assert.deepEqual(resumed, all.slice(2));
  });

  it("answers bad requests with 4xx and a message saying what to fix", async () => {
    const cases: Array<[string, unknown, number, RegExp]> = [
      ["conv-x", "{not json", 400, /not valid JSON/],
      ["conv-x", {}, 400, /content: is required/],
      ["conv-x", { content: "" }, 400, /content: must not be empty/],
      ["conv-x", { content: 42 }, 400, /content: Invalid input: expected string/],
      ["conv-x", { content: "hi", extra: 1 }, 400, /Unrecognized key.*extra/],
      ["conv-x", [1, 2], 400, /JSON object/],
      ["bad id!", { content: "hi" }, 400, /conversation id: .*letters, digits/],
    ];
    for (const [conversation, body, status, message] of cases) {
      const res = await post(encodeURIComponent(conversation), body);
      const json = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, status, `${JSON.stringify(body)} → ${JSON.stringify(json)}`);
      assert.equal(json.error.code, "invalid_request");
      assert.match(json.error.message, message);
    }
    const unknown = await fetch(`${gateway.baseUrl}/v1/requests/no-such-request/events`);
    assert.equal(unknown.status, 404);
    const wrongType = await fetch(`${gateway.baseUrl}/v1/conversations/c/messages`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    assert.equal(wrongType.status, 415);
  });

  it("dead-letters a malformed request with its reason and carries on", async () => {
    await produceRecords(kafkaConfigFor(kafka), topics.requests, [{ key: "conv-dlq", value: Buffer.from("this is not json") }]);

    // The first record on the dead-letter topic, once there is one.
    const record = await eventually(async () => (await readTopic(kafkaConfigFor(kafka), topics.deadLetter))[0], 60_000, "a dead letter");
    const dead = { value: record.value!.toString(), headers: Object.fromEntries(Object.entries(record.headers).map(([k, v]) => [k, v.toString()])) };
    assert.equal(dead.value, "this is not json", "the original bytes are kept");
    assert.match(dead.headers[DLQ_HEADERS.reason]!, /not JSON/);
    assert.equal(dead.headers[DLQ_HEADERS.topic], topics.requests);
    assert.match(dead.headers[DLQ_HEADERS.offset]!, /^\d+$/);

    // The worker is still there and still answers.
    const requestId = await send("conv-dlq", "Are you still there?");
    const events = chatEvents(await readSse(`${gateway.baseUrl}/v1/requests/${requestId}/events`));
    assertCompleteStream(events, requestId, "conv-dlq");
  });

  it("exposes worker metrics that count the work done", async () => {
    const text = await (await fetch(`${worker.baseUrl}/metrics`)).text();
    const generated = Number(/^kafka_llm_generated_tokens_total\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? "0");
    assert.ok(generated > 0, "generated tokens are counted");
    assert.match(text, /kafka_llm_requests_total\{[^}]*outcome="completed"[^}]*\} [1-9]/);
    assert.match(text, /kafka_llm_requests_total\{[^}]*outcome="dead_lettered"[^}]*\} 1/);
    assert.match(text, /kafka_llm_time_to_first_token_seconds_bucket/);
  });
});
