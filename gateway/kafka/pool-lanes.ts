/**
 * What the gateway runs for each pool (gateway/pools.ts) once chat.models declares it: a
 * reader of the pool's request topic (request ids and queue positions), the queued notices,
 * the lag exporter and the conversation lookup of its workers' group. Started as pools
 * appear, never stopped while the gateway runs (a withdrawn pool's topic keeps its records
 * until they age out; its numbers stay at their last values); every part is bounded by the
 * pool's partitions or the request bounds, so pools add at most their partition count each.
 */
import type { ConversationRef } from "../../contracts/conversation-key.js";
import type { ConversationState } from "../../contracts/records/memory.js";
import { DEFAULT_POOL } from "../../contracts/pools.js";
import type { QueueWatch } from "./queue-watch.js";
import type { ConversationLookup } from "./owners.js";
import type { ConversationPools, PoolLane, PoolRouter } from "../pools.js";

/** One pool's running parts. */
export interface LaneParts {
  readonly queueWatch: QueueWatch;
  readonly conversations: ConversationLookup;
  /** Starts exporting the pool's lag (PoolLanes.startLag). */
  startLag(): void;
  /** True once the pool's request topic's look-back is read. */
  caughtUp(): boolean;
  stop(): Promise<void>;
}

export class PoolLanes {
  readonly #parts = new Map<string, LaneParts>();
  readonly #starting = new Map<string, Promise<void>>();
  readonly #start: (lane: PoolLane) => Promise<LaneParts>;
  readonly #onError: (pool: string, err: unknown) => void;
  #lagging = false;
  /** The pool each recent request was read on (bounded: `maxRequests`, oldest out first). */
  readonly #requestPools = new Map<string, string>();
  readonly #maxRequests: number;
  /** Streams waiting for their request to be read on its pool's topic, to watch it there. */
  readonly #pending = new Map<string, Set<{ onNotice: Parameters<QueueWatch["watch"]>[1]; cancel?: () => void }>>();

  constructor(options: { start: (lane: PoolLane) => Promise<LaneParts>; onError: (pool: string, err: unknown) => void; maxRequests: number }) {
    this.#start = options.start;
    this.#onError = options.onError;
    this.#maxRequests = Math.max(1, options.maxRequests);
  }

  /** A request was read on `pool`'s topic (its reader calls this after placing it in the pool's queue watch). */
  requestRead(requestId: string, pool: string): void {
    this.#requestPools.delete(requestId);
    this.#requestPools.set(requestId, pool);
    while (this.#requestPools.size > this.#maxRequests) this.#requestPools.delete(this.#requestPools.keys().next().value!);
    const waiting = this.#pending.get(requestId);
    const watch = this.#parts.get(pool)?.queueWatch;
    if (!waiting || !watch) return;
    this.#pending.delete(requestId);
    for (const w of waiting) w.cancel = watch.watch(requestId, w.onNotice);
  }

  /** Starts the parts of pools not running yet (a failed start is tried again at the next call). */
  async ensure(lanes: readonly PoolLane[]): Promise<void> {
    await Promise.all(lanes.filter((lane) => !this.#parts.has(lane.pool)).map((lane) => this.#starting.get(lane.pool) ?? this.#startLane(lane)));
  }

  #startLane(lane: PoolLane): Promise<void> {
    const starting = this.#start(lane)
      .then(
        (parts) => {
          this.#parts.set(lane.pool, parts);
          if (this.#lagging) parts.startLag();
        },
        (err: unknown) => this.#onError(lane.pool, err),
      )
      .finally(() => this.#starting.delete(lane.pool));
    this.#starting.set(lane.pool, starting);
    return starting;
  }

  /** Starts every pool's lag exporter, and those of pools started from now on. */
  startLag(): void {
    if (this.#lagging) return;
    this.#lagging = true;
    for (const parts of this.#parts.values()) parts.startLag();
  }

  parts(pool: string): LaneParts | undefined {
    return this.#parts.get(pool);
  }

  /** True once every running pool's look-back is read. */
  caughtUp(): boolean {
    return [...this.#parts.values()].every((p) => p.caughtUp());
  }

  /**
   * Queued notices for a request, from the watch of the pool whose topic it is on; one not
   * read there yet (a few ms after its produce) is watched once it is. Only that pool's watch
   * asks Kafka about it: a watch elsewhere would look for it every 250 ms until it started.
   */
  readonly queueWatch = {
    watch: (requestId: string, onNotice: Parameters<QueueWatch["watch"]>[1]): (() => void) => {
      const pool = this.#requestPools.get(requestId);
      const watch = pool === undefined ? undefined : this.#parts.get(pool)?.queueWatch;
      if (watch) return watch.watch(requestId, onNotice);
      const entry: { onNotice: typeof onNotice; cancel?: () => void } = { onNotice };
      let waiting = this.#pending.get(requestId);
      if (!waiting) this.#pending.set(requestId, (waiting = new Set()));
      waiting.add(entry);
      return () => {
        entry.cancel?.();
        waiting.delete(entry);
        if (waiting.size === 0 && this.#pending.get(requestId) === waiting) this.#pending.delete(requestId);
      };
    },
  };

  /**
   * Conversation reads, asked of the workers of the pool the conversation is in: the one it
   * was last sent to, else the default pool (or the only one).
   */
  conversationLookup(router: PoolRouter, conversations: ConversationPools): ConversationLookup {
    const partsOf = (pool: string) => this.#parts.get(pool);
    const allParts = () => [...this.#parts.values()];
    const poolOf = (ref: ConversationRef): string | undefined => {
      const held = conversations.get(ref.tenant, ref.conversation_id);
      if (held !== undefined && this.#parts.has(held)) return held;
      if (this.#parts.has(DEFAULT_POOL)) return DEFAULT_POOL;
      const all = router.lanes();
      return all.length === 1 ? all[0]!.pool : undefined;
    };
    return {
      async get(ref: ConversationRef, options?: { wait?: boolean }): Promise<ConversationState | undefined> {
        // A state left behind by a move names the pool the conversation went to: ask there (once per pool at most).
        const asked = new Set<string>();
        let pool = poolOf(ref);
        while (pool !== undefined && !asked.has(pool)) {
          asked.add(pool);
          const parts = partsOf(pool);
          if (!parts) return undefined;
          const state = await parts.conversations.get(ref, options);
          if (state?.moved_to === undefined) return state;
          pool = state.moved_to;
        }
        return undefined;
      },
      get cachedOwners(): number {
        return allParts().reduce((n, p) => n + p.conversations.cachedOwners, 0);
      },
      async stop(): Promise<void> {
        await Promise.all(allParts().map((p) => p.stop()));
      },
    };
  }
}
