/**
 * Where a turn's time goes, phase by phase, for kafka_llm_turn_phase_seconds: each mark()
 * ends the phase running since the previous mark (or since the turn began) and records it.
 * The route's fixed cost (what a turn costs besides generating) is the sum of the phases
 * other than `generate`; the benchmark reads them from /metrics (bench/scenarios/route.ts).
 */
export type TurnPhase =
  /** Reading the conversation: the partition's restore or catch-up, and the ownership check. */
  | "load"
  /** Waiting for a free slot. */
  | "slot_wait"
  /** From the generate call to the first token: prompt evaluation, mostly. */
  | "first_token"
  /** From the first token to the last. */
  | "generate"
  /** The ownership check and the memory record, acks=all. */
  | "memory_write"
  /** The final event and any event still in flight, acks=all. */
  | "events"
  /** The offset commit. */
  | "commit";

/** Told of each phase with its start and end (performance.now() milliseconds): the turn's trace (worker/turn-trace.ts). */
export type PhaseSink = (phase: TurnPhase, start: number, end: number) => void;

export class TurnPhases {
  #last = performance.now();
  readonly #observe: (phase: TurnPhase, seconds: number) => void;
  readonly #sink: PhaseSink | undefined;

  constructor(observe: (phase: TurnPhase, seconds: number) => void, sink?: PhaseSink) {
    this.#observe = observe;
    this.#sink = sink;
  }

  /** Ends `phase` now (ms since the previous mark); returns its milliseconds. */
  mark(phase: TurnPhase): number {
    const now = performance.now();
    const ms = now - this.#last;
    this.#sink?.(phase, this.#last, now);
    this.#last = now;
    this.#observe(phase, ms / 1000);
    return ms;
  }

  /** Splits the time since the previous mark: the first `firstMs` to `first`, the rest to `rest`. */
  split(first: TurnPhase, firstMs: number, rest: TurnPhase): void {
    const now = performance.now();
    const total = now - this.#last;
    const a = Math.min(Math.max(0, firstMs), total);
    this.#sink?.(first, this.#last, this.#last + a);
    this.#sink?.(rest, this.#last + a, now);
    this.#last = now;
    this.#observe(first, a / 1000);
    this.#observe(rest, (total - a) / 1000);
  }
}
