/**
 * The decoded conversations of the held partitions, read through from the state store and
 * bounded: the JS heap holds at most `entries` of them, least recently used dropped first,
 * and the rest stay on disk until a turn needs them. A conversation past the TTL is not
 * served, whether cached or stored; a stored record that does not decode is removed from
 * the store (logged), and the conversation starts afresh rather than failing every turn.
 */
import { conversationStateSchema, type ConversationState } from "../../contracts/records/memory.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import type { Logger } from "../../platform/logger.js";
import type { RecordWrite } from "../state-store.js";
import type { Clock, MemoryState } from "./ports.js";
import type { Expiry } from "./upkeep.js";

/** Decoded conversations kept in the JS heap by default. */
export const DEFAULT_CACHE_ENTRIES = 1000;

export interface ConversationCacheOptions {
  /** The most decoded conversations held. */
  entries: number;
  store: Pick<MemoryState, "get">;
  expired: Expiry;
  /** A store write nobody waits for (worker/memory/writes.ts MemoryWriter.local): removes an unreadable record. */
  drop(partition: number, writes: RecordWrite[]): void;
  clock: Clock;
  logger: Logger;
}

export class ConversationCache {
  readonly #options: ConversationCacheOptions;
  /** Least recently used first (Map order). */
  readonly #entries = new Map<string, { state: ConversationState; writtenAt: number }>();

  constructor(options: ConversationCacheOptions) {
    this.#options = options;
  }

  /** Decoded conversations held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** A conversation (by its key) of partition p, from the heap or else the store; undefined when absent, past the TTL, or unreadable. */
  get(partition: number, key: string): ConversationState | undefined {
    const { store, expired, clock, logger } = this.#options;
    const at = cacheKey(partition, key);
    const cached = this.#entries.get(at);
    if (cached) {
      if (expired(cached.writtenAt)) return undefined;
      this.#entries.delete(at);
      this.#entries.set(at, cached);
      return cached.state;
    }
    const stored = store.get(partition, "conversation", key);
    if (!stored || expired(stored.writtenAt)) return undefined;
    const decoded = decodeRecord(conversationStateSchema, stored.bytes);
    if (!decoded.ok) {
      logger.error({ partition, conversation_key: key, reason: decoded.reason }, "unreadable memory record; starting the conversation afresh");
      this.#options.drop(partition, [{ kind: "conversation", id: key, value: null, writtenAt: clock.now() }]);
      return undefined;
    }
    this.remember(partition, key, decoded.value, stored.writtenAt);
    return decoded.value;
  }

  /** Holds a conversation written at `writtenAt` (ms) as the most recently used, dropping the least recently used past the bound. */
  remember(partition: number, key: string, state: ConversationState, writtenAt: number): void {
    const at = cacheKey(partition, key);
    this.#entries.delete(at);
    this.#entries.set(at, { state, writtenAt });
    while (this.#entries.size > this.#options.entries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Drops one conversation (removed, or about to be rewritten by a restore). */
  delete(partition: number, key: string): void {
    this.#entries.delete(cacheKey(partition, key));
  }

  /** Drops partition p's conversations (revoked, behind its log, or about to be rewritten by a restore). */
  evict(partition: number): void {
    const prefix = cacheKey(partition, "");
    for (const key of [...this.#entries.keys()]) if (key.startsWith(prefix)) this.#entries.delete(key);
  }
}

function cacheKey(partition: number, key: string): string {
  return `${partition}\u0000${key}`;
}
