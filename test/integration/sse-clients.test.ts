/**
 * Clients that misbehave on event streams, against a real gateway: hundreds of streams
 * abandoned mid-way (sockets destroyed), round after round, and slow readers that stop
 * reading while their replies are produced. The gateway must give back what each stream
 * held: its hub listeners (kafka_llm_gateway_event_listeners) and its sockets
 * (kafka_llm_gateway_nodejs_active_handles{type="Socket"}) return to where they were,
 * and slow readers still get every event, in order, to the final. Counts, not timings.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { apiClient, eventually, metricValue, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents, parseSse } from "../helpers/sse.js";

const KEY = "sse-clients-key-1";
const STREAMS_PER_ROUND = 200;
/** Kafka connections come and go a little; a leak of streams would be hundreds. */
const SOCKET_SLACK = 3;

interface Stream {
  readonly req: http.ClientRequest;
  readonly res: http.IncomingMessage;
  readonly text: () => string;
  readonly ended: Promise<void>;
}

describe("slow and abandoned event-stream clients", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service | null = null;
  let common: Record<string, string>;
  let api: ReturnType<typeof apiClient>;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const queued: string[] = [];
  let baseline: { listeners: number; sockets: number };

  const gauges = async () => {
    const text = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    return {
      listeners: metricValue(text, "kafka_llm_gateway_event_listeners") ?? Number.NaN,
      sockets: metricValue(text, "kafka_llm_gateway_nodejs_active_handles", { type: "Socket" }) ?? 0,
      heap: metricValue(text, "kafka_llm_gateway_nodejs_heap_size_used_bytes") ?? 0,
      tracked: metricValue(text, "kafka_llm_gateway_tracked_requests") ?? Number.NaN,
    };
  };
  const backToBaseline = (what: string) =>
    eventually(
      async () => {
        const g = await gauges();
        return g.listeners === baseline.listeners && g.sockets <= baseline.sockets + SOCKET_SLACK ? g : undefined;
      },
      60_000,
      what,
    );

  function open(requestId: string): Promise<Stream> {
    return new Promise((resolve, reject) => {
      const req = http.get(
        `${gateway.baseUrl}/v1/requests/${requestId}/events`,
        { agent, headers: { authorization: `Bearer ${KEY}`, accept: "text/event-stream" } },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`events of ${requestId}: HTTP ${res.statusCode}`));
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (text += chunk));
          const ended = new Promise<void>((done) => {
            res.on("end", done);
            res.on("close", done);
            res.on("error", () => done());
          });
          resolve({ req, res, text: () => text, ended });
        },
      );
      req.on("error", () => {}); // destroyed on purpose
      req.once("error", reject);
    });
  }

  before(async () => {
    kafka = await useKafka();
    const prefix = uniquePrefix("sse-clients");
    common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}`, SSE_KEEPALIVE_MS: "1000" });
    api = apiClient(gateway.baseUrl, KEY);
    // No worker yet: these stay queued, so their streams stay open until the client leaves.
    for (let i = 0; i < 20; i++) {
      const res = await api("POST", `/v1/conversations/sse-${i}/messages`, { content: `Story ${i}, please.`, max_tokens: 300 });
      assert.equal(res.status, 202, res.text);
      queued.push(res.body.request_id);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const g = await gauges();
    baseline = { listeners: g.listeners, sockets: g.sockets };
    assert.equal(baseline.listeners, 0, "no listeners before any stream");
  });

  after(async () => {
    agent.destroy();
    await worker?.stop();
    await gateway?.stop();
    await kafka?.stop();
  });

  it(`releases everything of ${STREAMS_PER_ROUND} abandoned streams, three rounds in a row`, async (t) => {
    const heaps: number[] = [];
    for (let round = 1; round <= 3; round++) {
      const streams = await Promise.all(Array.from({ length: STREAMS_PER_ROUND }, (_, i) => open(queued[i % queued.length]!)));
      const open_ = await eventually(
        async () => {
          const g = await gauges();
          return g.listeners === baseline.listeners + STREAMS_PER_ROUND ? g : undefined;
        },
        30_000,
        `round ${round}: ${STREAMS_PER_ROUND} listeners`,
      );
      assert.ok(open_.sockets >= baseline.sockets + STREAMS_PER_ROUND, `round ${round}: the gateway holds a socket per stream (${open_.sockets})`);
      // Leave: half reset their connection, half close it.
      streams.forEach((s, i) => (i % 2 === 0 ? s.req.destroy() : s.res.socket?.end()));
      const g = await backToBaseline(`round ${round}: listeners and sockets back to baseline`);
      assert.equal(g.tracked, queued.length, "tracked requests unchanged: streams add none");
      heaps.push(g.heap);
    }
    t.diagnostic(`heap after each round: ${heaps.map((h) => `${(h / 1e6).toFixed(1)} MB`).join(", ")}`);
  });

  it("gives slow readers every event to the final, then releases their streams", async () => {
    // Readers that read nothing while the replies are generated, then a chunk at a time.
    const slow = await Promise.all(queued.map((id) => open(id)));
    for (const s of slow) s.res.pause();
    worker = await startWorker(common, { DELTA_FLUSH_MS: "5" });
    await eventually(
      async () => {
        for (const id of queued) if ((await api("GET", `/v1/requests/${id}`)).body.status !== "completed") return undefined;
        return true;
      },
      180_000,
      "every queued request to complete",
    );

    for (const s of slow) {
      s.res.on("data", () => {
        s.res.pause();
        setTimeout(() => s.res.resume(), 5);
      });
      s.res.resume();
    }
    await Promise.all(slow.map((s) => s.ended));
    for (const [i, s] of slow.entries()) {
      const events = chatEvents(parseSse(s.text()));
      assert.equal(events.at(-1)?.type, "final", `stream ${i} ends with its final`);
      assert.deepEqual(
        events.map((e) => e.seq),
        events.map((_, n) => n),
        `stream ${i}: every event, in order`,
      );
      const final = events.at(-1)!;
      const text = events
        .filter((e) => e.type === "delta")
        .map((e) => (e.type === "delta" ? e.text : ""))
        .join("");
      assert.equal(final.type === "final" && final.reply, text, `stream ${i}: the deltas add up to the reply`);
    }
    await backToBaseline("slow readers' streams released");
  });

  it("releases streams abandoned while their replies are being generated, and the replies still complete", async () => {
    const running: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await api("POST", `/v1/conversations/sse-run-${i}/messages`, { content: "A long story.", max_tokens: 400 });
      running.push(res.body.request_id);
    }
    const streams = await Promise.all(Array.from({ length: 100 }, (_, i) => open(running[i % running.length]!)));
    // Each leaves at its first delta (or at the end, if the reply was quicker than that).
    await Promise.all(
      streams.map(
        (s) =>
          new Promise<void>((done) => {
            const check = () => {
              if (s.text().includes("event: delta")) {
                s.req.destroy();
                done();
              }
            };
            s.res.on("data", check);
            void s.ended.then(() => done());
          }),
      ),
    );
    await backToBaseline("abandoned running streams released");
    for (const id of running) {
      const status = await eventually(
        async () => {
          const body = (await api("GET", `/v1/requests/${id}`)).body;
          return body.status === "queued" || body.status === "running" ? undefined : body.status;
        },
        120_000,
        `request ${id} to end`,
      );
      assert.equal(status, "completed", "leaving a native stream does not cancel the request");
    }
    assert.equal(gateway.proc.exitCode, null, "the gateway is still running");
  });
});
