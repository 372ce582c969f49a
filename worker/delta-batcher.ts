/**
 * Collects generated text and hands it on in chunks: the first text at once (time to
 * first token is what a user feels), then at most one chunk per `flushMs`, or sooner
 * when `maxChars` have piled up. Tokens come at up to thousands per second;
 * one Kafka record per token would cost more than the generation itself.
 */
export class DeltaBatcher {
  #buffer = "";
  #timer: NodeJS.Timeout | null = null;
  #sentFirst = false;
  readonly #flushMs: number;
  readonly #maxChars: number;
  readonly #emit: (text: string) => void;

  constructor(options: { flushMs: number; maxChars: number; emit: (text: string) => void }) {
    this.#flushMs = options.flushMs;
    this.#maxChars = options.maxChars;
    this.#emit = options.emit;
  }

  push(text: string): void {
    if (!text) return;
    this.#buffer += text;
    if (!this.#sentFirst || this.#buffer.length >= this.#maxChars) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  /** Emits what is buffered now, if anything. */
  flush(): void {
    const text = this.take();
    if (text) this.#emit(text);
  }

  /** What is buffered (emitted by the caller, then), and stops the pending flush. */
  take(): string {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const text = this.#buffer;
    this.#buffer = "";
    if (text) this.#sentFirst = true;
    return text;
  }
}
