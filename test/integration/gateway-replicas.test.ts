/**
 * Several gateway replicas: any replica answers status and events for a request another
 * replica accepted (queued before a worker takes it, then streamed), a stream read on one
 * replica resumes on another, a replica started later knows recent requests from its
 * look-back, and per-request state is evicted after its TTL.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { apiClient, eventually, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const KEY = "replica-key-7654321";

describe("several gateway replicas", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let common: Record<string, string>;
  let a: Service;
  let b: Service;
  let shortLived: Service;
  let late: Service | undefined;
  let worker: Service | undefined;
  const prefix = uniquePrefix("gw-replicas");
  const keys = { GATEWAY_API_KEYS: `t:${KEY}` };
  let accepted: { request_id: string; events_url: string; status_url: string };

  before(async () => {
    kafka = await useKafka();
    common = stackEnv(kafka, prefix);
    [a, b, shortLived] = await Promise.all([
      startGateway(common, keys, "gateway-a"),
      startGateway(common, keys, "gateway-b"),
      startGateway(common, { ...keys, REQUEST_STATE_TTL_MS: "2000" }, "gateway-ttl"),
    ]);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), shortLived?.stop(), late?.stop(), worker?.stop()]);
    await kafka?.stop();
  });

  it("shows a request accepted by A as queued on B before any worker runs it", async () => {
    const res = await apiClient(a.baseUrl, KEY)("POST", "/v1/conversations/rep-1/messages", { content: "Tell me about the moon.", max_tokens: 24 });
    assert.equal(res.status, 202);
    accepted = res.body;
    const status = await apiClient(b.baseUrl, KEY)("GET", accepted.status_url);
    assert.equal(status.status, 200, status.text);
    assert.equal(status.body.status, "queued");
    assert.equal(status.body.conversation_id, "rep-1");
  });

  it("streams the same events from either replica once a worker runs it", async () => {
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10" });
    const [fromA, fromB] = await Promise.all([
      readEvents(a.baseUrl + accepted.events_url, KEY).then(chatEvents),
      readEvents(b.baseUrl + accepted.events_url, KEY).then(chatEvents),
    ]);
    assert.equal(fromA.at(-1)!.type, "final");
    assert.deepEqual(fromB, fromA);
    const status = await apiClient(b.baseUrl, KEY)("GET", accepted.status_url);
    assert.equal(status.body.status, "completed");
  });

  it("resumes on B a stream read on A", async () => {
    const res = await apiClient(a.baseUrl, KEY)("POST", "/v1/conversations/rep-2/messages", { content: "Once upon a time", max_tokens: 30 });
    const all = chatEvents(await readEvents(a.baseUrl + res.body.events_url, KEY));
    assert.ok(all.length >= 3);
    const resumed = chatEvents(await readEvents(b.baseUrl + res.body.events_url, KEY, `${all[1]!.seq}@${all[1]!.attempt}`));
    assert.deepEqual(resumed, all.slice(2));
  });

  it("knows recent requests on a replica started after they ended (look-back)", async () => {
    late = await startGateway(common, keys, "gateway-late");
    const status = await apiClient(late.baseUrl, KEY)("GET", accepted.status_url);
    assert.equal(status.status, 200, status.text);
    assert.equal(status.body.status, "completed");
    const fromLate = chatEvents(await readEvents(late.baseUrl + accepted.events_url, KEY));
    const fromA = chatEvents(await readEvents(a.baseUrl + accepted.events_url, KEY));
    assert.deepEqual(fromLate, fromA);
  });

  it("evicts a request's state after REQUEST_STATE_TTL_MS", async () => {
    const ttl = apiClient(shortLived.baseUrl, KEY);
    const res = await ttl("POST", "/v1/conversations/rep-3/messages", { content: "Short.", max_tokens: 4 });
    chatEvents(await readEvents(shortLived.baseUrl + res.body.events_url, KEY));
    assert.equal((await ttl("GET", res.body.status_url)).status, 200);
    await eventually(async () => ((await ttl("GET", res.body.status_url)).status === 404 ? true : undefined), 30_000, "the state to be evicted");
    assert.equal((await apiClient(a.baseUrl, KEY)("GET", res.body.status_url)).status, 200, "a replica with the default TTL still has it");
  });
});
