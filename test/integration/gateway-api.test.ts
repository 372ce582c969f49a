/**
 * The native HTTP API's contract, over real HTTP against a real gateway, broker and worker
 * (stories260K): opening a conversation with the greeting, turns with parameters, status
 * polling, SSE with resume, cancel, stored history with from/limit, delete, and the
 * errors and limits (400 that says what to fix, 404, 413, 415).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ChatEvent, FinalEvent } from "../../contracts/records/events.js";
import { apiClient, eventually, metricValue, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const KEY = "acme-key-0123456789";
const GREETING = "Hello! Shall we tell a story?";

describe("gateway native API", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let api: ReturnType<typeof apiClient>;
  const prefix = uniquePrefix("gw-api");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, {
      GATEWAY_API_KEYS: `acme:${KEY}`,
      GATEWAY_BODY_LIMIT_BYTES: "4096",
      GATEWAY_MAX_CONTENT_CHARS: "1000",
    });
    worker = await startWorker(common, { GREETING, DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000", WORKER_SLOTS: "2" });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  async function events(path: string, lastEventId?: string): Promise<ChatEvent[]> {
    return chatEvents(await readEvents(gateway.baseUrl + path, KEY, lastEventId));
  }

  function final(list: ChatEvent[]): FinalEvent {
    const last = list.at(-1)!;
    assert.equal(last.type, "final", `expected a final event, got ${JSON.stringify(last)}`);
    return last as FinalEvent;
  }

  /** History right after a final event: the worker wrote memory before it, the view syncs on read. */
  async function history(id: string, query = "") {
    const res = await api("GET", `/v1/conversations/${id}/messages${query}`);
    assert.equal(res.status, 200, res.text);
    return res.body as {
      messages: Array<{ index: number; role: string; content: string; request_id?: string }>;
      total: number;
      has_more_before: boolean;
      has_more_after: boolean;
    };
  }

  it("opens a conversation with the greeting: 201, links, the greeting as the open request's reply and first message", async () => {
    const res = await api("POST", "/v1/conversations", { greeting: true });
    assert.equal(res.status, 201, res.text);
    const { id, request_id, events_url, status_url, messages_url } = res.body;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(res.headers.get("location"), `/v1/conversations/${id}`);
    assert.equal(status_url, `/v1/requests/${request_id}`);
    assert.equal(messages_url, `/v1/conversations/${id}/messages`);
    assert.equal(final(await events(events_url)).reply, GREETING);
    const stored = await history(id);
    assert.deepEqual(
      stored.messages.map((m) => [m.role, m.content]),
      [["assistant", GREETING]],
    );

    const plain = await api("POST", "/v1/conversations?greeting=false", {});
    assert.equal(plain.status, 201);
    assert.equal(final(await events(plain.body.events_url)).reply, "", "no greeting unless asked");
    assert.deepEqual((await history(plain.body.id)).messages, []);
    const meta = await api("GET", `/v1/conversations/${plain.body.id}`);
    assert.equal(meta.status, 200);
    assert.equal(meta.body.message_count, 0);
  });

  it("runs a turn: 202 with links, SSE to the final event, status completed, history stored", async () => {
    const conv = (await api("POST", "/v1/conversations", {})).body.id as string;
    const res = await api("POST", `/v1/conversations/${conv}/messages`, {
      content: "Tell me about a dog.",
      max_tokens: 20,
      temperature: 0,
      top_p: 0.9,
      top_k: 40,
      repeat_penalty: 1.1,
    });
    assert.equal(res.status, 202, res.text);
    const { request_id, conversation_id, status_url, events_url } = res.body;
    assert.equal(conversation_id, conv);
    assert.equal(status_url, `/v1/requests/${request_id}`);
    assert.equal(events_url, `/v1/requests/${request_id}/events`);

    const stream = await events(events_url);
    assert.equal(stream[0]!.type, "start");
    const done = final(stream);
    const deltas = stream.filter((e) => e.type === "delta").map((e) => (e.type === "delta" ? e.text : ""));
    assert.equal(deltas.join(""), done.reply);
    assert.ok(done.usage.completion_tokens <= 20, "max_tokens reached the worker");

    const status = await api("GET", status_url);
    assert.equal(status.status, 200);
    assert.equal(status.body.status, "completed");
    assert.equal(status.body.reply, done.reply);
    assert.equal(status.body.stop_reason, done.stop_reason);
    assert.deepEqual(status.body.usage, done.usage);
    assert.deepEqual(status.body.timings, done.timings);

    const stored = await history(conv);
    assert.deepEqual(
      stored.messages.slice(-2).map((m) => [m.role, m.content, m.request_id]),
      [
        ["user", "Tell me about a dog.", request_id],
        ["assistant", done.reply, request_id],
      ],
    );
  });

  it("runs a turn retried with the same Idempotency-Key once", async () => {
    const conv = (await api("POST", "/v1/conversations", {})).body.id as string;
    const post = (key: string) =>
      fetch(`${gateway.baseUrl}/v1/conversations/${conv}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify({ content: "Only once, please.", max_tokens: 8 }),
      });
    const first = (await (await post("turn-1")).json()) as { request_id: string };
    const again = (await (await post("turn-1")).json()) as { request_id: string };
    assert.equal(again.request_id, first.request_id, "the retry names the same request");
    const other = (await (await post("turn-2")).json()) as { request_id: string };
    assert.notEqual(other.request_id, first.request_id);
    final(await events(`/v1/requests/${first.request_id}/events`));
    final(await events(`/v1/requests/${other.request_id}/events`));
    const users = (await history(conv)).messages.filter((m) => m.role === "user").map((m) => m.request_id);
    assert.deepEqual(users, [first.request_id, other.request_id], "the retried turn is in memory once");
    const bad = await post("no spaces allowed");
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /Idempotency-Key/);
  });

  it("resumes an event stream after Last-Event-ID, from the header or the query", async () => {
    const res = await api("POST", "/v1/conversations/resume-1/messages", { content: "Once upon a time", max_tokens: 30 });
    const all = await events(res.body.events_url);
    assert.ok(all.length >= 3);
    const id = `${all[1]!.seq}@${all[1]!.attempt}`;
    assert.deepEqual(await events(res.body.events_url, id), all.slice(2));
    assert.deepEqual(await events(`${res.body.events_url}?last_event_id=${encodeURIComponent(id)}`), all.slice(2));
  });

  it("reads the history from the beginning or the latest end, with a limit", async () => {
    const id = (await api("POST", "/v1/conversations", { greeting: true })).body.id as string;
    for (const content of ["First question.", "Second question."]) {
      const turn = await api("POST", `/v1/conversations/${id}/messages`, { content, max_tokens: 8 });
      final(await events(turn.body.events_url));
    }
    const whole = await history(id);
    assert.equal(whole.total, 5, "greeting + two turns of two messages");
    assert.equal(whole.has_more_before || whole.has_more_after, false);
    const latest = await history(id, "?from=latest&limit=2");
    assert.deepEqual(latest.messages, whole.messages.slice(3));
    assert.equal(latest.has_more_before, true);
    const first = await history(id, "?from=beginning&limit=1");
    assert.deepEqual(
      first.messages.map((m) => m.content),
      [GREETING],
    );
    const bad = await api("GET", `/v1/conversations/${id}/messages?from=middle&limit=0`);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /from: must be "beginning", "latest" or "last_consumed"/);
    assert.match(bad.body.error.message, /limit: must be >= 1/);
  });

  it("cancels a long generation: 202, then status cancelled with the partial reply", async () => {
    const res = await api("POST", "/v1/conversations/cancel-1/messages", { content: "Tell me a very long story.", max_tokens: 1900 });
    assert.equal(res.status, 202);
    const { request_id, status_url } = res.body;
    await eventually(
      async () => {
        const s = await api("GET", status_url);
        return s.body.status === "running" && s.body.reply.length > 0 ? s : undefined;
      },
      30_000,
      "the generation to be running with text",
    );
    const cancel = await api("POST", `/v1/requests/${request_id}/cancel`, { reason: "test" });
    assert.equal(cancel.status, 202, cancel.text);
    assert.equal(cancel.body.request_id, request_id);
    const stream = await events(res.body.events_url);
    const done = final(stream);
    assert.equal(done.stop_reason, "cancelled");
    assert.ok(done.usage.completion_tokens < 1900);
    const status = await api("GET", status_url);
    assert.equal(status.body.status, "cancelled");
    assert.equal(status.body.reply, done.reply);
    // Cancelling what has ended is accepted and changes nothing.
    const again = await api("POST", `/v1/requests/${request_id}/cancel`);
    assert.equal(again.status, 202);
    assert.equal(again.body.status, "cancelled");
  });

  it("deletes a conversation: 200, then 404 for its history and for a second delete", async () => {
    const opened = (await api("POST", "/v1/conversations", { greeting: true })).body;
    final(await events(opened.events_url));
    const id = opened.id as string;
    assert.equal((await api("GET", `/v1/conversations/${id}`)).status, 200);
    const del = await api("DELETE", `/v1/conversations/${id}`);
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(del.body, { id, object: "conversation.deleted", conversation_id: id, deleted: true });
    assert.equal((await api("GET", `/v1/conversations/${id}/messages`)).status, 404);
    assert.equal((await api("GET", `/v1/conversations/${id}`)).status, 404);
    assert.equal((await api("DELETE", `/v1/conversations/${id}`)).status, 404);
  });

  it("answers bad input with a 4xx that says what to fix, never a 5xx", async () => {
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ["POST", "/v1/conversations/c1/messages", { content: "hi", max_tokens: 0 }, 400, /max_tokens: must be >= 1/],
      ["POST", "/v1/conversations/c1/messages", { content: "hi", max_tokens: 1.5 }, 400, /max_tokens: must be an integer/],
      ["POST", "/v1/conversations/c1/messages", { content: "hi", temperature: 3 }, 400, /temperature: must be <= 2/],
      ["POST", "/v1/conversations/c1/messages", { content: "hi", top_p: 0 }, 400, /top_p: must be > 0/],
      ["POST", "/v1/conversations/c1/messages", { content: "hi", top_k: -1 }, 400, /top_k: must be >= 0/],
      ["POST", "/v1/conversations/c1/messages", { content: "hi", repeat_penalty: "high" }, 400, /repeat_penalty: Invalid input: expected number/],
      ["POST", "/v1/conversations/c1/messages", { content: "x".repeat(1001) }, 400, /content: must be at most 1000 characters/],
      ["POST", "/v1/conversations/c1/messages", { content: "hi", system: "s".repeat(1001) }, 400, /system: must be at most 1000/],
      ["POST", "/v1/conversations/c1/messages", null, 400, /JSON object/],
      ["POST", "/v1/conversations", { greeting: "yes" }, 400, /greeting: Invalid input: expected boolean/],
      ["POST", "/v1/conversations?greeting=maybe", undefined, 400, /greeting: must be true or false/],
      ["POST", "/v1/conversations", { colour: "red" }, 400, /Unrecognized key.*colour/],
      ["POST", "/v1/requests/r1/cancel", { reason: 7 }, 400, /reason: Invalid input: expected string/],
      ["GET", "/v1/requests/bad%20id", undefined, 400, /request id: may contain only/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await api(method, path, body === null ? "null" : body);
      assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)} → ${res.text}`);
      assert.equal(res.body.error.code, "invalid_request");
      assert.equal(res.body.error.retryable, false);
      assert.match(res.body.error.message, message);
    }
    const tooLarge = await api("POST", "/v1/conversations/c1/messages", { content: "y".repeat(5000) });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.error.code, "payload_too_large");
    const notJson = await api("POST", "/v1/conversations/c1/messages", "hello", { "content-type": "text/plain" });
    assert.equal(notJson.status, 415);
    for (const path of [
      "/v1/requests/3f1c2d4e-0000-4000-8000-000000000000",
      "/v1/requests/nope/events",
      "/v1/conversations/nope/messages",
      "/v1/conversations/nope",
      "/v1/nothing-here",
    ]) {
      const res = await api("GET", path);
      assert.equal(res.status, 404, path);
      assert.equal(res.body.error.code, "not_found");
    }
    assert.equal((await api("POST", "/v1/requests/nope/cancel")).status, 404);
    assert.equal((await api("DELETE", "/v1/conversations/nope")).status, 404);
  });

  it("counts what it did in /metrics", async () => {
    const text = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    assert.ok((metricValue(text, "kafka_llm_gateway_requests_accepted_total", { type: "turn" }) ?? 0) >= 4);
    assert.ok((metricValue(text, "kafka_llm_gateway_requests_accepted_total", { type: "open" }) ?? 0) >= 3);
    assert.ok((metricValue(text, "kafka_llm_gateway_cancels_total", { origin: "api" }) ?? 0) >= 1);
    assert.ok((metricValue(text, "kafka_llm_gateway_http_responses_total", { status: "400" }) ?? 0) >= 1);
    // Conversation reads were asked of the owning worker: found ones, and the unknown "nope".
    assert.ok((metricValue(text, "kafka_llm_gateway_conversation_lookups_total", { outcome: "found" }) ?? 0) >= 1);
    assert.ok((metricValue(text, "kafka_llm_gateway_conversation_lookups_total", { outcome: "not_found" }) ?? 0) >= 1);
    assert.ok((metricValue(text, "kafka_llm_gateway_conversation_lookup_seconds_count") ?? 0) >= 2);
  });
});
