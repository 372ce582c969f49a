/**
 * A real Jaeger v2 (an OpenTelemetry Collector build: OTLP receiver, in-memory storage,
 * the query API) for tests that check the spans our services export. The binary is built
 * from the Go module proxy by scripts/deploy/jaeger.sh into .cache/bin. Each start gets
 * its own config in a temporary directory and listens only on 127.0.0.1 and free ports:
 * OTLP over HTTP and gRPC, and the query service's HTTP (API and UI) and gRPC. The
 * collector's own metrics, health check, zpages and sampling endpoints are left out of
 * the config, so they do not listen at all. Its log goes to a file beside the config.
 *
 * Spans are read back through the API v3 (`/api/v3/traces`, OTLP JSON) and flattened into
 * `JaegerSpan`s. Times are whole microseconds since the epoch (truncated): OTLP's
 * nanoseconds since the epoch do not fit a JavaScript number exactly.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT, freePort } from "./services.js";

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };
export type Attributes = Record<string, AttributeValue>;
export type SpanKindName = "unspecified" | "internal" | "server" | "client" | "producer" | "consumer";

export interface JaegerSpan {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** 16 lowercase hex digits. */
  spanId: string;
  /** null for a root span. */
  parentSpanId: string | null;
  name: string;
  kind: SpanKindName;
  /** The resource's `service.name`. */
  service: string;
  /** The resource's `service.instance.id` ("" when it has none). */
  instance: string;
  /** The instrumentation scope (the tracer's name). */
  scope: string;
  /** Microseconds since the epoch. */
  startUs: number;
  endUs: number;
  attributes: Attributes;
  /** The resource's attributes (service.name included). */
  resource: Attributes;
  status: { code: "unset" | "ok" | "error"; message: string };
  links: Array<{ traceId: string; spanId: string; attributes: Attributes }>;
  /** `timeUs`: microseconds since the epoch. */
  events: Array<{ name: string; timeUs: number; attributes: Attributes }>;
}

export interface TraceSearch {
  /** Only traces with a span of this name. */
  operation?: string;
  /** Traces that started after this time (default: 1 hour ago). */
  since?: Date;
  /** At most this many traces (Jaeger's search depth; default 20). */
  limit?: number;
}

export interface Jaeger {
  readonly pid: number;
  /** For OTEL_EXPORTER_OTLP_ENDPOINT: http://127.0.0.1:PORT (the SDK appends /v1/traces). */
  readonly otlpHttpEndpoint: string;
  /** host:port of the OTLP gRPC receiver. */
  readonly otlpGrpcEndpoint: string;
  /**
   * The query service's base URL: the API under `/api` (v3: `/api/v3`), and at `/` Jaeger's
   * placeholder page, since the UI's JavaScript bundle is not part of the Go module.
   */
  readonly queryUrl: string;
  /** Jaeger's log (stdout and stderr), kept until `stop()`. */
  readonly logFile: string;
  /** The trace's spans, in Jaeger's order; [] when it has none (yet). */
  trace(traceId: string): Promise<JaegerSpan[]>;
  /**
   * Polls `trace(traceId)` (spans arrive in batches) until `predicate` holds over them
   * (default: any span), and returns them. Rejects after `timeoutMs` (default 10 s) with
   * the spans seen last and the end of Jaeger's log.
   */
  waitForTrace(traceId: string, predicate?: (spans: JaegerSpan[]) => boolean, timeoutMs?: number): Promise<JaegerSpan[]>;
  /** Traces with a span of `service`, each as its spans; [] when none match. */
  traces(service: string, options?: TraceSearch): Promise<JaegerSpan[][]>;
  /** The end of Jaeger's log. */
  logs(maxChars?: number): string;
  /** SIGTERM, SIGKILL after 5 s; then removes its directory (config and log). Idempotent. */
  stop(): Promise<void>;
}

const BINARY = path.join(REPO_ROOT, ".cache", "bin", "jaeger");
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/** Starts Jaeger and waits until both its OTLP receiver and its query API answer. */
/**
 * `nice`: the process's niceness (the bench runs Jaeger at 19, so on a small machine the
 * services get the cores first, as with a collector on another node).
 */
export async function startJaeger(options: { nice?: number } = {}): Promise<Jaeger> {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run bash scripts/deploy/jaeger.sh`);
  const [otlpHttp, otlpGrpc, queryHttp, queryGrpc] = await distinctFreePorts(4);
  const dir = mkdtempSync(path.join(os.tmpdir(), "jaeger-"));
  const configFile = path.join(dir, "config.yaml");
  const logFile = path.join(dir, "jaeger.log");
  // JSON is YAML. Only what is named here runs: no healthcheckv2, zpages, expvar,
  // remote_sampling or pprof extension, and `metrics.level: none` turns off the
  // collector's own Prometheus endpoint (:8888 by default).
  const config = {
    service: {
      extensions: ["jaeger_storage", "jaeger_query"],
      pipelines: { traces: { receivers: ["otlp"], exporters: ["jaeger_storage_exporter"] } },
      telemetry: { metrics: { level: "none" }, logs: { level: "info" } },
    },
    extensions: {
      jaeger_storage: { backends: { memstore: { memory: { max_traces: 100_000 } } } },
      jaeger_query: {
        storage: { traces: "memstore" },
        // On by default in v2: Jaeger would trace its own queries into the storage.
        enable_tracing: false,
        http: { endpoint: `127.0.0.1:${queryHttp}` },
        grpc: { endpoint: `127.0.0.1:${queryGrpc}` },
      },
    },
    receivers: {
      otlp: {
        protocols: {
          http: { endpoint: `127.0.0.1:${otlpHttp}` },
          grpc: { endpoint: `127.0.0.1:${otlpGrpc}` },
        },
      },
    },
    exporters: { jaeger_storage_exporter: { trace_storage: "memstore" } },
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  // The test's own OTEL_* settings (an exporter endpoint, a sampler) are not Jaeger's.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_")));
  const log = openSync(logFile, "w");
  let proc: ChildProcess;
  try {
    const [command, args] = options.nice ? ["nice", ["-n", String(options.nice), BINARY, "--config", configFile]] : [BINARY, ["--config", configFile]];
    proc = spawn(command as string, args as string[], { cwd: dir, env, stdio: ["ignore", log, log] });
  } finally {
    closeSync(log); // the child has its own copy
  }
  running.add(proc);
  const exited = new Promise<void>((resolve) =>
    proc.once("exit", () => {
      running.delete(proc);
      resolve();
    }),
  );
  const isRunning = () => proc.exitCode === null && proc.signalCode === null;
  const logs = (maxChars = 20_000) => {
    try {
      return readFileSync(logFile, "utf8").slice(-maxChars);
    } catch {
      return "(no log)";
    }
  };

  const otlpHttpEndpoint = `http://127.0.0.1:${otlpHttp}`;
  const queryUrl = `http://127.0.0.1:${queryHttp}`;
  let stopping: Promise<void> | null = null;

  const trace = async (traceId: string): Promise<JaegerSpan[]> => {
    const res = await fetch(`${queryUrl}/api/v3/traces/${encodeURIComponent(traceId)}`);
    if (res.status === 404) return [];
    if (!res.ok) throw new Error(`Jaeger GET trace ${traceId}: ${res.status} ${await res.text()}`);
    return flatten((await res.json()) as ApiV3Response);
  };

  const jaeger: Jaeger = {
    pid: proc.pid!,
    otlpHttpEndpoint,
    otlpGrpcEndpoint: `127.0.0.1:${otlpGrpc}`,
    queryUrl,
    logFile,
    trace,
    async waitForTrace(traceId, predicate = (spans) => spans.length > 0, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let last: JaegerSpan[];
      for (;;) {
        last = await trace(traceId);
        if (predicate(last)) return last;
        if (Date.now() >= deadline) break;
        if (!isRunning()) throw new Error(`Jaeger exited with ${proc.exitCode ?? proc.signalCode}:\n${logs()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const seen = last.map((s) => `${s.service} ${s.name} ${s.spanId}<-${s.parentSpanId ?? "root"}`).join("\n  ");
      throw new Error(
        `trace ${traceId}: the predicate did not hold within ${timeoutMs} ms; ${last.length} span(s) seen:\n  ${seen}\n` + `Jaeger's log:\n${logs(8_000)}`,
      );
    },
    async traces(service, options = {}) {
      const since = options.since ?? new Date(Date.now() - 3_600_000);
      const params = new URLSearchParams({
        "query.service_name": service,
        "query.start_time_min": since.toISOString(),
        // A little ahead: a span's start is the exporter's clock, this is ours.
        "query.start_time_max": new Date(Date.now() + 60_000).toISOString(),
        "query.num_traces": String(options.limit ?? 20),
      });
      if (options.operation !== undefined) params.set("query.operation_name", options.operation);
      const res = await fetch(`${queryUrl}/api/v3/traces?${params}`);
      if (res.status === 404) return []; // "No traces found"
      if (!res.ok) throw new Error(`Jaeger search ${params}: ${res.status} ${await res.text()}`);
      const byTrace = new Map<string, JaegerSpan[]>();
      for (const span of flatten((await res.json()) as ApiV3Response)) {
        byTrace.set(span.traceId, [...(byTrace.get(span.traceId) ?? []), span]);
      }
      return [...byTrace.values()];
    },
    logs,
    stop() {
      stopping ??= (async () => {
        if (isRunning()) {
          proc.kill("SIGTERM");
          const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };

  // The query server starts with the extensions, the OTLP receiver last: ready is both
  // answering. An empty export request is a valid one.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!isRunning()) {
      const out = logs();
      await jaeger.stop();
      throw new Error(`Jaeger exited with ${proc.exitCode ?? proc.signalCode} while starting:\n${out}`);
    }
    if ((await answers(`${queryUrl}/api/v3/services`)) && (await answers(`${otlpHttpEndpoint}/v1/traces`, "{}"))) {
      return jaeger;
    }
    if (Date.now() > deadline) {
      const out = logs();
      await jaeger.stop();
      throw new Error(`Jaeger was not ready within ${READY_TIMEOUT_MS} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function answers(url: string, jsonBody?: string): Promise<boolean> {
  try {
    const res = await fetch(url, jsonBody === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: jsonBody });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false; // not listening yet
  }
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

// --- The API v3 answer: OTLP JSON (protobuf's JSON mapping, IDs as hex) in `result`. ---

interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number | string;
  bytesValue?: string;
  arrayValue?: { values?: OtlpAnyValue[] };
  kvlistValue?: { values?: OtlpKeyValue[] };
}
interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number | string;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: OtlpKeyValue[];
  events?: Array<{ name?: string; timeUnixNano?: string | number; attributes?: OtlpKeyValue[] }>;
  links?: Array<{ traceId: string; spanId: string; attributes?: OtlpKeyValue[] }>;
  status?: { code?: number | string; message?: string };
}
interface ApiV3Response {
  result?: {
    resourceSpans?: Array<{
      resource?: { attributes?: OtlpKeyValue[] };
      scopeSpans?: Array<{ scope?: { name?: string }; spans?: OtlpSpan[] }>;
    }>;
  };
}

const KINDS: readonly SpanKindName[] = ["unspecified", "internal", "server", "client", "producer", "consumer"];
const STATUSES = ["unset", "ok", "error"] as const;

function flatten(body: ApiV3Response): JaegerSpan[] {
  const spans: JaegerSpan[] = [];
  for (const rs of body.result?.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    const text = (key: string) => (typeof resource[key] === "string" ? resource[key] : "");
    const service = text("service.name");
    const instance = text("service.instance.id");
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: s.parentSpanId ? hex(s.parentSpanId) : null,
          name: s.name,
          kind: enumName(s.kind, KINDS, "SPAN_KIND_"),
          service,
          instance,
          scope: ss.scope?.name ?? "",
          startUs: micros(s.startTimeUnixNano),
          endUs: micros(s.endTimeUnixNano),
          attributes: attributes(s.attributes),
          resource,
          status: { code: enumName(s.status?.code, STATUSES, "STATUS_CODE_"), message: s.status?.message ?? "" },
          links: (s.links ?? []).map((l) => ({
            traceId: hex(l.traceId),
            spanId: hex(l.spanId),
            attributes: attributes(l.attributes),
          })),
          events: (s.events ?? []).map((e) => ({
            name: e.name ?? "",
            timeUs: micros(e.timeUnixNano),
            attributes: attributes(e.attributes),
          })),
        });
      }
    }
  }
  return spans;
}

/** Jaeger writes IDs as hex; protobuf's plain JSON mapping would write base64. */
function hex(id: string): string {
  return /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, "base64").toString("hex");
}

/** Nanoseconds (a decimal string: an int64) to microseconds, exactly. */
function micros(ns: string | number | undefined): number {
  if (ns === undefined) return 0;
  return Number(BigInt(ns) / 1000n);
}

/** Protobuf JSON writes an enum as its number or as its name (SPAN_KIND_SERVER). */
function enumName<T extends string>(value: number | string | undefined, names: readonly T[], prefix: string): T {
  if (value === undefined) return names[0]!;
  if (typeof value === "number") return names[value] ?? names[0]!;
  const name = value.replace(prefix, "").toLowerCase();
  return names.find((n) => n === name) ?? names[0]!;
}

function attributes(kvs: OtlpKeyValue[] | undefined): Attributes {
  const out: Attributes = {};
  for (const kv of kvs ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

function anyValue(v: OtlpAnyValue | undefined): AttributeValue {
  if (v === undefined) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return Number(v.doubleValue); // "NaN", "Infinity" come as strings
  if (v.bytesValue !== undefined) return v.bytesValue; // base64
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.kvlistValue !== undefined) return attributes(v.kvlistValue.values);
  return null;
}
