/**
 * Tracing's configuration (OpenTelemetry's own variables) and the trace context's trip
 * through Kafka record headers. The span trees the services make are asserted against a
 * real Jaeger in test/integration/tracing.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { trace } from "@opentelemetry/api";
import { loadTracingConfig } from "../../../contracts/config/tracing.js";
import { ConfigError } from "../../../contracts/config/env.js";
import { contextOfHeaders, sampledTraceId, startSpan, startTracing, traceHeaders, tracingOn } from "../../../platform/tracing.js";
import { createLogger } from "../../../platform/logger.js";

describe("tracing configuration", () => {
  it("is off unless an exporter is named, and off when disabled whatever else is set", () => {
    assert.equal(loadTracingConfig("svc", {}).enabled, false);
    assert.equal(loadTracingConfig("svc", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).enabled, true);
    assert.equal(loadTracingConfig("svc", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).tracesUrl, "http://collector:4318/v1/traces");
    assert.equal(
      loadTracingConfig("svc", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t:4318/v1/traces" }).tracesUrl,
      "http://t:4318/v1/traces",
      "the traces endpoint wins, taken whole",
    );
    assert.equal(loadTracingConfig("svc", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" }).enabled, true);
    assert.equal(loadTracingConfig("svc", { OTEL_TRACES_EXPORTER: "console" }).exporter, "console");
    assert.equal(loadTracingConfig("svc", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" }).enabled, false);
    assert.equal(loadTracingConfig("svc", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }).enabled, false);
  });

  it("takes the service name, sampler, batching and the content switch from the standard variables", () => {
    const c = loadTracingConfig("kafka-llm-worker", {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_SERVICE_NAME: "llm-worker",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_BSP_SCHEDULE_DELAY: "200",
      OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: "true",
    });
    assert.equal(c.serviceName, "llm-worker");
    assert.deepEqual(c.sampler, { kind: "parentbased_traceidratio", ratio: 0.25 });
    assert.equal(c.batch.scheduleDelayMs, 200);
    assert.equal(c.captureContent, true);
    assert.equal(loadTracingConfig("kafka-llm-worker", {}).serviceName, "kafka-llm-worker");
    assert.equal(loadTracingConfig("kafka-llm-worker", {}).captureContent, false, "prompt text stays out of spans unless asked");
  });

  it("names each bad variable", () => {
    assert.throws(
      () => loadTracingConfig("svc", { OTEL_TRACES_SAMPLER: "sometimes", OTEL_TRACES_SAMPLER_ARG: "2", OTEL_EXPORTER_OTLP_ENDPOINT: "collector" }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.startsWith("OTEL_TRACES_SAMPLER:")) &&
        err.problems.some((p) => p.startsWith("OTEL_TRACES_SAMPLER_ARG:")) &&
        err.problems.some((p) => p.startsWith("OTEL_EXPORTER_OTLP_ENDPOINT:")),
    );
  });
});

describe("the trace context in record headers", () => {
  it("adds no header and no span while tracing is off", () => {
    assert.equal(tracingOn(), false);
    const span = startSpan("nothing", undefined);
    assert.equal(traceHeaders(span), undefined);
    assert.equal(sampledTraceId(span), undefined);
  });

  it("carries a span's context as traceparent, and reads it back as the parent of the next span", async () => {
    const tracing = startTracing(loadTracingConfig("svc", { OTEL_TRACES_EXPORTER: "console", OTEL_BSP_SCHEDULE_DELAY: "60000" }), {
      instanceId: "unit",
      logger: createLogger("test", "silent"),
    });
    try {
      assert.equal(tracingOn(), true);
      const producer = startSpan("send chat.requests", undefined);
      const headers = traceHeaders(producer);
      assert.ok(headers, "a traceparent header");
      assert.match(headers.traceparent!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      // As the record comes back: header values are Buffers.
      const read = contextOfHeaders({ traceparent: Buffer.from(headers.traceparent!) });
      const remote = trace.getSpanContext(read)!;
      assert.equal(remote.traceId, producer.spanContext().traceId);
      assert.equal(remote.spanId, producer.spanContext().spanId);
      const consumer = startSpan("process chat.requests", read);
      assert.equal(consumer.spanContext().traceId, producer.spanContext().traceId, "the worker's span joins the producer's trace");
      assert.equal(sampledTraceId(consumer), producer.spanContext().traceId);
      // A record without the header starts a trace of its own.
      assert.notEqual(startSpan("other", contextOfHeaders({})).spanContext().traceId, producer.spanContext().traceId);
    } finally {
      await tracing.shutdown();
    }
  });
});
