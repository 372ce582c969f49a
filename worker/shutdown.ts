/**
 * SIGTERM, as an explicit sequence: draining (stop fetching; running turns go on) →
 * grace period (SHUTDOWN_GRACE_MS) → forced (stop the turns still running; they are left
 * uncommitted for the next owner) → leave the group → release everything else. Leaving
 * the group at once, instead of waiting out the session timeout, lets the next owner
 * start straight away.
 */
import type { Logger } from "../platform/logger.js";

export interface ShutdownSteps {
  /** Stops fetching, waits for running turns, leaves the group. */
  stopConsuming(): Promise<void>;
  /** Stops every running generation; returns how many there were. */
  abortRunning(): number;
  /** Everything released after the group is left (other consumers, producer, model, HTTP). */
  release(): Promise<void>;
}

export async function shutdown(steps: ShutdownSteps, graceMs: number, logger: Logger): Promise<void> {
  logger.info({ phase: "draining", grace_ms: graceMs }, "shutdown: no new turns; waiting for running ones");
  const stopped = steps.stopConsuming();
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<"grace_over">((resolve) => {
    timer = setTimeout(() => resolve("grace_over"), graceMs);
  });
  const first = await Promise.race([stopped.then(() => "stopped" as const), graceOver]);
  clearTimeout(timer);
  if (first === "grace_over") {
    const n = steps.abortRunning();
    logger.warn({ phase: "forced", stopped_turns: n }, "shutdown: grace period over; stopping running turns uncommitted");
    await stopped;
  }
  logger.info({ phase: "left_group" }, "shutdown: left the consumer group");
  await steps.release();
  logger.info({ phase: "stopped" }, "shutdown complete");
}
