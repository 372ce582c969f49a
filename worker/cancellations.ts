/**
 * Which running generation a cancel stops. Every worker reads every cancel; the one
 * running the request aborts it. A cancel that arrives before its request starts here
 * (still queued, or about to be taken over from a failed worker) is remembered for a
 * while and applied when the request starts.
 */
import type { RevokeCause } from "./turn-scheduler.js";

/** Why a generation stopped early: a client's cancel, or its partition being given up. */
export type StopCause = { kind: "cancel"; reason: string } | RevokeCause;

interface Running {
  tenant: string;
  controller: AbortController;
  /** performance.now() when a cancel for it was read, to measure how fast it stops. */
  cancelledAt?: number;
}

/** How long a cancel is remembered for a request that has not started here (ms). */
export const CANCEL_MEMORY_MS = 10 * 60_000;

export class Cancellations {
  readonly #running = new Map<string, Running>();
  readonly #early = new Map<string, { tenant: string; reason: string; at: number }>();
  readonly #rememberMs: number;
  readonly #maxRemembered: number;

  constructor(options: { rememberMs?: number; maxRemembered?: number } = {}) {
    this.#rememberMs = options.rememberMs ?? CANCEL_MEMORY_MS;
    this.#maxRemembered = options.maxRemembered ?? 10_000;
  }

  /** Registers a starting request; its signal aborts on cancel (reason: StopCause). */
  start(requestId: string, tenant: string, now = Date.now()): AbortSignal {
    const controller = new AbortController();
    this.#running.set(requestId, { tenant, controller });
    const early = this.#early.get(requestId);
    if (early && early.tenant === tenant && now - early.at <= this.#rememberMs) {
      controller.abort({ kind: "cancel", reason: early.reason } satisfies StopCause);
    }
    this.#early.delete(requestId);
    return controller.signal;
  }

  /** Forgets a request that stopped; returns ms from reading its cancel to now, if it was cancelled. */
  finish(requestId: string): number | null {
    const running = this.#running.get(requestId);
    this.#running.delete(requestId);
    return running?.cancelledAt === undefined ? null : performance.now() - running.cancelledAt;
  }

  /** Applies a cancel; returns true when it stopped a running generation here. */
  cancel(requestId: string, tenant: string, reason: string, at = Date.now()): boolean {
    const running = this.#running.get(requestId);
    if (running) {
      if (running.tenant !== tenant) return false; // another tenant's request: not theirs to stop
      running.cancelledAt ??= performance.now();
      running.controller.abort({ kind: "cancel", reason } satisfies StopCause);
      return true;
    }
    this.#early.set(requestId, { tenant, reason, at });
    for (const [id] of this.#early) {
      if (this.#early.size <= this.#maxRemembered) break;
      this.#early.delete(id);
    }
    return false;
  }
}

export function stopCauseOf(signal: AbortSignal): StopCause | null {
  return signal.aborted ? (signal.reason as StopCause) : null;
}
