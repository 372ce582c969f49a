/**
 * kafka_llm_gateway_http_request_duration_seconds over real sockets: the route template and
 * never the URL, a fixed route for unmatched calls, calls an earlier-registered hook lets
 * through and a later one refuses, and streams timed to their end or to their client leaving.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { registerHttpMetrics, UNMATCHED_ROUTE } from "../../../gateway/http-metrics.js";
import { createGatewayMetrics, type GatewayMetrics } from "../../../gateway/metrics.js";

const STREAM_MS = 300;

describe("HTTP request duration by route", () => {
  let app: FastifyInstance;
  let metrics: GatewayMetrics;
  let base: string;

  before(async () => {
    metrics = createGatewayMetrics({ trackedRequests: () => 0, recentTurns: () => ({ meanSeconds: 0, count: 0 }) });
    app = Fastify({ forceCloseConnections: true });
    registerHttpMetrics(app, metrics);
    // Registered after the metrics' hook, as gateway/app.ts's authentication is.
    app.addHook("onRequest", async (request, reply) => {
      if (request.headers.authorization !== "Bearer k") return reply.code(401).send({ error: "no key" });
    });
    app.get("/v1/conversations/:id/messages", async () => ({ ok: true }));
    app.get("/v1/stream", async (_request, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "text/event-stream" });
      reply.raw.write("data: 1\n\n");
      const timer = setTimeout(() => reply.raw.end("data: [DONE]\n\n"), STREAM_MS);
      reply.raw.once("close", () => clearTimeout(timer));
    });
    app.get("/v1/slow", async () => new Promise((resolve) => setTimeout(() => resolve({ late: true }), STREAM_MS)));
    await app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  after(() => app.close());

  const call = async (path: string, key = "k") => {
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${key}` } });
    await res.text();
    return res.status;
  };
  /** Waits until the histogram has `n` observations (a socket's close comes after the client has read the response). */
  const series = async (n: number) => {
    for (let i = 0; i < 100; i++) {
      const values = (await metrics.httpRequestDuration.get()).values;
      const counts = values.filter((v) => v.metricName?.endsWith("_count"));
      if (counts.reduce((sum, v) => sum + v.value, 0) >= n) return values;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`fewer than ${n} observations`);
  };
  const countOf = (values: Awaited<ReturnType<typeof series>>, labels: Record<string, string>) =>
    values.find((v) => v.metricName?.endsWith("_count") && Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value ??
    0;
  const sumOf = (values: Awaited<ReturnType<typeof series>>, labels: Record<string, string>) =>
    values.find((v) => v.metricName?.endsWith("_sum") && Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value ?? 0;

  it("labels calls by method, route template and status; unmatched and refused calls too", async () => {
    metrics.httpRequestDuration.reset();
    assert.equal(await call("/v1/conversations/a/messages"), 200);
    assert.equal(await call("/v1/conversations/b/messages"), 200);
    assert.equal(await call("/v1/conversations/c/messages", "wrong"), 401);
    assert.equal(await call("/no/such/path/42"), 404);
    const values = await series(4);
    const route = "/v1/conversations/:id/messages";
    assert.equal(countOf(values, { method: "GET", route, status_code: "200" }), 2, "two ids, one series");
    assert.equal(countOf(values, { method: "GET", route, status_code: "401" }), 1, "refused by a later hook, still timed");
    assert.equal(countOf(values, { method: "GET", route: UNMATCHED_ROUTE, status_code: "404" }), 1);
    const routes = new Set(values.map((v) => v.labels.route));
    assert.deepEqual([...routes].sort(), [route, UNMATCHED_ROUTE].sort(), "never a raw URL");
  });

  it("times a stream until it ends, and one whose client leaves until it left", async () => {
    metrics.httpRequestDuration.reset();
    assert.equal(await call("/v1/stream"), 200);
    let values = await series(1);
    assert.ok(sumOf(values, { route: "/v1/stream", status_code: "200" }) >= (STREAM_MS - 20) / 1000, "the whole stream");

    metrics.httpRequestDuration.reset();
    const left = new AbortController();
    const res = await fetch(`${base}/v1/stream`, { headers: { authorization: "Bearer k" }, signal: left.signal });
    assert.equal(res.status, 200);
    left.abort();
    values = await series(1);
    const seconds = sumOf(values, { route: "/v1/stream", status_code: "200" });
    assert.ok(seconds > 0 && seconds < (STREAM_MS - 50) / 1000, `timed to the client leaving, not the stream's end (${seconds} s)`);

    metrics.httpRequestDuration.reset();
    const gone = new AbortController();
    const pending = fetch(`${base}/v1/slow`, { headers: { authorization: "Bearer k" }, signal: gone.signal }).catch(() => null);
    await new Promise((r) => setTimeout(r, 50));
    gone.abort();
    await pending;
    values = await series(1);
    assert.equal(countOf(values, { route: "/v1/slow", status_code: "499" }), 1, "left before any response began");
  });
});
