/**
 * The worker's lifecycle as one value that readiness, metrics, logs and the shutdown path
 * all read (in the manner of Temporal's worker State), instead of booleans spread across
 * the wiring and the consumer:
 *
 *   starting ─▶ loading_model ─▶ joining ─▶ running ─▶ draining ─▶ stopped
 *        └──────────┴──────────────┴──────────┴───────────┴──────▶ failed
 *
 * `draining` may also be entered before `running` (a SIGTERM during start-up). Only
 * `running` is ready: /readyz answers 200 then and only then.
 */
export const WORKER_STATES = ["starting", "loading_model", "joining", "running", "draining", "stopped", "failed"] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

const ALLOWED: Record<WorkerState, readonly WorkerState[]> = {
  starting: ["loading_model", "draining", "failed"],
  loading_model: ["joining", "draining", "failed"],
  joining: ["running", "draining", "failed"],
  running: ["draining", "failed"],
  draining: ["stopped", "failed"],
  stopped: [],
  failed: [],
};

export type LifecycleListener = (next: WorkerState, previous: WorkerState, detail: Record<string, unknown>) => void;

export class Lifecycle {
  #state: WorkerState = "starting";
  readonly #listeners: LifecycleListener[] = [];

  get state(): WorkerState {
    return this.#state;
  }

  /** True in `running`: the model is loaded and the worker is a member of its group. */
  get ready(): boolean {
    return this.#state === "running";
  }

  /** True once the worker has been told to stop (or has stopped or failed). */
  get stopping(): boolean {
    return this.#state === "draining" || this.#state === "stopped" || this.#state === "failed";
  }

  onChange(listener: LifecycleListener): void {
    this.#listeners.push(listener);
    listener(this.#state, this.#state, {});
  }

  /**
   * Moves to `next`. Returns false (and changes nothing) when the move is not allowed from
   * the current state, e.g. `running` after `draining` began: callers racing a shutdown
   * simply lose.
   */
  to(next: WorkerState, detail: Record<string, unknown> = {}): boolean {
    if (!ALLOWED[this.#state].includes(next)) return false;
    const previous = this.#state;
    this.#state = next;
    for (const listener of this.#listeners) listener(next, previous, detail);
    return true;
  }
}
