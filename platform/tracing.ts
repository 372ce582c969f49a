/**
 * OpenTelemetry tracing for both services: one trace per request, from the HTTP call
 * through Kafka to the worker's commit and back to the SSE write. The trace context
 * crosses Kafka as W3C `traceparent` (and `tracestate`) record headers; `traceHeaders`
 * writes them, `contextOfHeaders` reads them back.
 *
 * Off unless an exporter is configured (contracts/config/tracing.ts): then no provider,
 * context manager or propagator is registered, `tracingOn()` is false, callers skip their
 * span bookkeeping, and the API's spans are no-ops. On, spans are batched and sent over
 * OTLP/HTTP (protobuf) to OTEL_EXPORTER_OTLP_ENDPOINT.
 */
import {
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanKind,
  type TextMapGetter,
  type TimeInput,
  type Tracer,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
} from "@opentelemetry/sdk-trace";
import type { TracingConfig } from "../contracts/config/tracing.js";
import type { Logger } from "./logger.js";

const TRACER_NAME = "kafka-llm";

let on = false;
let captureContent = false;

/** True once tracing is set up with an exporter: callers make spans only then. */
export function tracingOn(): boolean {
  return on;
}

/** Prompt and reply text may go into spans (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT). */
export function captureMessageContent(): boolean {
  return on && captureContent;
}

/** The project's tracer (the API's no-op one while tracing is off). */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

export interface Tracing {
  /** Sends what is batched and stops; a no-op when tracing is off. */
  shutdown(): Promise<void>;
}

/**
 * Sets tracing up for this process, once, at start. `instanceId`: service.instance.id (the
 * worker id, the gateway's pod). Resource attributes from OTEL_RESOURCE_ATTRIBUTES are kept.
 */
export function startTracing(config: TracingConfig, options: { instanceId: string; version?: string; logger: Logger }): Tracing {
  if (!config.enabled) return { shutdown: async () => {} };
  const resource = detectResources({ detectors: [envDetector] }).merge(
    resourceFromAttributes({
      "service.name": config.serviceName,
      "service.namespace": "kafka-llm",
      "service.instance.id": options.instanceId,
      ...(options.version && { "service.version": options.version }),
    }),
  );
  // The URL from the parsed config (one source); the exporter reads its headers, timeout and certificates from OTEL_EXPORTER_OTLP_* itself.
  const exporter = config.exporter === "console" ? new ConsoleSpanExporter() : new OTLPTraceExporter(config.tracesUrl ? { url: config.tracesUrl } : {});
  const provider = new TracerProvider({
    resource,
    sampler: samplerOf(config.sampler),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter,
        scheduledDelayMillis: config.batch.scheduleDelayMs,
        exportTimeoutMillis: config.batch.exportTimeoutMs,
        maxQueueSize: config.batch.maxQueueSize,
        maxExportBatchSize: config.batch.maxExportBatchSize,
      }),
    ],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  on = true;
  captureContent = config.captureContent;
  options.logger.info({ exporter: config.exporter, service: config.serviceName, sampler: config.sampler.kind }, "tracing on");
  return {
    async shutdown() {
      try {
        await provider.shutdown();
      } catch (err) {
        options.logger.warn({ err }, "tracing: spans not sent at shutdown");
      } finally {
        on = false;
        trace.disable();
        context.disable();
        propagation.disable();
      }
    },
  };
}

function samplerOf(s: TracingConfig["sampler"]): Sampler {
  switch (s.kind) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(s.ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(s.ratio) });
  }
}

type Headers = Readonly<Record<string, Buffer | string | string[] | undefined>>;

const headerGetter: TextMapGetter<Headers> = {
  keys: (carrier) => Object.keys(carrier),
  get(carrier, key) {
    const value = carrier[key];
    if (value === undefined) return undefined;
    if (Array.isArray(value)) return value;
    return Buffer.isBuffer(value) ? value.toString("latin1") : value;
  },
};

/** The trace context of `of` (a context or a span) as record headers (traceparent, tracestate); undefined when there is none to send. */
export function traceHeaders(of: Context | Span = context.active()): Record<string, string> | undefined {
  if (!on) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(isSpan(of) ? trace.setSpan(context.active(), of) : of, carrier);
  return carrier.traceparent === undefined ? undefined : carrier;
}

/** The context a record's (or an HTTP request's) headers carry; the root context when none. */
export function contextOfHeaders(headers: Headers | undefined): Context {
  if (!on || headers === undefined) return context.active();
  return propagation.extract(context.active(), headers, headerGetter);
}

/** The context of a traceparent kept as text (see EventHub); the root context when none. */
export function contextOfTraceparent(traceparent: string | null | undefined): Context {
  return traceparent ? contextOfHeaders({ traceparent }) : context.active();
}

/** The traceparent of `ctx`, to keep as text; undefined when it has none. */
export function traceparentOf(of: Context | Span = context.active()): string | undefined {
  return traceHeaders(of)?.traceparent;
}

/** A span's trace id when it is sampled (for exemplars); undefined otherwise. */
export function sampledTraceId(span: Span | undefined): string | undefined {
  const c = span?.spanContext();
  return c && (c.traceFlags & 1) === 1 ? c.traceId : undefined;
}

/** Starts a span under `parent`'s span (a context or a span). */
export function startSpan(
  name: string,
  parent: Context | Span | undefined,
  options: { kind?: SpanKind; attributes?: Attributes; startTime?: TimeInput; links?: Link[] } = {},
): Span {
  const ctx = parent === undefined ? context.active() : isSpan(parent) ? trace.setSpan(context.active(), parent) : parent;
  return tracer().startSpan(name, options, ctx);
}

/** A span already over: `name` from `start` to `end` (ms since the epoch) under `parent`. */
export function recordSpan(name: string, parent: Context | Span | undefined, start: number, end: number, attributes?: Attributes): void {
  startSpan(name, parent, { startTime: start, ...(attributes && { attributes }) }).end(end);
}

function isSpan(value: Context | Span): value is Span {
  return typeof (value as Span).spanContext === "function";
}

/** Milliseconds since the epoch, with performance.now()'s precision. */
export function epochMs(performanceNow = performance.now()): number {
  return performance.timeOrigin + performanceNow;
}
