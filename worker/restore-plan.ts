/**
 * Whether a memory partition can be restored warm (from the state store's checkpoint) or
 * must be read from the beginning of chat.memory. Pure, so the rules are unit-tested.
 */
import type { Checkpoint } from "./state-store.js";

/** Where to read from: the checkpoint (warm), or the log start (cold: the store is cleared first). */
export type RestorePlan = { kind: "warm"; from: bigint } | { kind: "cold"; from: bigint; reason: string };

/**
 * `logStart`/`logEnd`: the memory partition's low and high offsets now. A checkpoint is
 * usable when it lies within them and is younger than delete.retention.ms
 * (`deleteRetentionMs`: chat.memory's, MEMORY_DELETE_RETENTION_MS of contracts/topics.ts): an
 * older one may have missed a tombstone that compaction has since removed, and the
 * conversation it deleted would come back from the store.
 */
export function planRestore(input: {
  checkpoint: Checkpoint | undefined;
  logStart: bigint;
  logEnd: bigint;
  deleteRetentionMs: number;
  now: number;
}): RestorePlan {
  const { checkpoint, logStart, logEnd } = input;
  const cold = (reason: string): RestorePlan => ({ kind: "cold", from: logStart, reason });
  if (!checkpoint) return cold("no checkpoint in the state store");
  if (checkpoint.next_offset < logStart) return cold(`checkpoint ${checkpoint.next_offset} is below the log start ${logStart} (records it lacks were deleted)`);
  if (checkpoint.next_offset > logEnd) return cold(`checkpoint ${checkpoint.next_offset} is past the log end ${logEnd} (the topic was recreated?)`);
  if (input.now - checkpoint.written_at > input.deleteRetentionMs)
    return cold(`checkpoint is older than delete.retention.ms (${input.deleteRetentionMs} ms): tombstones since may be gone`);
  return { kind: "warm", from: checkpoint.next_offset };
}
