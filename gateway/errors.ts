/**
 * The one place where error codes become HTTP statuses and response bodies.
 *
 * Native API: {"error": {"code", "message", "retryable"}}.
 * OpenAI-compatible routes: OpenAI's shape, {"error": {"message", "type", "param", "code"}},
 * so the official clients raise their usual typed errors.
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyError, FastifyReply } from "fastify";
import { z } from "zod";
import { KafkaLlmError, type ErrorCode } from "../contracts/errors.js";
import { requiredMessage } from "../contracts/records/codec.js";
import { TRACKER_RETRY_AFTER_SECONDS } from "./event-hub.js";

export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  prompt_too_long: 400,
  kafka_unavailable: 503,
  generation_failed: 502,
  already_applied: 409,
  idempotency_key_reused: 422,
  request_dead_lettered: 422,
  record_too_large: 413,
  deadline_exceeded: 504,
  rate_limited: 429,
  overloaded: 503,
  config_invalid: 500,
  internal: 500,
};

/** Seconds a client should wait before retrying while Kafka is unreachable. */
export const RETRY_AFTER_SECONDS = 2;

/** Retry-After, seconds, of the codes that send one. */
const RETRY_AFTER: Partial<Record<ErrorCode, number>> = {
  kafka_unavailable: RETRY_AFTER_SECONDS,
  rate_limited: TRACKER_RETRY_AFTER_SECONDS,
  overloaded: TRACKER_RETRY_AFTER_SECONDS,
};

/** Which error body a route speaks. */
export type Dialect = "native" | "openai";

/** An API error that can name the offending parameter (OpenAI's `param`). */
export class ApiError extends KafkaLlmError {
  readonly param: string | null;
  /** Headers the answer carries (a 429's Retry-After and x-ratelimit-*), over the code's own. */
  readonly headers: Readonly<Record<string, string>>;
  constructor(code: ErrorCode, message: string, options: { param?: string | null; cause?: unknown; headers?: Record<string, string> } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }
}

export function notFound(what: string): ApiError {
  return new ApiError("not_found", what);
}

export function sendError(reply: FastifyReply, error: KafkaLlmError, dialect: Dialect = "native"): FastifyReply {
  const status = HTTP_STATUS[error.code];
  const retryAfter = RETRY_AFTER[error.code];
  if (retryAfter !== undefined) reply.header("retry-after", String(retryAfter));
  if (error.code === "unauthorized") reply.header("www-authenticate", 'Bearer realm="kafka-llm"');
  if (error instanceof ApiError) reply.headers(error.headers);
  return reply.code(status).send(errorBody(error, dialect));
}

export function errorBody(error: KafkaLlmError, dialect: Dialect): unknown {
  if (dialect === "native") return { error: { code: error.code, message: error.message, retryable: error.retryable } };
  return {
    error: {
      message: error.message,
      type: openAiType(error.code),
      param: error instanceof ApiError ? error.param : null,
      code: openAiCode(error.code),
    },
  };
}

function openAiType(code: ErrorCode): string {
  const status = HTTP_STATUS[code];
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status < 500) return "invalid_request_error";
  return status === 503 ? "service_unavailable" : "server_error";
}

function openAiCode(code: ErrorCode): string {
  switch (code) {
    case "unauthorized":
      return "invalid_api_key";
    case "prompt_too_long":
      return "context_length_exceeded";
    case "rate_limited":
      return "rate_limit_exceeded";
    default:
      return code;
  }
}

/** Validates `value` with `schema`; a failure is a 400 naming each bad field and what to fix. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value, { error: requiredMessage });
  if (result.success) return result.data;
  const issues = result.error.issues;
  const pathOf = (i: z.core.$ZodIssue) => i.path.map(String).join(".");
  const message = issues
    .slice(0, 10)
    .map((i) => (i.path.length ? `${pathOf(i)}: ${i.message}` : i.message))
    .join("; ");
  const first = issues[0];
  const param = first && first.path.length > 0 ? pathOf(first) : null;
  throw new ApiError("invalid_request", `${what}: ${message}`, { param });
}

/** Turns anything thrown in a handler (or by fastify's own parsing) into a KafkaLlmError. */
export function toKafkaLlmError(err: unknown): KafkaLlmError {
  if (err instanceof KafkaLlmError) return err;
  const fe = err as Partial<FastifyError>;
  switch (fe.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new KafkaLlmError("unsupported_media_type", "send the body as JSON with content-type: application/json");
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new KafkaLlmError("payload_too_large", "the request body is too large");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new KafkaLlmError("invalid_request", "the request body is empty; send a JSON object");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new KafkaLlmError("invalid_request", "the content-length header does not match the body");
  }
  if (fe.statusCode === 413) return new KafkaLlmError("payload_too_large", "the request body is too large");
  if (fe.statusCode === 415) return new KafkaLlmError("unsupported_media_type", "send the body as JSON with content-type: application/json");
  if (fe.statusCode === 400 || err instanceof SyntaxError) {
    return new KafkaLlmError("invalid_request", `the request body is not valid JSON: ${fe.message ?? ""}`);
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new KafkaLlmError("invalid_request", fe.message ?? "bad request");
  }
  return new KafkaLlmError("internal", "internal error", { cause: err });
}

/**
 * Requests Node's HTTP parser rejects before fastify sees them (headers or URL over 16 KiB,
 * broken HTTP): answered with the native error body, then the connection is closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, message] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "the URL or the headers are too large (at most 16 KiB)"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "the request was not received in time"]
        : [400, "the request is not valid HTTP"];
  const body = JSON.stringify({ error: { code: "invalid_request", message, retryable: false } });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
