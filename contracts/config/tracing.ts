/**
 * Tracing's configuration, from OpenTelemetry's own variables (the SDK environment
 * specification), parsed once like every other setting. Tracing is off unless an exporter is
 * named: OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the OTLP/HTTP
 * exporter reads those, and its headers, timeout and certificates, itself), or
 * OTEL_TRACES_EXPORTER=otlp|console. OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none
 * turn it off whatever else is set. Off, no provider is registered and no span is made.
 */
import { z } from "zod";
import { ConfigError, bool, int, parseEnv, str, type Env } from "./env.js";

const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const;

export const tracingFields = {
  OTEL_SDK_DISABLED: bool(false),
  OTEL_TRACES_EXPORTER: z.enum(["otlp", "console", "none"], { error: 'must be "otlp", "console" or "none"' }).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ error: "must be a URL such as http://otel-collector:4318" }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ error: "must be a URL such as http://otel-collector:4318/v1/traces" }).optional(),
  OTEL_SERVICE_NAME: z.string().optional(),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS, { error: `must be one of ${SAMPLERS.join(", ")}` }).default("parentbased_always_on"),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number({ error: "must be a number from 0 to 1" }).min(0, "must be >= 0").max(1, "must be <= 1").optional(),
  OTEL_BSP_SCHEDULE_DELAY: int(5000, 0),
  OTEL_BSP_EXPORT_TIMEOUT: int(30_000, 0),
  OTEL_BSP_MAX_QUEUE_SIZE: int(2048, 1),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: int(512, 1),
  /** The GenAI instrumentations' switch: prompt and reply text in spans (off by default; they are the users' data). */
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: bool(false),
  /** Kept by the resource detector as it is; only checked here. */
  OTEL_RESOURCE_ATTRIBUTES: str(""),
};

export interface TracingConfig {
  /** False: nothing is set up and every span is the API's no-op. */
  readonly enabled: boolean;
  readonly exporter: "otlp" | "console";
  /** Where OTLP/HTTP spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; undefined: the exporter's default (http://localhost:4318/v1/traces). */
  readonly tracesUrl: string | undefined;
  readonly serviceName: string;
  readonly sampler: { readonly kind: (typeof SAMPLERS)[number]; readonly ratio: number };
  readonly batch: { readonly scheduleDelayMs: number; readonly exportTimeoutMs: number; readonly maxQueueSize: number; readonly maxExportBatchSize: number };
  /** Prompt and reply text go into spans (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT). */
  readonly captureContent: boolean;
}

/** `service`: the service name when OTEL_SERVICE_NAME is unset (kafka-llm-gateway, kafka-llm-worker). */
export function loadTracingConfig(service: string, env: Env = process.env): TracingConfig {
  const e = parseEnv(tracingFields, env);
  if (e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE > e.OTEL_BSP_MAX_QUEUE_SIZE) {
    throw new ConfigError([`OTEL_BSP_MAX_EXPORT_BATCH_SIZE: must be at most OTEL_BSP_MAX_QUEUE_SIZE (${e.OTEL_BSP_MAX_QUEUE_SIZE})`]);
  }
  const endpoint = e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_ENDPOINT;
  const exporter = e.OTEL_TRACES_EXPORTER ?? (endpoint ? "otlp" : "none");
  return Object.freeze({
    enabled: !e.OTEL_SDK_DISABLED && exporter !== "none",
    exporter: exporter === "console" ? "console" : "otlp",
    tracesUrl: e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (e.OTEL_EXPORTER_OTLP_ENDPOINT && `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`),
    serviceName: e.OTEL_SERVICE_NAME ?? service,
    sampler: Object.freeze({ kind: e.OTEL_TRACES_SAMPLER, ratio: e.OTEL_TRACES_SAMPLER_ARG ?? 1 }),
    batch: Object.freeze({
      scheduleDelayMs: e.OTEL_BSP_SCHEDULE_DELAY,
      exportTimeoutMs: e.OTEL_BSP_EXPORT_TIMEOUT,
      maxQueueSize: e.OTEL_BSP_MAX_QUEUE_SIZE,
      maxExportBatchSize: e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    }),
    captureContent: e.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
  });
}
