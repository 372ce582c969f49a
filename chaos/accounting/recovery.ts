/**
 * Recovery after each fault: for every chat.requests partition with a request waiting
 * (accepted before the fault, final after it), the time from the fault to that
 * partition's next final event. Times are the workers' event timestamps (same host clock).
 */
import type { FaultRecord } from "../faults.js";
import type { TopicIndex } from "./topics.js";
import type { RequestVerdicts } from "./verdicts.js";

export interface PartitionRecovery {
  readonly partition: number;
  /** null: the partition never delivered another final. */
  readonly ms: number | null;
}

export interface FaultRecovery {
  readonly fault: FaultRecord;
  readonly partitions: PartitionRecovery[];
  /** Longest over the partitions that had work waiting; null when none had any. */
  readonly longestMs: number | null;
}

export function measureRecoveries(
  faults: readonly FaultRecord[],
  index: TopicIndex,
  verdicts: RequestVerdicts,
): { recoveries: FaultRecovery[]; longestRecoveryMs: number | null } {
  const recoveries: FaultRecovery[] = faults.map((fault) => {
    const partitions: PartitionRecovery[] = [];
    const waiting = new Set<number>();
    for (const entry of index.requestById.values()) {
      const t = index.firstTerminal(entry.request.request_id);
      if (entry.request.created_at <= fault.at && (!t || t.event.at > fault.at)) waiting.add(entry.partition);
    }
    for (const partition of [...waiting].sort((a, b) => a - b)) {
      const after = (verdicts.finalsByPartition.get(partition) ?? []).filter((at) => at > fault.at);
      partitions.push({ partition, ms: after.length ? Math.min(...after) - fault.at : null });
    }
    const values = partitions.map((p) => p.ms ?? Number.POSITIVE_INFINITY);
    return { fault, partitions, longestMs: values.length ? Math.max(...values) : null };
  });
  const measured = recoveries.map((r) => r.longestMs).filter((ms): ms is number => ms !== null);
  return { recoveries, longestRecoveryMs: measured.length ? Math.max(...measured) : null };
}
