/**
 * Every request a client waits on ends, and the client is told: on the real broker and
 * gateway (and a stories260K worker where a reply is needed).
 *
 *   - The tracker (issue 24): with MAX_TRACKED_REQUESTS=30, tenant a follows a reply that
 *     waits for a worker while tenant b opens 80 conversations. a's request was dropped
 *     from the tracker and its stream never ended; now b is held to its share
 *     (MAX_TRACKED_REQUESTS_PER_TENANT, a quarter: 8), told 429 with Retry-After past it,
 *     and a's stream ends with the final once a worker answers. With the worker running, b
 *     goes on opening conversations (its finished requests make room) without pushing
 *     a's out.
 *   - The deadline: with no worker running and GATEWAY_REQUEST_DEADLINE_MS=2000, a native
 *     event stream ends with an `error` event (deadline_exceeded) naming the request's
 *     status URL, a streamed chat completion ends with an error chunk, a non-streamed one
 *     answers 504 with the request id; the request is still there to look up.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { apiClient, eventually, type ApiResponse, metricValue, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents, followSse, parseSse } from "../helpers/sse.js";

const KEY_A = "bounds-a-key-0123456789";
const KEY_B = "bounds-b-key-9876543210";

const within = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms).unref())]);

describe("gateway bounds", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  const services: Service[] = [];
  const streams: Array<ReturnType<typeof followSse>> = [];

  before(async () => {
    kafka = await useKafka();
  });

  after(async () => {
    for (const s of streams) s.close();
    for (const s of services.reverse()) await s.stop();
    await kafka?.stop();
  });

  it("holds tenant b to its share of the tracker, so tenant a's followed reply still ends", async () => {
    const common = stackEnv(kafka, uniquePrefix("gw-bounds-tracker"), 2);
    const gateway = await startGateway(common, { GATEWAY_API_KEYS: `a:${KEY_A},b:${KEY_B}`, MAX_TRACKED_REQUESTS: "30" });
    services.push(gateway);
    const a = apiClient(gateway.baseUrl, KEY_A);
    const b = apiClient(gateway.baseUrl, KEY_B);

    const turn = await a("POST", "/v1/conversations/a-story/messages", { content: "Once upon a time", max_tokens: 4 });
    assert.equal(turn.status, 202, turn.text);
    const stream = followSse(gateway.baseUrl + turn.body.events_url, { authorization: `Bearer ${KEY_A}` });
    streams.push(stream);
    await eventually(async () => (stream.messages.some((m) => m.event === "queued") ? true : undefined), 10_000, "a's stream to be open");

    // No worker: every open b sends stays in flight.
    const statuses: number[] = [];
    let refused: ApiResponse | undefined;
    for (let i = 0; i < 80; i++) {
      const res = await b("POST", "/v1/conversations", {});
      statuses.push(res.status);
      if (res.status === 429) refused ??= res;
    }
    assert.equal(statuses.filter((s) => s === 201).length, 8, `b's share, a quarter of 30: ${statuses.join(",")}`);
    assert.equal(statuses.filter((s) => s === 429).length, 72);
    assert.equal(refused!.headers.get("retry-after"), "5");
    assert.equal(refused!.body.error.code, "rate_limited");
    assert.match(refused!.body.error.message, /tenant b has 8 requests in flight or followed.*MAX_TRACKED_REQUESTS_PER_TENANT=8/);
    assert.equal((await a("GET", turn.body.status_url)).status, 200, "a's request is still tracked");

    services.push(await startWorker(common, { DEFAULT_MAX_TOKENS: "4" }));
    assert.equal(await within(stream.done, 90_000, "a's stream to end"), true);
    const events = chatEvents(stream.messages);
    assert.equal(events.at(-1)?.type, "final", JSON.stringify(events.at(-1)));
    // Resumed after the final it had, a stream ends at once rather than wait for the deadline.
    const t0 = Date.now();
    const resumed = await readEvents(gateway.baseUrl + turn.body.events_url, KEY_A, stream.messages.at(-1)!.id, 10_000);
    assert.deepEqual(resumed, []);
    assert.ok(Date.now() - t0 < 5000);

    // With a worker, b's requests end and make room: b opens 40 more (waiting out a 429),
    // and each drops one of b's own finished requests, never a's.
    for (let i = 0; i < 40; i++) {
      const res = await eventually(
        async () => {
          const r = await b("POST", "/v1/conversations", {});
          if (r.status === 429) await new Promise((resolve) => setTimeout(resolve, 100));
          return r.status === 429 ? undefined : r;
        },
        60_000,
        `b's open ${i}`,
      );
      assert.equal(res.status, 201, res.text);
    }
    assert.equal((await a("GET", turn.body.status_url)).body.status, "completed", "a's finished request was not pushed out by b's");
    const metrics = await fetch(`${gateway.baseUrl}/metrics`).then((r) => r.text());
    const tracked = metricValue(metrics, "kafka_llm_gateway_tracked_requests");
    assert.ok(tracked !== undefined && tracked <= 30, `tracked ${tracked}`);
  });

  it("ends every wait at GATEWAY_REQUEST_DEADLINE_MS and says where to look the request up", async () => {
    const common = stackEnv(kafka, uniquePrefix("gw-bounds-deadline"), 2);
    const gateway = await startGateway(common, { GATEWAY_API_KEYS: `a:${KEY_A}`, GATEWAY_REQUEST_DEADLINE_MS: "2000" });
    services.push(gateway);
    const a = apiClient(gateway.baseUrl, KEY_A);

    // The native stream: an error event without an id (a resume starts after the last chat event).
    const turn = await a("POST", "/v1/conversations/no-worker/messages", { content: "Hello", max_tokens: 4 });
    assert.equal(turn.status, 202, turn.text);
    let t0 = Date.now();
    const messages = await readEvents(gateway.baseUrl + turn.body.events_url, KEY_A, undefined, 30_000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 1900 && elapsed < 10_000, `ended after ${elapsed} ms`);
    const last = messages.at(-1)!;
    assert.equal(last.event, "error");
    assert.equal(last.id, undefined);
    const error = JSON.parse(last.data);
    assert.equal(error.type, "error");
    assert.equal(error.code, "deadline_exceeded");
    assert.equal(error.request_id, turn.body.request_id);
    assert.equal(error.status_url, turn.body.status_url);
    assert.match(error.message, new RegExp(`within 2 s .*${turn.body.status_url}`));

    // The OpenAI stream: an error chunk, as for any error.
    const body = { model: "kafka-llm", messages: [{ role: "user", content: "Hello" }], max_tokens: 4 };
    t0 = Date.now();
    const streamed = await fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY_A}`, "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(streamed.status, 200);
    const streamedId = streamed.headers.get("x-request-id")!;
    const chunks = parseSse(await streamed.text()).map((m) => m.data);
    assert.ok(Date.now() - t0 >= 1900, "not before the deadline");
    const errorChunk = JSON.parse(chunks.at(-1)!);
    assert.equal(errorChunk.error.code, "deadline_exceeded");
    assert.match(errorChunk.error.message, new RegExp(`/v1/requests/${streamedId}`));

    // The non-streamed call: 504 with the request id.
    t0 = Date.now();
    const whole = await a("POST", "/v1/chat/completions", body);
    assert.ok(Date.now() - t0 >= 1900, "not before the deadline");
    assert.equal(whole.status, 504, whole.text);
    const wholeId = whole.headers.get("x-request-id")!;
    assert.match(wholeId, /^[0-9a-f-]{36}$/);
    assert.equal(whole.body.error.code, "deadline_exceeded");
    assert.equal(whole.body.error.type, "server_error");
    assert.match(whole.body.error.message, new RegExp(`request ${wholeId} did not end .*/v1/requests/${wholeId}`));

    // Each request goes on: still there to look up, waiting for a worker.
    for (const id of [turn.body.request_id, streamedId, wholeId]) {
      const status = await a("GET", `/v1/requests/${id}`);
      assert.equal(status.status, 200, status.text);
      assert.equal(status.body.status, "queued");
    }
  });
});
