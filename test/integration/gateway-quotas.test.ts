/**
 * Per-tenant quotas on a real gateway and broker (and a stories260K worker for the tokens):
 * each tenant's limits from the keys file, 429 with Retry-After and OpenAI's x-ratelimit-*
 * headers in each route's own error shape, a stream's hold given back when it closes, tokens
 * counted from usage, named history readers (each a Kafka consumer group) counted, and a
 * tenant at its limit never slowing or refusing another.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { apiClient, eventually, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEYS = { a: "quota-a-key", b: "quota-b-key", c: "quota-c-key", d: "quota-d-key", e: "quota-e-key" };

describe("tenant quotas", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service | undefined;
  let dir: string;
  let common: Record<string, string>;
  const prefix = uniquePrefix("gw-quota");
  const as = (tenant: keyof typeof KEYS) => apiClient(gateway.baseUrl, KEYS[tenant]);

  before(async () => {
    kafka = await useKafka();
    dir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-quota-keys-"));
    const keysFile = path.join(dir, "keys.json");
    await writeFile(
      keysFile,
      JSON.stringify([
        { tenant: "a", key: KEYS.a },
        { tenant: "b", key: KEYS.b, limits: { requests_per_minute: 2 } },
        { tenant: "c", key: KEYS.c, limits: { tokens_per_minute: 5 } },
        { tenant: "d", key: KEYS.d, limits: { open_streams: 1 } },
        { tenant: "e", key: KEYS.e, limits: { named_readers: 2 } },
      ]),
    );
    common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS_FILE: keysFile, QUEUE_NOTICE_MS: "500" });
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("holds tenant b to its requests per minute with a 429 in each route's shape, while tenant a goes on", async () => {
    const b = as("b");
    const first = await b("POST", "/v1/conversations", {});
    assert.equal(first.status, 201, first.text);
    assert.equal(first.headers.get("x-ratelimit-limit-requests"), "2");
    assert.equal(first.headers.get("x-ratelimit-remaining-requests"), "1");
    assert.equal((await b("POST", "/v1/conversations", {})).headers.get("x-ratelimit-remaining-requests"), "0");

    const refused = await b("POST", "/v1/conversations", {});
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.body.error.code, "rate_limited");
    assert.match(refused.body.error.message, /tenant b is at its limit of 2 requests per minute/);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1, "Retry-After in seconds");
    assert.equal(refused.headers.get("x-ratelimit-remaining-requests"), "0");
    assert.match(refused.headers.get("x-ratelimit-reset-requests") ?? "", /^(\d+m)?\d+s$/, "OpenAI's reset format: 59s, 1m0s");

    const openai = await b("POST", "/v1/chat/completions", { model: "kafka-llm", messages: [{ role: "user", content: "hi" }] });
    assert.equal(openai.status, 429);
    assert.equal(openai.body.error.type, "rate_limit_error", "OpenAI's shape, which its SDKs back off on");
    const response = await b("POST", "/v1/responses", { model: "kafka-llm", input: "hi" });
    assert.equal(response.status, 429, "a response is work like any turn");
    assert.equal(response.body.error.type, "rate_limit_error");

    // Tenant a has no limit of its own, and b's is not a's.
    for (let i = 0; i < 4; i++) assert.equal((await as("a")("POST", "/v1/conversations", {})).status, 201);

    const metrics = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    assert.match(metrics, /kafka_llm_gateway_rate_limited_total\{tenant="b",limit="requestsPerMinute"\} 3/);
    assert.doesNotMatch(metrics, /rate_limited_total\{tenant="a"/);
  });

  it("holds tenant d to one open stream, given back when it closes", async () => {
    const d = as("d");
    // No worker yet: the request waits, and its stream stays open.
    const created = await d("POST", "/v1/conversations", {});
    assert.equal(created.status, 201, created.text);
    const events = `${gateway.baseUrl}/v1/requests/${created.body.request_id}/events`;
    const auth = { authorization: `Bearer ${KEYS.d}` };
    const first = new AbortController();
    const open = await fetch(events, { headers: auth, signal: first.signal });
    assert.equal(open.status, 200);

    const second = await fetch(events, { headers: auth });
    assert.equal(second.status, 429);
    const body = (await second.json()) as { error: { message: string } };
    assert.match(body.error.message, /tenant d has 1 open event streams on this gateway, its limit/);
    // A streamed response holds a stream like any other.
    const streamed = await d("POST", "/v1/responses", { model: "kafka-llm", input: "hi", stream: true });
    assert.equal(streamed.status, 429, streamed.text);

    // Another tenant's streams are its own.
    const a = await as("a")("POST", "/v1/conversations", {});
    const other = new AbortController();
    assert.equal(
      (await fetch(`${gateway.baseUrl}/v1/requests/${a.body.request_id}/events`, { headers: { authorization: `Bearer ${KEYS.a}` }, signal: other.signal }))
        .status,
      200,
    );
    other.abort();

    first.abort();
    await eventually(
      async () => {
        const again = new AbortController();
        const res = await fetch(events, { headers: auth, signal: again.signal });
        again.abort();
        return res.status === 200 ? true : undefined;
      },
      10_000,
      "the closed stream's hold given back",
    );
  });

  it("counts tokens from usage: tenant c's next call is refused once its minute's tokens are spent", async () => {
    worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "8" });
    const c = as("c");
    const reply = await c("POST", "/v1/chat/completions", { model: "kafka-llm", max_tokens: 8, messages: [{ role: "user", content: "Once upon a time" }] });
    assert.equal(reply.status, 200, reply.text);
    const used = reply.body.usage.prompt_tokens + reply.body.usage.completion_tokens;
    assert.ok(used > 5, `the turn used ${used} tokens, more than c's 5 a minute`);
    // The final reaches the quota through the gateway's read of chat.events, just after the answer.
    const refused = await eventually(
      async () => {
        const res = await c("POST", "/v1/chat/completions", { model: "kafka-llm", max_tokens: 8, messages: [{ role: "user", content: "again" }] });
        return res.status === 429 ? res : undefined;
      },
      10_000,
      "c refused for its tokens",
    );
    assert.match(refused.body.error.message, /tenant c is at its limit of 5 tokens per minute/);
    assert.equal(refused.headers.get("x-ratelimit-limit-tokens"), "5");
    assert.equal(refused.headers.get("x-ratelimit-remaining-tokens"), "0");
    // Tenant a is answered meanwhile.
    assert.equal(
      (await as("a")("POST", "/v1/chat/completions", { model: "kafka-llm", max_tokens: 4, messages: [{ role: "user", content: "hi" }] })).status,
      200,
    );
  });

  it("holds tenant e to two named history readers: a third is refused, those it has go on, and tenant a's are its own", async () => {
    worker ??= await startWorker(common, { DEFAULT_MAX_TOKENS: "8" });
    const messages = {
      messages: [
        { role: "user", content: "One." },
        { role: "assistant", content: "Two." },
      ],
    };
    for (const tenant of ["e", "a"] as const) {
      const appended = await as(tenant)("POST", "/v1/conversations/readers/history", messages);
      assert.equal(appended.status, 200, appended.text);
    }
    const read = (tenant: "a" | "e", query: string) => as(tenant)("GET", `/v1/conversations/readers/messages${query}`);
    assert.equal((await read("e", "?from=beginning&reader=r1")).status, 200);
    assert.equal((await read("e", "?from=beginning&reader=r2")).status, 200);
    const refused = await read("e", "?from=beginning&reader=r3");
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.body.error.code, "rate_limited");
    assert.match(refused.body.error.message, /tenant e has 2 named history readers on this gateway, its limit/);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);

    const again = await read("e", "?from=last_consumed&reader=r1");
    assert.equal(again.status, 200, "a reader it has goes on");
    assert.equal((await read("e", "?from=beginning")).status, 200, "a read without a reader goes on");
    assert.equal((await read("a", "?from=beginning&reader=r3")).status, 200, "tenant a's readers are not e's");

    const metrics = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    assert.match(metrics, /kafka_llm_gateway_rate_limited_total\{tenant="e",limit="namedReaders"\} 1/);
  });
});
