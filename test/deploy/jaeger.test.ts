/**
 * The Jaeger helper (test/helpers/jaeger.ts) against the real Jaeger v2 binary
 * (scripts/deploy/jaeger.sh): spans made with the OpenTelemetry JS SDK and exported over
 * OTLP/HTTP (protobuf), as the services export theirs, come back through `trace()` and
 * `traces()` as the tree they were: names, kinds, parent ids, attributes of each type, a
 * link to another trace, an event, and times in microseconds. Jaeger listens only on the
 * four 127.0.0.1 ports the helper chose, and `stop()` ends it.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ROOT_CONTEXT, SpanKind, trace as otelTrace, type SpanContext } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { startJaeger, type Jaeger, type JaegerSpan } from "../helpers/jaeger.js";

const SERVICE = "jaeger-helper-test";

describe("Jaeger v2 (test/helpers/jaeger.ts)", { timeout: 60_000 }, () => {
  let jaeger: Jaeger;
  let provider: TracerProvider;
  let parent: SpanContext;
  let child: SpanContext;
  let other: SpanContext;
  // Whole microseconds since the epoch, handed to the SDK as [seconds, nanoseconds]
  // (milliseconds as a float would round).
  const t0Us = Math.floor(Date.now() / 1000) * 1000 * 1000 + 123_456;

  before(async () => {
    jaeger = await startJaeger();
    provider = new TracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: SERVICE,
        "service.instance.id": "instance-1",
        "deployment.environment.name": "test",
      }),
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${jaeger.otlpHttpEndpoint}/v1/traces` }) })],
    });
    // Not registered globally: contexts are passed explicitly, so nothing else in this
    // process starts exporting to this Jaeger.
    const tracer = provider.getTracer("jaeger-test-scope");
    const hr = (us: number): [number, number] => [Math.floor(us / 1e6), (us % 1e6) * 1000];

    const otherSpan = tracer.startSpan("other work", { startTime: hr(t0Us) }, ROOT_CONTEXT);
    other = otherSpan.spanContext();
    otherSpan.end(hr(t0Us + 500));

    const parentSpan = tracer.startSpan(
      "POST /v1/chat/completions",
      {
        kind: SpanKind.SERVER,
        startTime: hr(t0Us),
        attributes: { "http.request.method": "POST", "http.response.status_code": 200, "test.flag": true },
      },
      ROOT_CONTEXT,
    );
    parent = parentSpan.spanContext();
    const childSpan = tracer.startSpan(
      "send llm.requests",
      {
        kind: SpanKind.PRODUCER,
        startTime: hr(t0Us + 1_000),
        attributes: { "messaging.system": "kafka", "test.ratio": 0.25, "test.tags": ["a", "b"] },
        links: [{ context: other, attributes: { "link.reason": "follows" } }],
      },
      otelTrace.setSpan(ROOT_CONTEXT, parentSpan),
    );
    child = childSpan.spanContext();
    childSpan.addEvent("queued", { "queue.depth": 3 }, hr(t0Us + 1_500));
    childSpan.end(hr(t0Us + 2_000));
    parentSpan.end(hr(t0Us + 3_000));
    await provider.forceFlush();
  });

  after(async () => {
    await provider?.shutdown();
    await jaeger?.stop();
  });

  it("returns the exported tree through trace(): names, kinds, parents, attributes, link, event, µs times", async () => {
    const spans = await jaeger.waitForTrace(parent.traceId, (s) => s.length === 2, 10_000);
    const byName = new Map(spans.map((s) => [s.name, s]));
    const p = byName.get("POST /v1/chat/completions");
    const c = byName.get("send llm.requests");
    assert.ok(p && c, `spans: ${spans.map((s) => s.name).join(", ")}`);

    const common: Partial<JaegerSpan> = {
      traceId: parent.traceId,
      service: SERVICE,
      instance: "instance-1",
      scope: "jaeger-test-scope",
    };
    assert.deepEqual(pick(p, common), common);
    assert.deepEqual(pick(c, common), common);
    assert.equal(p.spanId, parent.spanId);
    assert.equal(p.parentSpanId, null);
    assert.equal(c.spanId, child.spanId);
    assert.equal(c.parentSpanId, parent.spanId);
    assert.equal(p.kind, "server");
    assert.equal(c.kind, "producer");
    assert.deepEqual(p.status, { code: "unset", message: "" });
    assert.equal(p.resource["deployment.environment.name"], "test");

    assert.deepEqual(p.attributes, { "http.request.method": "POST", "http.response.status_code": 200, "test.flag": true });
    assert.deepEqual(c.attributes, { "messaging.system": "kafka", "test.ratio": 0.25, "test.tags": ["a", "b"] });
    assert.deepEqual(c.links, [{ traceId: other.traceId, spanId: other.spanId, attributes: { "link.reason": "follows" } }]);
    assert.deepEqual(c.events, [{ name: "queued", timeUs: t0Us + 1_500, attributes: { "queue.depth": 3 } }]);
    assert.deepEqual([p.startUs, p.endUs, c.startUs, c.endUs], [t0Us, t0Us + 3_000, t0Us + 1_000, t0Us + 2_000]);
  });

  it("finds traces by service and operation through traces(), and knows no unknown trace", async () => {
    await jaeger.waitForTrace(other.traceId);
    const all = await jaeger.traces(SERVICE);
    assert.deepEqual(all.map((t) => t[0]!.traceId).sort(), [parent.traceId, other.traceId].sort());
    assert.equal(all.find((t) => t[0]!.traceId === parent.traceId)!.length, 2);

    const byOperation = await jaeger.traces(SERVICE, { operation: "other work" });
    assert.deepEqual(
      byOperation.map((t) => t.map((s) => s.spanId)),
      [[other.spanId]],
    );
    assert.deepEqual(await jaeger.traces(SERVICE, { since: new Date(Date.now() + 30_000) }), []);
    assert.deepEqual(await jaeger.traces("no-such-service"), []);
    assert.deepEqual(await jaeger.trace("0123456789abcdef0123456789abcdef"), []);
  });

  it("waitForTrace gives up after its timeout, naming the spans it saw and Jaeger's log", async () => {
    const started = Date.now();
    await assert.rejects(
      jaeger.waitForTrace(parent.traceId, (s) => s.length === 3, 300),
      (err: Error) => /did not hold within 300 ms; 2 span\(s\) seen/.test(err.message) && err.message.includes("Everything is ready"),
    );
    assert.ok(Date.now() - started < 3_000);
  });

  it("listens only on its four 127.0.0.1 ports, and stop() ends it and removes its directory", async () => {
    const ports = [jaeger.otlpHttpEndpoint, `http://${jaeger.otlpGrpcEndpoint}`, jaeger.queryUrl].map((u) => new URL(u).port);
    const listening = listenSockets(jaeger.pid);
    assert.equal(listening.length, 4, listening.join(", "));
    for (const address of listening) assert.match(address, /^127\.0\.0\.1:\d+$/);
    for (const port of ports) assert.ok(listening.includes(`127.0.0.1:${port}`), `${port} in ${listening.join(", ")}`);
    assert.ok((await fetch(`${jaeger.queryUrl}/`)).ok, "the UI's page");

    await jaeger.stop();
    assert.throws(() => process.kill(jaeger.pid, 0), /ESRCH/);
    assert.equal(existsSync(path.dirname(jaeger.logFile)), false);
    await assert.rejects(fetch(`${jaeger.queryUrl}/api/v3/services`));
    await jaeger.stop(); // twice is fine
  });
});

function pick<T extends object>(value: T, like: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.keys(like).map((k) => [k, value[k as keyof T]])) as Partial<T>;
}

/** The TCP listen addresses (ip:port) of a process, from /proc (IPv4 and IPv6). */
function listenSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: string[] = [];
  for (const file of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${file}`, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A" || !inodes.has(f[9]!)) continue; // 0A: LISTEN
      const [ipHex, portHex] = f[1]!.split(":") as [string, string];
      out.push(`${file === "tcp" ? ipv4(ipHex) : `[${ipHex}]`}:${parseInt(portHex, 16)}`);
    }
  }
  return out;
}

function ipv4(hex: string): string {
  // /proc writes the address as a little-endian 32-bit number.
  return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join(".");
}
