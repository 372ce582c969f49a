/**
 * API keys and tenants against a real gateway, broker and worker: 401 without a valid
 * key, keys from env and from a mounted file (re-read when it changes), another tenant
 * gets 404 for a request on every endpoint and, for a conversation id, a conversation of
 * its own (its reads of an id it never used answer 404, writes start its own), keys never
 * reach the log, the explicit no-auth mode (with its warning), and a clear start failure
 * when auth is on without keys.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { apiClient, eventually, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const ALPHA = "alpha-secret-key-1";
const BETA = "beta-secret-key-1";
const BETA_NEXT = "beta-secret-key-2";

describe("gateway auth and tenant isolation", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let dir: string;
  let keysFile: string;
  let common: Record<string, string>;
  const prefix = uniquePrefix("gw-auth");

  before(async () => {
    kafka = await useKafka();
    dir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-keys-"));
    keysFile = path.join(dir, "keys.json");
    await writeFile(keysFile, JSON.stringify({ beta: [BETA] }));
    common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `alpha:${ALPHA}`, GATEWAY_API_KEYS_FILE: keysFile });
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000" });
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers 401 without a valid Bearer key, and serves health, metrics and the page without one", async () => {
    for (const authorization of [undefined, "Bearer nope", `Basic ${ALPHA}`, "Bearer", `bearer ${ALPHA}x`]) {
      const res = await fetch(`${gateway.baseUrl}/v1/conversations`, {
        method: "POST",
        headers: authorization ? { authorization } : {},
      });
      assert.equal(res.status, 401, String(authorization));
      assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "unauthorized");
    }
    assert.equal((await fetch(`${gateway.baseUrl}/v1/models`)).status, 401);
    for (const open of ["/healthz", "/readyz", "/metrics", "/"]) assert.equal((await fetch(gateway.baseUrl + open)).status, 200, open);
    // The scheme is case-insensitive, as RFC 7235 says.
    assert.equal((await apiClient(gateway.baseUrl)("GET", "/v1/models", undefined, { authorization: `bearer ${ALPHA}` })).status, 200);
  });

  it("keeps a tenant's requests invisible to another tenant, and its conversation out of the other's reach", async () => {
    const alpha = apiClient(gateway.baseUrl, ALPHA);
    const beta = apiClient(gateway.baseUrl, BETA);
    const opened = await alpha("POST", "/v1/conversations", { greeting: true });
    assert.equal(opened.status, 201);
    const id = opened.body.id as string;
    const turn = await alpha("POST", `/v1/conversations/${id}/messages`, { content: "Secret plans.", max_tokens: 8 });
    assert.equal(turn.status, 202);
    const rid = turn.body.request_id as string;
    chatEvents(await readEvents(gateway.baseUrl + turn.body.events_url, ALPHA));
    const before = await alpha("GET", `/v1/conversations/${id}/messages`);
    assert.equal(before.status, 200);

    // Reads of alpha's request and conversation, as beta: 404, as for ones nobody made.
    const probes: Array<[string, string]> = [
      ["GET", `/v1/requests/${rid}`],
      ["GET", `/v1/requests/${rid}/events`],
      ["POST", `/v1/requests/${rid}/cancel`],
      ["GET", `/v1/conversations/${id}`],
      ["GET", `/v1/conversations/${id}/messages`],
      ["DELETE", `/v1/conversations/${id}`],
    ];
    for (const [method, p] of probes) {
      const res = await beta(method, p);
      assert.equal(res.status, 404, `${method} ${p} as another tenant → ${res.status} ${res.text}`);
    }
    // Writes under the same id make beta's own conversation; alpha's is untouched.
    const own = await beta("POST", `/v1/conversations/${id}/messages`, { content: "Tell me the plans.", max_tokens: 4 });
    assert.equal(own.status, 202, own.text);
    const ownEvents = chatEvents(await readEvents(gateway.baseUrl + own.body.events_url, BETA));
    assert.equal(ownEvents.at(-1)!.type, "final");
    const completion = await beta(
      "POST",
      "/v1/chat/completions",
      { model: "kafka-llm", messages: [{ role: "user", content: "plans?" }], max_tokens: 4 },
      { "x-conversation-id": id },
    );
    assert.equal(completion.status, 200, completion.text);
    const theirs = await beta("GET", `/v1/conversations/${id}/messages?from=beginning`);
    assert.deepEqual(
      theirs.body.messages.filter((m: { role: string }) => m.role === "user").map((m: { content: string }) => m.content),
      ["Tell me the plans.", "plans?"],
      "beta's conversation holds only what beta sent",
    );
    const after = await alpha("GET", `/v1/conversations/${id}/messages`);
    assert.deepEqual(after.body.messages, before.body.messages, "nothing another tenant did changed alpha's conversation");
    assert.equal((await alpha("GET", `/v1/requests/${rid}`)).body.status, "completed");
  });

  it("re-reads the mounted keys file when it changes", async () => {
    const next = apiClient(gateway.baseUrl, BETA_NEXT);
    assert.equal((await next("GET", "/v1/models")).status, 401);
    await writeFile(keysFile, `# rotated\nbeta:${BETA_NEXT}\n`);
    await eventually(async () => ((await next("GET", "/v1/models")).status === 200 ? true : undefined), 30_000, "the new key to work");
    assert.equal((await apiClient(gateway.baseUrl, BETA)("GET", "/v1/models")).status, 401, "the rotated-out key stops working");
    assert.equal((await apiClient(gateway.baseUrl, ALPHA)("GET", "/v1/models")).status, 200, "env keys stay");
  });

  it("never writes a key to the log", () => {
    const log = gateway.output();
    assert.ok(log.length > 0);
    for (const key of [ALPHA, BETA, BETA_NEXT]) assert.ok(!log.includes(key), "a key appeared in the gateway log");
  });

  it("runs without auth only when told to, and says so in the log", async () => {
    const open = await startGateway(common, { GATEWAY_AUTH: "none" }, "gateway-noauth");
    try {
      const res = await apiClient(open.baseUrl)("POST", "/v1/conversations", {});
      assert.equal(res.status, 201);
      assert.match(open.output(), /"level":40[^\n]*GATEWAY_AUTH=none/);
    } finally {
      await open.stop();
    }
    await assert.rejects(startGateway(common, {}, "gateway-nokeys"), /exited with 2[\s\S]*API keys are required but none are set/);
  });
});
