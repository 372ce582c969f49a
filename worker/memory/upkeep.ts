/**
 * What keeps the state store usable over time: its checkpoints and the conversations'
 * TTL. A checkpoint (the next offset of chat.memory the store lacks) is what lets a
 * partition held before restore warm; it is written only after the records below it (LMDB
 * commits in order), and a failed write of it is logged, never thrown, since the store is
 * then merely behind its log and the next restore reads the rest. Conversations not written
 * for CONVERSATION_TTL_MS are not served (Kafka's retention drops them without
 * tombstones) and are swept from the store; a checkpoint of a partition whose log has not
 * moved is refreshed meanwhile, so it stays usable however long the partition was idle.
 */
import type { Logger } from "../../platform/logger.js";
import type { ConversationCache } from "./cache.js";
import type { Ownership } from "./ownership.js";
import type { Clock, MemoryState } from "./ports.js";

/** Whether a conversation written at `writtenAt` (ms) is past the TTL now. */
export type Expiry = (writtenAt: number) => boolean;

/** Past the TTL: written more than `ttlMs` before now (exactly `ttlMs` ago is still served). */
export function ttlExpiry(ttlMs: number, clock: Clock): Expiry {
  return (writtenAt) => writtenAt + ttlMs < clock.now();
}

/** The store's checkpoints: where each partition's store stands in its log. */
export class Checkpoints {
  readonly #store: Pick<MemoryState, "checkpoint" | "setCheckpoint" | "dropCheckpoint">;
  readonly #logger: Logger;

  constructor(store: Pick<MemoryState, "checkpoint" | "setCheckpoint" | "dropCheckpoint">, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /** The next offset of partition p the store lacks, if it has a checkpoint. */
  next(partition: number): bigint | undefined {
    return this.#store.checkpoint(partition)?.next_offset;
  }

  /** Records that the store holds partition p below `next`; a failure is logged (the store stays behind its log). */
  set(partition: number, next: bigint): Promise<void> {
    return this.#store.setCheckpoint(partition, next).catch((err: unknown) => this.#logger.error({ partition, err }, "state store checkpoint write failed"));
  }

  /** Forgets partition p's checkpoint: its next restore is cold. A failure is logged: the old checkpoint may then outlive its records. */
  drop(partition: number): Promise<void> {
    return this.#store
      .dropCheckpoint(partition)
      .catch((err: unknown) => this.#logger.warn({ partition, err }, "state store checkpoint not dropped; it stays until the partition's next restore"));
  }
}

export interface UpkeepOptions {
  store: Pick<MemoryState, "sweep">;
  checkpoints: Pick<Checkpoints, "next" | "set">;
  /** The held partitions' positions and the ownership check. */
  partitions: Pick<Ownership, "idle" | "position" | "isCurrent">;
  cache: Pick<ConversationCache, "evict">;
  /** CONVERSATION_TTL_MS. */
  ttlMs: number;
  clock: Clock;
  logger: Logger;
  /** Conversations were swept from the store (the conversations gauge follows). */
  onSwept(): void;
}

export class Upkeep {
  readonly #options: UpkeepOptions;

  constructor(options: UpkeepOptions) {
    this.#options = options;
  }

  /** Removes partition p's conversations past the TTL from the store (and its decoded ones from the cache); never rejects. */
  async sweep(partition: number): Promise<void> {
    const { store, cache, ttlMs, clock, logger } = this.#options;
    try {
      const removed = await store.sweep(partition, clock.now() - ttlMs);
      if (removed) {
        cache.evict(partition);
        logger.info({ partition, removed }, "expired conversations swept from the state store");
        this.#options.onSwept();
      }
    } catch (err) {
      logger.warn({ partition, err }, "state store sweep failed; expired conversations stay unserved until the next");
    }
  }

  /**
   * Sweeps the idle partitions (held, not restoring), and refreshes the checkpoint time of
   * those whose log has not moved since (checkpoint, position and log end all equal); never
   * rejects.
   */
  async maintain(): Promise<void> {
    const { checkpoints, partitions, logger } = this.#options;
    const idle = partitions.idle();
    for (const p of idle) await this.sweep(p);
    try {
      for (const p of idle) {
        const at = partitions.position(p);
        if (at === undefined || checkpoints.next(p) !== at || !(await partitions.isCurrent(p))) continue;
        // Where the partition stands now: a write during the check moved it (and its checkpoint) on.
        const next = partitions.position(p);
        if (next !== undefined) await checkpoints.set(p, next);
      }
    } catch (err) {
      logger.warn({ err }, "cannot refresh the state store's checkpoints");
    }
  }
}
