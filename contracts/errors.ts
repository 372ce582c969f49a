/**
 * The closed set of error codes. Each says whether retrying the same call may succeed.
 * The gateway maps codes to HTTP statuses in one place (gateway/errors.ts).
 */
export const ERROR_CODES = {
  invalid_request: { retryable: false },
  unauthorized: { retryable: false },
  not_found: { retryable: false },
  payload_too_large: { retryable: false },
  unsupported_media_type: { retryable: false },
  kafka_unavailable: { retryable: true },
  prompt_too_long: { retryable: false },
  generation_failed: { retryable: true },
  /** The request was applied once; its reply is no longer kept on chat.events (read the conversation's messages). */
  already_applied: { retryable: false },
  /** An Idempotency-Key used again for a different request. */
  idempotency_key_reused: { retryable: false },
  /** The request failed on every one of its MAX_REQUEST_ATTEMPTS, or could not be read: it is on chat.requests.dlq with the reason. */
  request_dead_lettered: { retryable: false },
  /** A record the request had to write (its history, memory or an event) is larger than its topic accepts (max.message.bytes). */
  record_too_large: { retryable: false },
  /** No terminal event within GATEWAY_REQUEST_DEADLINE_MS: the wait ended, the request may still be answered (look it up by its id). */
  deadline_exceeded: { retryable: true },
  /** The tenant is at its share of this gateway (MAX_TRACKED_REQUESTS_PER_TENANT): retry after Retry-After. */
  rate_limited: { retryable: true },
  /** The gateway holds as many requests as it may (MAX_TRACKED_REQUESTS), all needed by their clients: retry after Retry-After. */
  overloaded: { retryable: true },
  config_invalid: { retryable: false },
  internal: { retryable: true },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class KafkaLlmError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KafkaLlmError";
    this.code = code;
    this.retryable = ERROR_CODES[code].retryable;
  }
}
