/**
 * The HTTP layer without Kafka: fastify's inject() against buildGateway with a fake
 * publisher whose "worker" answers through the real hub. Covers what is awkward to
 * provoke with a real worker: Kafka refusing a send, a worker taking over mid-reply,
 * error events, and DELETE that no worker applies in time.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { loadGatewayConfig } from "../../../contracts/config/gateway.js";
import { conversationKey } from "../../../contracts/conversation-key.js";
import type { ChatEvent } from "../../../contracts/records/events.js";
import type { ChatRequest } from "../../../contracts/records/requests.js";
import type { ConversationState } from "../../../contracts/records/memory.js";
import { buildGateway } from "../../../gateway/app.js";
import { createAuthenticator } from "../../../gateway/auth.js";
import { ApiError } from "../../../gateway/errors.js";
import { EventHub } from "../../../gateway/event-hub.js";
import type { ConversationLookup } from "../../../gateway/kafka/owners.js";
import { createGatewayMetrics } from "../../../gateway/metrics.js";
import { parseSse } from "../../helpers/sse.js";

const logger = pino({ level: "silent" });
type Script = (request: ChatRequest, emit: (events: Array<Partial<ChatEvent> & { type: ChatEvent["type"] }>) => void) => void;

function setup(options: { script?: Script; failSends?: boolean; env?: Record<string, string>; memory?: Map<string, ConversationState> | null } = {}) {
  const config = loadGatewayConfig({ GATEWAY_API_KEYS: "acme:k1,other:k2", GATEWAY_APPLY_WAIT_MS: "100", UNKNOWN_REQUEST_WAIT_MS: "0", ...options.env });
  const hub = new EventHub({ ttlMs: 60_000, maxTracked: 100 });
  const published: ChatRequest[] = [];
  const cancels: string[] = [];
  const states = options.memory === undefined ? new Map<string, ConversationState>() : options.memory;
  const conversations: ConversationLookup | null = states && {
    get: async (ref) => states.get(conversationKey(ref)),
    cachedOwners: 0,
    stop: async () => {},
  };
  const app = buildGateway({
    config,
    logger,
    hub,
    conversations,
    history: null,
    metrics: createGatewayMetrics({ trackedRequests: () => hub.size, recentTurns: () => ({ meanSeconds: 0, count: 0 }) }),
    authenticate: createAuthenticator(config.auth, logger).authenticate,
    ready: () => true,
    failure: () => null,
    publisher: {
      async publishRequest(request) {
        if (options.failSends) throw new ApiError("kafka_unavailable", "Kafka is not reachable right now; try again shortly");
        published.push(request);
        options.script?.(request, (events) =>
          setImmediate(() => {
            events.forEach((e, i) =>
              hub.accept({
                v: 1,
                request_id: request.request_id,
                conversation_id: request.conversation_id,
                tenant: request.tenant,
                attempt: "a1",
                seq: i,
                at: Date.now(),
                ...e,
              } as ChatEvent),
            );
          }),
        );
      },
      async publishCancel(record) {
        cancels.push(record.request_id);
      },
    },
  });
  return { app, hub, published, cancels, states };
}

const auth = { authorization: "Bearer k1" };
const usage = { prompt_tokens: 3, cached_prompt_tokens: 0, completion_tokens: 2 };
const timings = { queue_wait_ms: 0, time_to_first_token_ms: 1, generation_ms: 2 };

describe("gateway HTTP layer", () => {
  it("queues a turn with the caller's tenant and only the parameters given", async () => {
    const { app, published, hub } = setup();
    const res = await app.inject({ method: "POST", url: "/v1/conversations/c1/messages", headers: auth, payload: { content: "Hi", top_k: 5 } });
    assert.equal(res.statusCode, 202);
    const turn = published[0]!;
    assert.equal(turn.type === "turn" && turn.tenant, "acme");
    assert.deepEqual(turn.type === "turn" && turn.params, { top_k: 5 });
    assert.equal(hub.get(res.json().request_id)?.tenant, "acme");
    const status = await app.inject({ method: "GET", url: `/v1/requests/${res.json().request_id}`, headers: auth });
    assert.equal(status.json().status, "queued");
  });

  it("answers 503 with Retry-After when Kafka does not take the request, and forgets it", async () => {
    const { app, hub } = setup({ failSends: true });
    const res = await app.inject({ method: "POST", url: "/v1/conversations/c1/messages", headers: auth, payload: { content: "Hi" } });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers["retry-after"], "2");
    assert.deepEqual(res.json().error, { code: "kafka_unavailable", message: "Kafka is not reachable right now; try again shortly", retryable: true });
    assert.equal(hub.size, 0);
    const openai = await app.inject({
      method: "POST",
      url: "/v1/chat/completions",
      headers: auth,
      payload: { model: "m", messages: [{ role: "user", content: "x" }] },
    });
    assert.equal(openai.statusCode, 503);
    assert.deepEqual(Object.keys(openai.json().error).sort(), ["code", "message", "param", "type"]);
  });

  it("streams OpenAI chunks without repeating text when a second attempt re-runs the request", async () => {
    const { app } = setup({
      script: (request, emit) =>
        emit([
          { type: "start", worker_id: "w1" },
          { type: "delta", text: "Once up" },
          // The worker died; another one runs the request again from the start.
          { type: "start", worker_id: "w2", attempt: "a2", seq: 0 } as never,
          { type: "delta", text: "Once upon", attempt: "a2", seq: 1 } as never,
          { type: "delta", text: " a time", attempt: "a2", seq: 2 } as never,
          { type: "final", reply: "Once upon a time", stop_reason: "length", usage, timings, attempt: "a2", seq: 3 } as never,
        ]),
    });
    const res = await app.inject({
      method: "POST",
      url: "/v1/chat/completions",
      headers: auth,
      payload: { model: "m", messages: [{ role: "user", content: "x" }], stream: true, stream_options: { include_usage: true } },
    });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
    const data = parseSse(res.body).map((m) => m.data);
    assert.equal(data.at(-1), "[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join(""), "Once upon a time", "each character once");
    assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason === "length").length, 1);
    assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it("turns a worker's error event into an OpenAI error with the right status", async () => {
    const { app } = setup({
      script: (_r, emit) =>
        emit([
          { type: "start", worker_id: "w" },
          { type: "error", code: "prompt_too_long", message: "too long", retryable: false },
        ]),
    });
    const res = await app.inject({
      method: "POST",
      url: "/v1/chat/completions",
      headers: auth,
      payload: { model: "m", messages: [{ role: "user", content: "x" }] },
    });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, "context_length_exceeded");
    const { app: app2 } = setup({ script: (_r, emit) => emit([{ type: "error", code: "gpu_on_fire", message: "?", retryable: true }]) });
    const odd = await app2.inject({
      method: "POST",
      url: "/v1/chat/completions",
      headers: auth,
      payload: { model: "m", messages: [{ role: "user", content: "x" }] },
    });
    assert.equal(odd.statusCode, 502, "an unknown worker error is a bad gateway, never a 500");
  });

  it("deletes with 200 (OpenAI's conversation.deleted) once applied, 202 when no worker applied it in time, 404 for another tenant (whose c1 is another conversation)", async () => {
    const states = new Map<string, ConversationState>([
      ["acme/c1", { v: 1, type: "conversation", conversation_id: "c1", tenant: "acme", messages: [], applied: [], turns: 0, created_at: 1, updated_at: 1 }],
    ]);
    const applied = setup({
      memory: states,
      script: (_r, emit) =>
        emit([
          { type: "start", worker_id: "w" },
          { type: "final", reply: "", stop_reason: "stop", usage, timings },
        ]),
    });
    const deleted = await applied.app.inject({ method: "DELETE", url: "/v1/conversations/c1", headers: auth });
    assert.equal(deleted.statusCode, 200);
    assert.deepEqual(deleted.json(), { id: "c1", object: "conversation.deleted", conversation_id: "c1", deleted: true });
    assert.equal((await applied.app.inject({ method: "DELETE", url: "/v1/conversations/c1", headers: { authorization: "Bearer k2" } })).statusCode, 404);
    const idle = setup({ memory: states });
    const res = await idle.app.inject({ method: "DELETE", url: "/v1/conversations/c1", headers: auth });
    assert.equal(res.statusCode, 202);
    assert.match(res.json().status_url, /^\/v1\/requests\//);
    assert.equal(res.json().deleted, false);
  });

  it("answers 503 for history while conversation reads are not running", async () => {
    const { app } = setup({ memory: null });
    const res = await app.inject({ method: "GET", url: "/v1/conversations/c1/messages", headers: auth });
    assert.equal(res.statusCode, 503);
  });

  it("refuses a URL before any route in the error shape of its path: OpenAI's under /v1/models and /v1/chat/", async () => {
    const { app } = setup();
    const openAiShape = ["code", "message", "param", "type"];
    for (const url of [`/v1/models/${"m".repeat(300)}`, "/v1/models/m/x", `/v1/chat/${"c".repeat(300)}`]) {
      const res = await app.inject({ method: "GET", url, headers: auth });
      assert.ok(res.statusCode === 400 || res.statusCode === 404, `${url.slice(0, 20)}: ${res.statusCode}`);
      assert.deepEqual(Object.keys(res.json().error).sort(), openAiShape, url.slice(0, 20));
    }
    const native = await app.inject({ method: "GET", url: `/v1/conversations/${"c".repeat(300)}`, headers: auth });
    assert.equal(native.statusCode, 400);
    assert.deepEqual(Object.keys(native.json().error).sort(), ["code", "message", "retryable"]);
    assert.equal((await app.inject({ method: "GET", url: "/v1/modelsx", headers: auth })).json().error.retryable, false, "not a models path");
  });

  it("writes a cancel only for a request that has not ended", async () => {
    const { app, cancels, hub } = setup();
    const accepted = (await app.inject({ method: "POST", url: "/v1/conversations/c1/messages", headers: auth, payload: { content: "Hi" } })).json();
    assert.equal((await app.inject({ method: "POST", url: `/v1/requests/${accepted.request_id}/cancel`, headers: auth })).statusCode, 202);
    assert.deepEqual(cancels, [accepted.request_id]);
    hub.accept({
      v: 1,
      request_id: accepted.request_id,
      conversation_id: "c1",
      tenant: "acme",
      attempt: "a",
      seq: 0,
      at: 0,
      type: "final",
      reply: "",
      stop_reason: "cancelled",
      usage,
      timings,
    });
    const again = await app.inject({ method: "POST", url: `/v1/requests/${accepted.request_id}/cancel`, headers: auth });
    assert.equal(again.json().status, "cancelled");
    assert.equal(cancels.length, 1);
  });
});
