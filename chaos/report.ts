/** The table a chaos run prints. */
import type { Accounting } from "./accounting.js";
import type { FaultRecord } from "./faults.js";
import type { ChaosOptions } from "./options.js";
import type { WorkerHealth } from "./cluster.js";

const seconds = (ms: number | null) => (ms === null ? "n/a" : Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "never");

const FAULT_NAMES: Record<FaultRecord["kind"], (target: string) => string> = {
  worker_kill: (t) => `SIGKILL of ${t}`,
  broker_restart: () => "the broker restart",
  scale_out: () => "a worker joining",
  scale_in: (t) => `SIGTERM of ${t} (scale-in)`,
};

export function formatReport(options: ChaosOptions, a: Accounting, faults: readonly FaultRecord[], health: WorkerHealth, wallMs: number): string {
  const kills = faults.filter((f) => f.kind === "worker_kill").length;
  const bounces = faults.filter((f) => f.kind === "broker_restart").length;
  const scaleEvents = faults.filter((f) => f.kind === "scale_out" || f.kind === "scale_in").length;
  const worst = a.recoveries.reduce<(typeof a.recoveries)[number] | null>(
    (w, r) => (r.longestMs !== null && (w === null || (w.longestMs ?? -1) < r.longestMs) ? r : w),
    null,
  );
  const worstText = worst
    ? `  (after ${FAULT_NAMES[worst.fault.kind](worst.fault.target)}, partition ${
        worst.partitions.find((p) => (p.ms ?? Number.POSITIVE_INFINITY) === worst.longestMs)?.partition
      })`
    : "";
  const rows: Array<[string, string | number, string?]> = [
    ["turns planned", a.planned],
    ["turns sent (202)", a.sent],
    ["answered once", a.answeredOnce],
    ["lost", a.lost],
    ["answered twice", a.answeredTwice],
    ["out of order", a.outOfOrder],
    ["failed (error event)", a.failed],
    ["not delivered to client", a.undelivered],
    ["not sent (client gave up)", a.notSent],
    ["memory holds every turn once, in order", `${a.memoryChecked - a.memoryMismatches}/${a.memoryChecked}`],
    ["history holds every turn once, in order", `${a.historyChecked - a.historyMismatches}/${a.historyChecked}`],
    ["longest recovery", seconds(a.longestRecoveryMs), worstText],
    ["", ""],
    [`turns applied twice after a 503 (${options.idempotencyKeys ? "with" : "without"} Idempotency-Key)`, a.ghosts],
    ["POST retries (503/timeout)", a.postRetries],
    ["requests run again (new attempt)", a.reruns],
    ["identical terminal events repeated", a.repeatedTerminals],
    ["duplicate request records", a.duplicateRequestRecords],
    ["SSE resumes (Last-Event-ID)", a.sseResumes],
    ["  of which dropped by the client", a.sseDrops],
    ["partial replies discarded (new start)", a.discardedAttempts],
    ["streamed text not the start of the reply", a.textMismatches],
    ["deltas missing, completed by the final", a.deltaGaps],
    ["longest turn seen by a client", seconds(a.longestTurnMs)],
    ["workers that exited by themselves", health.unexpectedExits.length, health.unexpectedExits.map((e) => ` ${e.worker}`).join("")],
    ["workers alive but not ready at the end", health.notReadyAtEnd.length, health.notReadyAtEnd.map((n) => ` ${n}`).join("")],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [
    `chaos run "${options.name}": ${options.conversations} conversations x ${options.turns} turns, ${options.workers} workers, ` +
      `${options.partitions} partitions, ${(options.durationMs / 1000).toFixed(0)} s window, seed ${options.seed}`,
    `faults: ${kills} worker SIGKILLs (each restarted), ${bounces} broker restart(s) (${options.brokerSignal}, down ${(options.brokerDownMs / 1000).toFixed(1)} s), ${scaleEvents} scale event(s) (a worker added, one SIGTERMed); ran ${(wallMs / 1000).toFixed(0)} s`,
    "",
    ...rows.map(([k, v, extra]) => (k === "" ? "" : `  ${k.padEnd(width)}  ${String(v).padStart(7)}${extra ?? ""}`)),
    "",
    "longest recovery: after each fault, for each partition with a request waiting, the time until that",
    "partition's next final event; the largest over all faults and partitions.",
  ];
  if (a.anomalies.length > 0) {
    lines.push(
      "",
      `findings (${a.anomalies.length}; "note:" lines are counted, not failures):`,
      ...a.anomalies.slice(0, 30).map((x) => `  - ${x.length > 400 ? `${x.slice(0, 400)}...` : x}`),
    );
    if (a.anomalies.length > 30) lines.push(`  ... ${a.anomalies.length - 30} more in the result file`);
  }
  lines.push("", a.ok ? "RESULT: PASS" : "RESULT: FAIL (lost, doubled, reordered, undelivered or misremembered turns above)");
  return lines.join("\n");
}
