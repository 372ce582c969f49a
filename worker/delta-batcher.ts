/**
 * Collects generated text and hands it on in chunks: the first text at once (time to
 * first token is what a user feels), then at most one chunk per `flushMs`, or sooner
 * when `maxChars` have piled up. Tokens come at up to thousands per second;
 * one Kafka record per token would cost more than the generation itself.
 *
 * Token logprobs (a request with `params.logprobs`) travel with the text they belong to,
 * and a chunk goes out once MAX_DELTA_LOGPROBS of them have piled up, so a delta event
 * stays well inside a record whatever `maxChars` is.
 */
import { MAX_DELTA_LOGPROBS } from "../contracts/limits.js";
import type { TokenLogprob } from "../contracts/records/events.js";

/** What a batcher hands on: text, and the logprobs of its tokens when the request asked for them. */
export interface DeltaChunk {
  text: string;
  logprobs?: TokenLogprob[];
}

export class DeltaBatcher {
  #buffer = "";
  #logprobs: TokenLogprob[] | null = null;
  #timer: NodeJS.Timeout | null = null;
  #sentFirst = false;
  readonly #flushMs: number;
  readonly #maxChars: number;
  readonly #emit: (chunk: DeltaChunk) => void;

  constructor(options: { flushMs: number; maxChars: number; emit: (chunk: DeltaChunk) => void }) {
    this.#flushMs = options.flushMs;
    this.#maxChars = options.maxChars;
    this.#emit = options.emit;
  }

  /**
   * `logprobs`: the tokens of `text`, when the request asked for them (a few at a time: a
   * push that would take the chunk past MAX_DELTA_LOGPROBS sends what is buffered first).
   */
  push(text: string, logprobs?: readonly TokenLogprob[]): void {
    if (!text) return;
    if (logprobs !== undefined && (this.#logprobs?.length ?? 0) + logprobs.length > MAX_DELTA_LOGPROBS) this.flush();
    this.#buffer += text;
    if (logprobs !== undefined) (this.#logprobs ??= []).push(...logprobs);
    const full = this.#buffer.length >= this.#maxChars || (this.#logprobs?.length ?? 0) >= MAX_DELTA_LOGPROBS;
    if (!this.#sentFirst || full) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  /** Emits what is buffered now, if anything. */
  flush(): void {
    const chunk = this.take();
    if (chunk) this.#emit(chunk);
  }

  /** What is buffered (emitted by the caller, then), and stops the pending flush; null when nothing is. */
  take(): DeltaChunk | null {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const text = this.#buffer;
    const logprobs = this.#logprobs;
    this.#buffer = "";
    this.#logprobs = null;
    if (!text) return null;
    this.#sentFirst = true;
    return logprobs === null ? { text } : { text, logprobs };
  }
}
