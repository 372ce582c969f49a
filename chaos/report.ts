/** The table a chaos run prints. */
import type { Accounting } from "./accounting.js";
import type { FaultRecord } from "./faults.js";
import type { ChaosOptions } from "./options.js";
import type { WorkerHealth } from "./cluster.js";
import type { FloodTally } from "./flood.js";
import type { PoisonTally } from "./poison.js";
import type { GatewayTally } from "./run.js";

export interface ReportExtras {
  readonly gateways: GatewayTally;
  readonly flood: FloodTally;
  readonly poison: PoisonTally;
  readonly ok: boolean;
}

const perMinute = (n: number, ms: number) => (ms > 0 ? ((60_000 * n) / ms).toFixed(1) : "n/a");
const seconds = (ms: number | null) => (ms === null ? "n/a" : Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "never");

const FAULT_NAMES: Record<FaultRecord["kind"], (target: string) => string> = {
  worker_kill: (t) => `SIGKILL of ${t}`,
  gateway_kill: (t) => `SIGKILL of gateway ${t}`,
  broker_restart: () => "the broker restart",
  scale_out: () => "a worker joining",
  scale_in: (t) => `SIGTERM of ${t} (scale-in)`,
};

export function formatReport(
  options: ChaosOptions,
  a: Accounting,
  faults: readonly FaultRecord[],
  health: WorkerHealth,
  wallMs: number,
  x: ReportExtras,
): string {
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
    ["workers and gateways that exited by themselves", health.unexpectedExits.length, health.unexpectedExits.map((e) => ` ${e.worker}`).join("")],
    ["workers alive but not ready at the end", health.notReadyAtEnd.length, health.notReadyAtEnd.map((n) => ` ${n}`).join("")],
    ["", ""],
    [`gateway SIGKILLs (of ${options.gateways} replicas, each restarted)`, x.gateways.kills],
    ["  of which with clients mid-reply there", x.gateways.killsMidReply, ` (${x.gateways.repliesCut} replies cut)`],
    ["  streams cut off or refused under a client", x.gateways.lostStreams],
    ["  client moves to another replica", x.gateways.moves],
    ["  longest resume at another replica", seconds(x.gateways.longestResumeMs)],
    [
      `flooding tenant (${x.flood.requestsPerMinute}/min): accepted`,
      x.flood.accepted,
      ` (${perMinute(x.flood.accepted, x.flood.ms)}/min over ${seconds(x.flood.ms)})`,
    ],
    ["  refused 429 (with Retry-After)", x.flood.refused, ` (${x.flood.refusedWithRetryAfter})`],
    ["  other answers or none", x.flood.other],
    ["poison records written", x.poison.sent],
    ["  naming a request, ended with an error event", `${x.poison.endedWithError}/${x.poison.named}`],
    ["  on the dead letter topic", `${x.poison.deadLettered}/${x.poison.sent}`],
    ["  followed at a gateway to the error", `${x.poison.followedToError}/${x.poison.followed}`],
    ["  longest from write to error event", seconds(x.poison.longestEndMs)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const findings = [...a.anomalies, ...x.poison.problems];
  const lines = [
    `chaos run "${options.name}": ${options.conversations} conversations x ${options.turns} turns, ${options.workers} workers, ` +
      `${options.partitions} partitions, ${(options.durationMs / 1000).toFixed(0)} s window, seed ${options.seed}`,
    `faults: ${kills} worker SIGKILLs (each restarted), ${faults.filter((f) => f.kind === "gateway_kill").length} gateway SIGKILLs, ${bounces} broker restart(s) (${options.brokerSignal}, down ${(options.brokerDownMs / 1000).toFixed(1)} s), ${scaleEvents} scale event(s) (a worker added, one SIGTERMed); ran ${(wallMs / 1000).toFixed(0)} s`,
    "",
    ...rows.map(([k, v, extra]) => (k === "" ? "" : `  ${k.padEnd(width)}  ${String(v).padStart(7)}${extra ?? ""}`)),
    "",
    "longest recovery: after each fault, for each partition with a request waiting, the time until that",
    "partition's next final event; the largest over all faults and partitions.",
  ];
  if (findings.length > 0) {
    lines.push(
      "",
      `findings (${findings.length}; "note:" lines are counted, not failures):`,
      ...findings.slice(0, 30).map((f) => `  - ${f.length > 400 ? `${f.slice(0, 400)}...` : f}`),
    );
    if (findings.length > 30) lines.push(`  ... ${findings.length - 30} more in the result file`);
  }
  lines.push(
    "",
    x.ok
      ? "RESULT: PASS"
      : a.ok
        ? "RESULT: FAIL (a poison request not ended with an error, or a 429 without Retry-After, above)"
        : "RESULT: FAIL (lost, doubled, reordered, undelivered or misremembered turns above)",
  );
  return lines.join("\n");
}
