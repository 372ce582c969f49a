/**
 * SIGTERM, as an explicit sequence the lifecycle records: draining (no new turns; running
 * ones finish within SHUTDOWN_GRACE_MS, then are handed over to the partitions' next
 * owners through the memory log; each partition is committed and released) → left the
 * group → everything else released → stopped. Leaving the group at once, instead of
 * waiting out the session timeout, lets the next owners start straight away.
 */
import type { Logger } from "../platform/logger.js";
import type { Lifecycle } from "./lifecycle.js";

export interface ShutdownSteps {
  /** Drains and leaves the group (absent when the worker had not joined yet). */
  drainAndLeave?(graceMs: number): Promise<void>;
  /** Everything released after the group is left (other consumers, producer, model, HTTP). */
  release(): Promise<void>;
}

export async function shutdown(steps: ShutdownSteps, graceMs: number, lifecycle: Lifecycle, logger: Logger): Promise<void> {
  lifecycle.to("draining", { grace_ms: graceMs });
  const started = performance.now();
  if (steps.drainAndLeave) {
    await steps.drainAndLeave(graceMs);
    logger.info({ phase: "left_group", drain_ms: Math.round(performance.now() - started) }, "shutdown: turns drained; left the consumer group");
  }
  await steps.release();
  lifecycle.to("stopped");
}
