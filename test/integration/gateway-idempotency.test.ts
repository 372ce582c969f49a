/**
 * Safe retries on every POST that creates work: under one Idempotency-Key, a chat
 * completion (with X-Conversation-Id or stateless), a conversation's opening, a history
 * append and a cancel give the same answer and apply once, at either of two gateway
 * replicas, sent one after the other or at the same moment; a key used again for another
 * request is refused where it was seen. The openai SDK's own retries (it sends no key by
 * itself, only X-Stainless-Retry-Count: the key goes in the request options, or in its
 * idempotencyHeader) are safe across replicas: a proxy that loses the first answer sends
 * the retry to the other replica. A key is the tenant's own: two tenants sending the same key
 * (with the same body or not) to one conversation id each get their own request, applied once
 * in their own conversation. Real broker, two gateway processes, one stories260K worker.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { apiClient, stackEnv, startGateway, startWorker, type ApiResponse } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { parseSse } from "../helpers/sse.js";

const KEY = "idem-test-key-123456";
/** API keys of two more tenants, for the proof that one tenant's Idempotency-Key is not another's. */
const TENANT_KEYS = { ta: "idem-tenant-a-key-123456", tb: "idem-tenant-b-key-123456" } as const;
type Tenant = keyof typeof TENANT_KEYS;
const MODEL = "stories-260k";

interface HistoryMessage {
  role: string;
  content: string;
  request_id?: string;
}

/** Forwards the first request to `first` and loses its answer (the connection drops); every later one goes to `then`. */
class LosingProxy {
  readonly attempts: Array<{ retryCount: string | undefined; key: string | undefined; to: string }> = [];
  #server: http.Server;
  url = "";

  constructor(
    readonly first: Service,
    readonly then: Service,
  ) {
    this.#server = http.createServer((req, res) => {
      const to = this.attempts.length === 0 ? first : then;
      const lose = to === first;
      this.attempts.push({ retryCount: header(req, "x-stainless-retry-count"), key: header(req, "idempotency-key"), to: to.name });
      const target = new URL(to.baseUrl);
      const headers = { ...req.headers, host: target.host };
      const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (answer) => {
        if (lose) {
          // The gateway answered; the client never hears it.
          answer.resume();
          answer.once("end", () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      upstream.on("error", () => req.socket.destroy());
      req.pipe(upstream);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  stop(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** An openai client that sends an Idempotency-Key with every POST by itself (kept on its retries). */
class KeyedOpenAI extends OpenAI {
  protected override idempotencyHeader = "Idempotency-Key";
}

describe("Idempotency-Key across gateway replicas", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let a: Service;
  let b: Service;
  let worker: Service;
  const prefix = uniquePrefix("gw-idem");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    const env = { GATEWAY_API_KEYS: `t:${KEY},ta:${TENANT_KEYS.ta},tb:${TENANT_KEYS.tb}`, MODEL_NAME: MODEL };
    [a, b] = await Promise.all([startGateway(common, env, "gateway-a"), startGateway(common, env, "gateway-b")]);
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000", WORKER_SLOTS: "2" });
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), worker?.stop()]);
    await kafka?.stop();
  });

  const api = (gateway: Service) => apiClient(gateway.baseUrl, KEY);
  const completion = (gateway: Service, body: object, headers: Record<string, string>) =>
    api(gateway)("POST", "/v1/chat/completions", { model: MODEL, max_tokens: 12, ...body }, headers);

  async function history(conversationId: string): Promise<HistoryMessage[]> {
    const res = await api(a)("GET", `/v1/conversations/${conversationId}/messages?from=beginning&limit=100`);
    assert.equal(res.status, 200, res.text);
    return res.body.messages as HistoryMessage[];
  }

  /** The request's status once it ended (a 202 or a 201 comes before the reply). */
  async function ended(call: ReturnType<typeof apiClient>, requestId: string): Promise<{ status: string; reply: string }> {
    for (let i = 0; i < 300; i++) {
      const res = await call("GET", `/v1/requests/${requestId}`);
      assert.equal(res.status, 200, res.text);
      if (res.body.status !== "queued" && res.body.status !== "running") return res.body;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`request ${requestId} did not end`);
  }

  function reply(res: ApiResponse): string {
    assert.equal(res.status, 200, res.text);
    return res.body.choices[0].message.content as string;
  }

  it("runs a chat completion with X-Conversation-Id sent to both replicas at once under one key once", async () => {
    const conv = "idem-completion-1";
    const headers = { "x-conversation-id": conv, "idempotency-key": "completion-1" };
    const body = { messages: [{ role: "user", content: "Tell me about a dog." }] };
    const [atA, atB] = await Promise.all([completion(a, body, headers), completion(b, body, headers)]);
    assert.equal(atA.body.id, atB.body.id, "both answers carry the same id");
    assert.equal(reply(atA), reply(atB), "the same reply, not a second generation");
    // Retried again later, at either replica, streamed or not: still that answer.
    const later = await completion(b, body, headers);
    assert.equal(later.body.id, atA.body.id);
    assert.equal(reply(later), reply(atA));
    const streamed = await completion(a, { ...body, stream: true }, headers);
    assert.equal(streamed.status, 200, streamed.text);
    assert.equal(streamed.headers.get("x-request-id"), atA.headers.get("x-request-id"));
    const text = parseSse(streamed.text)
      .filter((m) => m.data !== "[DONE]")
      .map((m) => JSON.parse(m.data) as { id: string; choices: Array<{ delta: { content?: string } }> })
      .map((c) => (assert.equal(c.id, atA.body.id), c.choices[0]?.delta.content ?? ""))
      .join("");
    assert.equal(text, reply(atA));
    const messages = await history(conv);
    assert.deepEqual(
      messages.map((m) => m.role),
      ["user", "assistant"],
      "the user's message is in the history once, with one reply",
    );
    assert.equal(messages[0]!.request_id, atA.headers.get("x-request-id"));
  });

  it("answers a stateless completion retried at the other replica with the first's reply", async () => {
    const headers = { "idempotency-key": "stateless-1" };
    const body = { messages: [{ role: "user", content: "Once upon a time" }], temperature: 1.5 };
    const first = await completion(a, body, headers);
    const retry = await completion(b, body, headers);
    assert.equal(retry.body.id, first.body.id);
    assert.equal(reply(retry), reply(first));
    // Another key is another request.
    const other = await completion(b, body, { "idempotency-key": "stateless-2" });
    assert.notEqual(other.body.id, first.body.id);
  });

  it("refuses a key used again for a different request at the replica that saw it (422); elsewhere answers the first", async () => {
    const conv = "idem-reused-1";
    const headers = { "x-conversation-id": conv, "idempotency-key": "reused-1" };
    const first = await completion(a, { messages: [{ role: "user", content: "First question." }] }, headers);
    reply(first);
    const changed = await completion(a, { messages: [{ role: "user", content: "Second question." }] }, headers);
    assert.equal(changed.status, 422, changed.text);
    assert.equal(changed.body.error.code, "idempotency_key_reused");
    assert.equal(changed.body.error.param, "Idempotency-Key");
    assert.match(changed.body.error.message, /different request/);
    // B never saw the first: it cannot tell, and answers as for a retry, applying nothing new.
    const atB = await completion(b, { messages: [{ role: "user", content: "Second question." }] }, headers);
    assert.equal(atB.body.id, first.body.id);
    assert.deepEqual(
      (await history(conv)).map((m) => [m.role, m.role === "user" ? m.content : ""]),
      [
        ["user", "First question."],
        ["assistant", ""],
      ],
    );
    const bad = await completion(a, { messages: [{ role: "user", content: "x" }] }, { "idempotency-key": "no spaces allowed" });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.body.error.message, /Idempotency-Key/);
  });

  it("opens one conversation for a key, at either replica", async () => {
    const headers = { "idempotency-key": "open-1" };
    const [atA, atB] = await Promise.all([
      api(a)("POST", "/v1/conversations", { greeting: true }, headers),
      api(b)("POST", "/v1/conversations", { greeting: true }, headers),
    ]);
    assert.equal(atA.status, 201, atA.text);
    assert.equal(atB.status, 201, atB.text);
    assert.equal(atB.body.id, atA.body.id);
    assert.equal(atB.body.request_id, atA.body.request_id);
    // Its greeting is in the history once the request ended (known is not yet applied).
    assert.equal((await ended(api(b), atA.body.request_id)).status, "completed");
    const again = await api(b)("POST", "/v1/conversations", { greeting: true }, headers);
    assert.equal(again.body.id, atA.body.id);
    assert.deepEqual(
      (await history(atA.body.id)).map((m) => m.role),
      ["assistant"],
      "one greeting",
    );
    const unkeyed = await api(a)("POST", "/v1/conversations", { greeting: false });
    assert.notEqual(unkeyed.body.id, atA.body.id);
  });

  it("appends history once for a key, at either replica", async () => {
    const conv = "idem-append-1";
    const headers = { "idempotency-key": "append-1" };
    const body = { messages: [{ role: "user", content: "Remember me." }] };
    const first = await api(a)("POST", `/v1/conversations/${conv}/history`, body, headers);
    assert.equal(first.status, 200, first.text);
    const retry = await api(b)("POST", `/v1/conversations/${conv}/history`, body, headers);
    assert.equal(retry.status, 200, retry.text);
    assert.equal(retry.body.request_id, first.body.request_id);
    assert.equal(retry.body.total, 1);
    assert.deepEqual(
      (await history(conv)).map((m) => m.content),
      ["Remember me."],
    );
  });

  it("answers a cancel retried under a key the same; a malformed key is refused", async () => {
    const turn = await api(a)("POST", "/v1/conversations/idem-cancel-1/messages", { content: "Go on.", max_tokens: 4 });
    assert.equal(turn.status, 202, turn.text);
    await api(a)("GET", turn.body.status_url);
    const waitDone = async () => {
      for (let i = 0; i < 100; i++) {
        const s = await api(a)("GET", turn.body.status_url);
        if (s.body.status !== "queued" && s.body.status !== "running") return;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await waitDone();
    const headers = { "idempotency-key": "cancel-1" };
    const first = await api(a)("POST", `/v1/requests/${turn.body.request_id}/cancel`, {}, headers);
    const retry = await api(b)("POST", `/v1/requests/${turn.body.request_id}/cancel`, {}, headers);
    assert.equal(first.status, 202, first.text);
    assert.deepEqual(retry.body, first.body);
    const bad = await api(a)("POST", `/v1/requests/${turn.body.request_id}/cancel`, {}, { "idempotency-key": "x".repeat(129) });
    assert.equal(bad.status, 400, bad.text);
  });

  describe("two tenants under one key", () => {
    const TENANTS = ["ta", "tb"] as const;
    // Every call at one replica, so the key it saw first is in its store when the other tenant's comes.
    const as = (tenant: Tenant) => apiClient(a.baseUrl, TENANT_KEYS[tenant]);

    async function historyOf(tenant: Tenant, conversationId: string): Promise<HistoryMessage[]> {
      const res = await as(tenant)("GET", `/v1/conversations/${conversationId}/messages?from=beginning&limit=100`);
      assert.equal(res.status, 200, res.text);
      return res.body.messages as HistoryMessage[];
    }

    /** Each tenant's user messages in its own conversation of the id: the content and the request that put it there. */
    async function userMessages(conversationId: string): Promise<Record<Tenant, Array<[string, string | undefined]>>> {
      const [ta, tb] = await Promise.all(TENANTS.map((t) => historyOf(t, conversationId)));
      const users = (messages: HistoryMessage[]) =>
        messages.filter((m) => m.role === "user").map((m): [string, string | undefined] => [m.content, m.request_id]);
      return { ta: users(ta!), tb: users(tb!) };
    }

    it("applies a message under one key for each tenant on the same conversation id, once each", async () => {
      const conv = "idem-tenants-messages";
      const post = (tenant: Tenant, content: string, key: string) =>
        as(tenant)("POST", `/v1/conversations/${conv}/messages`, { content, max_tokens: 8 }, { "idempotency-key": key });

      // The same key and the same body: a's first, then b's while a's is known to the replica.
      const same = { content: "Tell me about a dog.", key: "tenants-messages-same" };
      const firstA = await post("ta", same.content, same.key);
      assert.equal(firstA.status, 202, firstA.text);
      const firstB = await post("tb", same.content, same.key);
      assert.equal(firstB.status, 202, firstB.text);
      assert.notEqual(firstB.body.request_id, firstA.body.request_id, "b's call is its own request, not a's");
      const [endA, endB] = [await ended(as("ta"), firstA.body.request_id), await ended(as("tb"), firstB.body.request_id)];
      assert.equal(endA.status, "completed");
      assert.equal(endB.status, "completed");
      // Neither tenant can see the other's request.
      assert.equal((await as("tb")("GET", `/v1/requests/${firstA.body.request_id}`)).status, 404);
      assert.equal((await as("ta")("GET", `/v1/requests/${firstB.body.request_id}`)).status, 404);

      // The same key and different bodies: b's is not refused because a used the key...
      const diff = { key: "tenants-messages-diff", ta: "A asks about a cat.", tb: "B asks about a bird." };
      const diffA = await post("ta", diff.ta, diff.key);
      assert.equal(diffA.status, 202, diffA.text);
      const diffB = await post("tb", diff.tb, diff.key);
      assert.equal(diffB.status, 202, diffB.text);
      assert.notEqual(diffB.body.request_id, diffA.body.request_id);
      // ...while a's own reuse of its key for b's body is (the store does refuse what it should).
      const reusedByA = await post("ta", diff.tb, diff.key);
      assert.equal(reusedByA.status, 422, reusedByA.text);
      assert.equal(reusedByA.body.error.code, "idempotency_key_reused");
      await Promise.all([ended(as("ta"), diffA.body.request_id), ended(as("tb"), diffB.body.request_id)]);

      // Each tenant's repeat of its own calls answers with its own requests and replies.
      for (const [tenant, first, end, content] of [
        ["ta", firstA, endA, same.content],
        ["tb", firstB, endB, same.content],
      ] as const) {
        const again = await post(tenant, content, same.key);
        assert.equal(again.status, 202, again.text);
        assert.deepEqual(again.body, first.body, `${tenant}'s repeat is answered as its first`);
        assert.equal((await ended(as(tenant), again.body.request_id)).reply, end.reply);
      }
      for (const [tenant, first] of [
        ["ta", diffA],
        ["tb", diffB],
      ] as const) {
        const again = await post(tenant, diff[tenant], diff.key);
        assert.deepEqual(again.body, first.body, `${tenant}'s repeat of its different body is answered as its first`);
      }

      assert.deepEqual(
        await userMessages(conv),
        {
          ta: [
            [same.content, firstA.body.request_id],
            [diff.ta, diffA.body.request_id],
          ],
          tb: [
            [same.content, firstB.body.request_id],
            [diff.tb, diffB.body.request_id],
          ],
        },
        "each tenant's conversation holds each of its own messages once, and none of the other's",
      );
    });

    it("runs a chat completion with X-Conversation-Id under one key for each tenant, once each", async () => {
      const conv = "idem-tenants-completion";
      const complete = (tenant: Tenant, content: string, key: string) =>
        as(tenant)(
          "POST",
          "/v1/chat/completions",
          { model: MODEL, max_tokens: 12, messages: [{ role: "user", content }] },
          { "x-conversation-id": conv, "idempotency-key": key },
        );

      const same = { content: "Where is the cat?", key: "tenants-completion-same" };
      const firstA = await complete("ta", same.content, same.key);
      const firstB = await complete("tb", same.content, same.key);
      const replyA = reply(firstA);
      const replyB = reply(firstB);
      assert.notEqual(firstB.body.id, firstA.body.id, "b is not answered with a's stored answer");
      assert.notEqual(firstB.headers.get("x-request-id"), firstA.headers.get("x-request-id"));

      const diff = { key: "tenants-completion-diff", ta: "A: tell me about the sun.", tb: "B: tell me about the moon." };
      const diffA = await complete("ta", diff.ta, diff.key);
      reply(diffA);
      const diffB = await complete("tb", diff.tb, diff.key);
      reply(diffB); // 200, not 422: a's use of the key is not b's
      assert.notEqual(diffB.body.id, diffA.body.id);
      const reusedByA = await complete("ta", diff.tb, diff.key);
      assert.equal(reusedByA.status, 422, reusedByA.text);
      assert.equal(reusedByA.body.error.code, "idempotency_key_reused");

      for (const [tenant, first, text] of [
        ["ta", firstA, replyA],
        ["tb", firstB, replyB],
      ] as const) {
        const again = await complete(tenant, same.content, same.key);
        assert.equal(again.body.id, first.body.id, `${tenant}'s repeat carries its first answer's id`);
        assert.equal(reply(again), text, `${tenant}'s repeat is its first reply`);
      }
      for (const [tenant, first] of [
        ["ta", diffA],
        ["tb", diffB],
      ] as const) {
        const again = await complete(tenant, diff[tenant], diff.key);
        assert.equal(again.body.id, first.body.id);
        assert.equal(reply(again), reply(first));
      }

      const requestId = (res: ApiResponse) => res.headers.get("x-request-id") ?? undefined;
      assert.deepEqual(
        await userMessages(conv),
        {
          ta: [
            [same.content, requestId(firstA)],
            [diff.ta, requestId(diffA)],
          ],
          tb: [
            [same.content, requestId(firstB)],
            [diff.tb, requestId(diffB)],
          ],
        },
        "each tenant's conversation holds each of its own messages once, and none of the other's",
      );
    });
  });

  for (const how of ["a key in the request options", "the client's idempotencyHeader"] as const) {
    it(`makes the openai SDK's own retry safe with ${how}, the retry going to the other replica`, async () => {
      const proxy = await new LosingProxy(a, b).start();
      try {
        const conv = `idem-sdk-${how === "a key in the request options" ? "options" : "client"}`;
        const options = { baseURL: `${proxy.url}/v1`, apiKey: KEY, maxRetries: 2, timeout: 30_000 };
        const client = how === "a key in the request options" ? new OpenAI(options) : new KeyedOpenAI(options);
        const headers: Record<string, string> = { "X-Conversation-Id": conv };
        if (how === "a key in the request options") headers["Idempotency-Key"] = `sdk-${conv}`;
        const answer = await client.chat.completions.create(
          { model: MODEL, max_tokens: 12, messages: [{ role: "user", content: "Where is the cat?" }] },
          { headers },
        );
        assert.deepEqual(
          proxy.attempts.map((t) => [t.to, t.retryCount]),
          [
            ["gateway-a", "0"],
            ["gateway-b", "1"],
          ],
          "the first answer was lost and the SDK retried at the other replica",
        );
        const key = proxy.attempts[0]!.key;
        assert.ok(key !== undefined, "a key was sent");
        if (how === "the client's idempotencyHeader") assert.match(key, /^stainless-node-retry-/);
        assert.equal(proxy.attempts[1]!.key, key, "the retry carries the first's key");
        const messages = await history(conv);
        assert.deepEqual(
          messages.map((m) => m.role),
          ["user", "assistant"],
          "the user's message is in the history once",
        );
        assert.equal(answer.choices[0]!.message.content, messages[1]!.content);
        assert.equal(answer.id, `chatcmpl-${messages[0]!.request_id}`);
      } finally {
        await proxy.stop();
      }
    });
  }
});
