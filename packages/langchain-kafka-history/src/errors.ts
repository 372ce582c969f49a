/** What a gateway said when it refused a request, or why no answer came. */
export class KafkaChatHistoryError extends Error {
  /** The HTTP status the gateway answered; 0 when no answer came (network, timeout). */
  readonly status: number;
  /** The gateway's error code (`invalid_request`, `not_found`, `unauthorized`, ...), null when it sent none. */
  readonly code: string | null;
  /** Whether the same request may succeed later (the gateway's `retryable`, or a network failure). */
  readonly retryable: boolean;

  constructor(message: string, options: { status: number; code?: string | null; retryable?: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KafkaChatHistoryError";
    this.status = options.status;
    this.code = options.code ?? null;
    this.retryable = options.retryable ?? false;
  }
}
