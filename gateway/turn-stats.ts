/**
 * The recent mean turn duration, from the final events every replica reads: with the
 * lag it turns a queue length into time, backlog_seconds = total_lag × mean / slots.
 *
 * A turn's duration is the worker's generation time (timings.generation_ms: from the
 * worker starting the turn to its last token), so time spent queued does not inflate it.
 * Only finals that generated tokens and ended normally count: opening or deleting a
 * conversation, cancels and failures would skew the mean. When no turn ended within the
 * window the last mean is kept: while workers are scaled to zero it is still the best
 * guess of what a turn costs (0 until the first turn).
 */
import type { ChatEvent } from "../contracts/records/events.js";

/** A busy window is well described by its latest turns; this bounds the memory used. */
const MAX_SAMPLES = 10_000;

export class TurnStats {
  readonly #windowMs: number;
  readonly #now: () => number;
  /** [worker clock at the final event, seconds], oldest first. */
  readonly #samples: Array<[number, number]> = [];
  #lastMean = 0;

  constructor(options: { windowMs: number; now?: () => number }) {
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
  }

  record(event: ChatEvent): void {
    if (event.type !== "final" || event.usage.completion_tokens === 0) return;
    if (event.stop_reason !== "stop" && event.stop_reason !== "length" && event.stop_reason !== "tool_calls") return;
    this.#samples.push([event.at, event.timings.generation_ms / 1000]);
    // Look-back replays arrive in order per partition, not globally; keep the list sorted.
    for (let i = this.#samples.length - 1; i > 0 && this.#samples[i - 1]![0] > this.#samples[i]![0]; i--) {
      [this.#samples[i - 1], this.#samples[i]] = [this.#samples[i]!, this.#samples[i - 1]!];
    }
    if (this.#samples.length > MAX_SAMPLES) this.#samples.splice(0, this.#samples.length - MAX_SAMPLES);
    this.#prune();
  }

  /** Mean seconds per turn over the window (or the last non-empty window's mean). */
  meanSeconds(): number {
    this.#prune();
    if (this.#samples.length > 0) {
      this.#lastMean = this.#samples.reduce((sum, [, s]) => sum + s, 0) / this.#samples.length;
    }
    return this.#lastMean;
  }

  /** Turns that ended within the window. */
  count(): number {
    this.#prune();
    return this.#samples.length;
  }

  #prune(): void {
    const cutoff = this.#now() - this.#windowMs;
    let drop = 0;
    while (drop < this.#samples.length && this.#samples[drop]![0] < cutoff) drop++;
    if (drop > 0) {
      // Keep the mean of what is about to leave, for when nothing is left.
      if (drop === this.#samples.length) this.#lastMean = this.#samples.reduce((sum, [, s]) => sum + s, 0) / drop;
      this.#samples.splice(0, drop);
    }
  }
}
