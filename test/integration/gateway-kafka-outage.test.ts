/**
 * Kafka going away and coming back, with a broker of this file's own: while it is down
 * the gateway answers 503 with Retry-After quickly (never hangs, never 500), stays alive
 * and healthy; when a broker comes back on the same port with the same data, the gateway
 * takes requests again and streams their replies without being restarted. While it is
 * down, neither the gateway nor the worker spins (a broker starting beside them needs the CPU).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { apiClient, eventually, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { uniquePrefix } from "../helpers/kafka.js";
import { freePort, type Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const KEY = "outage-key-123456";

describe("gateway while Kafka is unreachable", { timeout: 240_000 }, () => {
  let broker: RunningBroker | null = null;
  let dataDir: string;
  let port: number;
  let controllerPort: number;
  let gateway: Service;
  let worker: Service;
  let api: ReturnType<typeof apiClient>;
  const prefix = uniquePrefix("gw-outage");

  /** The same ports and data every time, so the restarted broker is the same cluster. */
  const start = () => startBroker({ port, controllerPort, dataDir });

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-outage-"));
    port = await freePort();
    controllerPort = await freePort();
    broker = await start();
    const common = stackEnv(broker, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}`, KAFKA_SEND_TIMEOUT_MS: "1500", LAG_REFRESH_MS: "1000" });
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10" });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop("SIGKILL");
    await broker?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("answers 503 with Retry-After while the broker is down and recovers by itself when it is back", async (t) => {
    const before = await api("POST", "/v1/conversations/outage-1/messages", { content: "Before.", max_tokens: 8 });
    assert.equal(before.status, 202);
    chatEvents(await readEvents(gateway.baseUrl + before.body.events_url, KEY));

    await broker!.stop();
    broker = null;

    const startedAt = Date.now();
    const down = await api("POST", "/v1/conversations/outage-1/messages", { content: "During." });
    t.diagnostic(`503 after ${Date.now() - startedAt} ms`);
    assert.equal(down.status, 503, down.text);
    assert.equal(down.headers.get("retry-after"), "2");
    assert.deepEqual(down.body.error, { code: "kafka_unavailable", message: down.body.error.message, retryable: true });
    assert.match(down.body.error.message, /Kafka is not reachable/);

    const openai = await api("POST", "/v1/chat/completions", { model: "kafka-llm", messages: [{ role: "user", content: "Hi" }] });
    assert.equal(openai.status, 503);
    assert.ok(openai.headers.get("retry-after"));
    assert.equal(openai.body.error.type, "service_unavailable");

    for (const [method, p] of [
      ["POST", "/v1/conversations"],
      ["POST", `/v1/requests/${before.body.request_id}/cancel`],
    ] as const) {
      const res = await api(method, p, {});
      // The request that ended needs no cancel record, so its cancel still answers 202.
      assert.ok(res.status === 503 || (p.endsWith("/cancel") && res.status === 202), `${method} ${p} → ${res.status}`);
    }
    // The history is read from Kafka: a 503 to retry, never a page passed off as the whole.
    const history = await api("GET", "/v1/conversations/outage-1/messages");
    assert.equal(history.status, 503, history.text);
    assert.equal(history.body.error.code, "kafka_unavailable");
    assert.equal(history.headers.get("retry-after"), "2");
    // What the gateway already holds is still served: the finished request's status.
    assert.equal((await api("GET", before.body.status_url)).body.status, "completed");
    assert.equal((await fetch(`${gateway.baseUrl}/healthz`)).status, 200);

    // Nothing spins while Kafka is away. The gateway's lag exporter asks for the topic's
    // offsets every second here, the worker's clients reconnect: a client that retries
    // without its back-off (as librdkafka's DescribeTopics did, asking for a controller
    // connection at every broker state change) burns a core per service, and on a shared
    // node starves the broker that is starting again. Idle, each uses a few percent.
    const window = 5000;
    const cpuBefore = [gateway.cpuSeconds(), worker.cpuSeconds()];
    await new Promise((r) => setTimeout(r, window));
    const [gatewayCpu, workerCpu] = [gateway.cpuSeconds() - cpuBefore[0]!, worker.cpuSeconds() - cpuBefore[1]!];
    t.diagnostic(`CPU while Kafka is away, over ${window / 1000} s: gateway ${gatewayCpu.toFixed(2)} s, worker ${workerCpu.toFixed(2)} s`);
    assert.ok(gatewayCpu < (window / 1000) * 0.2, `the gateway used ${gatewayCpu.toFixed(2)} s of CPU in ${window / 1000} s while Kafka was away`);
    assert.ok(workerCpu < (window / 1000) * 0.2, `the worker used ${workerCpu.toFixed(2)} s of CPU in ${window / 1000} s while Kafka was away`);

    broker = await start();

    const after = await eventually(
      async () => {
        const res = await api("POST", "/v1/conversations/outage-1/messages", { content: "After.", max_tokens: 8 });
        return res.status === 202 ? res : undefined;
      },
      90_000,
      "the gateway to take requests again",
    );
    const events = chatEvents(await readEvents(gateway.baseUrl + after.body.events_url, KEY, undefined, 120_000));
    assert.equal(events.at(-1)!.type, "final", "the reply streams again: the gateway's consumer is back too");
    assert.equal(gateway.proc.exitCode, null, "the gateway was never restarted");
    // The history's head comes from the worker owning the conversation, which may still be
    // catching up with Kafka after the restart: the newest turn shows once it has.
    const userMessages = async () => {
      const whole = await api("GET", "/v1/conversations/outage-1/messages");
      assert.equal(whole.status, 200, whole.text);
      // (The 503'd "During." may have reached Kafka after all, as a POST without an Idempotency-Key can.)
      return whole.body.messages.filter((m: { role: string }) => m.role === "user").map((m: { content: string }) => m.content) as string[];
    };
    let users: string[] = [];
    await eventually(
      async () => {
        users = await userMessages();
        return users.includes("After.") ? users : undefined;
      },
      30_000,
      "the history to read again, to its end",
    );
    assert.equal(users[0], "Before.", "the history reads again, from its beginning");
    const metrics = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    assert.match(metrics, /kafka_llm_gateway_kafka_send_failures_total [1-9]/);
  });
});
