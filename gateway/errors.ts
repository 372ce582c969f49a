/**
 * The one place where error codes become HTTP statuses and response bodies.
 * Body: {"error": {"code", "message", "retryable"}}.
 */
import type { FastifyError, FastifyReply } from "fastify";
import { KafkaLlmError, type ErrorCode } from "../contracts/errors.js";

export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  prompt_too_long: 400,
  kafka_unavailable: 503,
  generation_failed: 502,
  config_invalid: 500,
  internal: 500,
};

export function sendError(reply: FastifyReply, error: KafkaLlmError): FastifyReply {
  const status = HTTP_STATUS[error.code];
  if (error.code === "kafka_unavailable") reply.header("retry-after", "2");
  return reply.code(status).send({ error: { code: error.code, message: error.message, retryable: error.retryable } });
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
  if (fe.statusCode === 400 || err instanceof SyntaxError) {
    return new KafkaLlmError("invalid_request", `the request body is not valid JSON: ${fe.message ?? ""}`);
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new KafkaLlmError("invalid_request", fe.message ?? "bad request");
  }
  return new KafkaLlmError("internal", "internal error", { cause: err });
}
