/**
 * Which memory partitions this store holds, where each stands in its log, and whether it
 * is still the partition's owner. While a worker owns partition p it is the only writer
 * of memory p, so the partition's end is where this store last wrote or read. Anything
 * beyond that was written by another worker that took p over (its restore fence at least):
 * this store is behind, and may no longer be the owner. That comparison (isCurrent) is the
 * fence every write outside a Kafka transaction passes; inside one the broker is the fence,
 * and the position moves past the transaction's commit marker (committed) or is forgotten
 * when it aborted (forget), so the next turn reads the partition again from the log.
 *
 * The position follows this store's own writes, and the store's checkpoint with it only
 * when nothing came between the checkpoint and those writes: a record of another writer's
 * the store never read must stay above the checkpoint, so the next restore reads it.
 */
import type { Delivered } from "../../platform/kafka/producer.js";
import type { Logger } from "../../platform/logger.js";
import type { Clock, LogOffsets, MemoryReader } from "./ports.js";

/** How long a partition end asked of the reader's consumer may take before the admin is asked (ms). */
const END_TIMEOUT_MS = 3000;
/** The least time between two warnings that the reader could not say a partition's end (ms). */
const END_WARN_EVERY_MS = 60_000;

/**
 * How long this store counts as current, without asking the log, after the log last said
 * so (an end it asked for, or its own write landing where it expected), for a turn's
 * load (ms). Another worker can write to p only once the group gave it p, which a live
 * member hears of (and lets go) first, or once this member's session expired, which
 * takes seconds without a heartbeat: a process frozen that long finds the window past
 * (the monotonic clock runs on while a process is stopped) and asks. The write itself
 * stays fenced either way (worker/memory/writes.ts): the window saves a busy partition's
 * turns one ListOffsets round trip each, and can cost at most a reply generated in vain.
 */
export const CONFIRMED_FRESH_MS = 1000;

/** The store's checkpoints as ownership moves them (worker/memory/upkeep.ts Checkpoints). */
export interface CheckpointPort {
  next(partition: number): bigint | undefined;
  set(partition: number, next: bigint): Promise<void>;
  drop(partition: number): Promise<void>;
}

export interface OwnershipOptions {
  topic: string;
  /** Partition ends, one ListOffsets round trip through the reader's consumer. */
  reader: Pick<MemoryReader, "end">;
  /** Partition ends when the reader cannot say. */
  admin: LogOffsets;
  checkpoints: CheckpointPort;
  clock: Clock;
  logger: Logger;
}

interface Held {
  /** The end of the log as this store last saw it (-1: unknown, never current). */
  nextOffset: bigint;
  /** Being restored: not current until the restore ends. */
  restoring: boolean;
  /** When (monotonic ms) the log last said nextOffset is its end; undefined: not since the position was last in doubt. */
  confirmedAt?: number;
}

export class Ownership {
  readonly #options: OwnershipOptions;
  /** The partitions the group gave this worker, whose conversations it answers for. */
  #assigned = new Set<number>();
  readonly #held = new Map<number, Held>();
  #endsWarnedAt = 0;

  constructor(options: OwnershipOptions) {
    this.#options = options;
  }

  /** The partitions the group gave this worker now. */
  assign(partitions: readonly number[]): void {
    this.#assigned = new Set(partitions);
  }

  assigned(partition: number): boolean {
    return this.#assigned.has(partition);
  }

  /** Partition p is held: restored or being restored (its conversations and handovers are served from the store). */
  holds(partition: number): boolean {
    return this.#held.has(partition);
  }

  held(): number[] {
    return [...this.#held.keys()];
  }

  /** The held partitions not being restored. */
  idle(): number[] {
    return [...this.#held].filter(([, h]) => !h.restoring).map(([p]) => p);
  }

  /** Where an idle partition stands (the next offset of its log this store has seen). */
  position(partition: number): bigint | undefined {
    const held = this.#held.get(partition);
    return held && !held.restoring ? held.nextOffset : undefined;
  }

  /** A restore of p begins: p is held (from 0 if it was not), and not current until `restored`. */
  beginRestore(partition: number): void {
    const held = this.#held.get(partition);
    if (held) {
      held.restoring = true;
      held.confirmedAt = undefined;
    } else this.#held.set(partition, { nextOffset: 0n, restoring: true });
  }

  /** p's restore read its fence: the store has the log below `next`, which is the log's end as far as it knows. */
  restored(partition: number, next: bigint): void {
    const held = this.#held.get(partition);
    if (!held) return;
    held.nextOffset = next;
    held.restoring = false;
  }

  /** p is no longer held (revoked, or its restore failed). */
  release(partition: number): void {
    this.#held.delete(partition);
  }

  /**
   * Whether this store has seen all of memory p: held, not restoring, and its position is
   * the log's end now; or, with `freshForMs`, was so within that many ms (CONFIRMED_FRESH_MS
   * says when that is enough).
   */
  async isCurrent(partition: number, freshForMs = 0): Promise<boolean> {
    const held = this.#held.get(partition);
    if (!held || held.restoring) return false;
    const { clock } = this.#options;
    if (this.fresh(partition, freshForMs)) return true;
    const asked = clock.monotonic();
    const position = held.nextOffset;
    const current = BigInt(await this.#logEnd(partition)) === position;
    // The answer holds from when it was asked, if nothing moved the position meanwhile.
    if (current && held.nextOffset === position && !held.restoring) held.confirmedAt = asked;
    return current;
  }

  /** Whether the log said within `freshForMs` that this store's position in p is its end (no question asked). */
  fresh(partition: number, freshForMs: number): boolean {
    const held = this.#held.get(partition);
    return !!held && !held.restoring && held.confirmedAt !== undefined && this.#options.clock.monotonic() - held.confirmedAt < freshForMs;
  }

  /**
   * Memory partition p's end: one ListOffsets round trip through the reader's consumer (it
   * need not read p to ask); should that fail, through the admin (a metadata request first,
   * so a consumer's metadata cache left stale by a broker's restart costs time, never
   * availability).
   */
  async #logEnd(partition: number): Promise<number> {
    const { reader, admin, topic, clock, logger } = this.#options;
    try {
      return await reader.end(partition, END_TIMEOUT_MS);
    } catch (err) {
      if (clock.now() - this.#endsWarnedAt > END_WARN_EVERY_MS) {
        this.#endsWarnedAt = clock.now();
        logger.warn({ partition, err }, "memory partition end not known to the reader's consumer; asking the admin");
      }
      const end = (await admin.offsets(topic)).find((o) => o.partition === partition)?.high;
      if (end === undefined) throw new Error(`memory topic ${topic} has no partition ${partition}`, { cause: err });
      return end;
    }
  }

  /**
   * This store wrote records to memory p (in one send; `delivered`: where they landed): the
   * position follows to after the last. The checkpoint follows only when nothing came
   * between it and these records, nor among them (another writer's would be missing from
   * the store): else the next restore reads from before them. A restoring partition's
   * position is the restore's to set.
   */
  wrote(partition: number, delivered: readonly Delivered[]): void {
    const held = this.#held.get(partition);
    const first = delivered[0];
    const last = delivered.at(-1);
    if (!held || held.restoring || first === undefined || last === undefined) return;
    const next = BigInt(last.offset) + 1n;
    // Only ever called for records that landed where this store expected them: the log's end
    // was this store's position until they did.
    held.nextOffset = next;
    held.confirmedAt = this.#options.clock.monotonic();
    const contiguous = delivered.every((d, i) => d.offset === first.offset + i);
    const checkpoints = this.#options.checkpoints;
    if (contiguous && checkpoints.next(partition) === BigInt(first.offset)) void checkpoints.set(partition, next);
  }

  /**
   * The transaction that wrote memory partition p committed: the partition's end is past its
   * commit marker, one offset after its records (the checkpoint follows if it was at the
   * position).
   */
  committed(partition: number): void {
    const held = this.#held.get(partition);
    if (!held || held.restoring) return;
    const checkpoints = this.#options.checkpoints;
    const checkpointed = checkpoints.next(partition) === held.nextOffset;
    held.nextOffset += 1n;
    held.confirmedAt = this.#options.clock.monotonic();
    if (checkpointed) void checkpoints.set(partition, held.nextOffset);
  }

  /**
   * The transaction that wrote memory partition p was aborted: what this store took from its
   * records is not in the log. The position is no longer the log's end (so the next turn
   * catches up from the log) and the checkpoint is dropped (so that catch-up reads from the
   * beginning). Returns whether p was idle and is now behind: its decoded conversations are
   * then the caller's to drop.
   */
  forget(partition: number): boolean {
    const held = this.#held.get(partition);
    if (!held || held.restoring) return false;
    held.nextOffset = -1n;
    held.confirmedAt = undefined;
    void this.#options.checkpoints.drop(partition);
    return true;
  }

  /**
   * Another writer's records are in memory p beyond this store's position (this store's
   * own write landed after them): the position is no longer the log's end, so the next turn
   * catches up from the log. The store took nothing of the write, so its checkpoint stands.
   */
  behind(partition: number): void {
    const held = this.#held.get(partition);
    if (held && !held.restoring) {
      held.nextOffset = -1n;
      held.confirmedAt = undefined;
    }
  }
}
