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
