/**
 * The conversations of the partitions this worker owns, restored from chat.memory the way
 * a Kafka Streams state store restores from its changelog, behind the verbs a turn and the
 * query endpoint mean: load a conversation as the log has it, write it if this worker still
 * owns its partition. Its parts live in worker/memory/: the restore to a fence (restore.ts),
 * ownership and its fence (ownership.ts), writes (writes.ts), handed-over replies
 * (handovers.ts), the bounded cache of decoded conversations (cache.ts), checkpoints and
 * the TTL (upkeep.ts). This module owns their lifecycle (the state store on disk, the
 * reader of chat.memory, the timers) and wires them to each other.
 *
 * The state lives on disk (worker/state-store.ts, LMDB under WORKER_STATE_DIR) with the
 * next offset applied per partition, as a Kafka Streams store keeps its checkpoint; the JS
 * heap holds only a bounded cache of decoded conversations. A revoked partition's data
 * stays on disk but is not served. A single reader (platform/kafka/assigned-reader.ts: no
 * group, nothing committed) reads only the partitions being restored. While the worker
 * owns p it is the only writer of memory p, so between restores its own writes are the
 * truth.
 */
import type { KafkaConfig } from "../contracts/config/shared.js";
import { privateGroup } from "../contracts/kafka-acls.js";
import { decodeRecord, encodeRecord } from "../contracts/records/codec.js";
import { SCHEMA_VERSION } from "../contracts/records/fields.js";
import { attemptsMarkerSchema, type AttemptsMarker, type ConversationState, type Handover } from "../contracts/records/memory.js";
import type { KafkaAdmin } from "../platform/kafka/admin.js";
import { AssignedReader } from "../platform/kafka/assigned-reader.js";
import type { RecordSink } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";
import { ConversationCache, DEFAULT_CACHE_ENTRIES } from "./memory/cache.js";
import { Handovers } from "./memory/handovers.js";
import { attemptsKey, isFence, recordWrite, type MemoryRecord } from "./memory/keys.js";
import { CONFIRMED_FRESH_MS, Ownership } from "./memory/ownership.js";
import { systemClock, type MemoryReader, type MemoryState } from "./memory/ports.js";
import { FENCE_CHECK_MS, Restores, type RestoreMetrics, type RestoreStats } from "./memory/restore.js";
import { Checkpoints, Upkeep, ttlExpiry } from "./memory/upkeep.js";
import { MemoryWriter } from "./memory/writes.js";
import { StateStore } from "./state-store.js";

/** Bytes the reader fetches per partition and request: a restore reads whole partitions, in few round trips. */
const FETCH_BYTES = 16 * 1024 * 1024;
/** How often expired conversations are swept and idle partitions' checkpoints refreshed. */
const DEFAULT_MAINTENANCE_MS = 10 * 60_000;

export interface MemoryStoreMetrics extends RestoreMetrics {
  conversations: { set(v: number): void };
}

export interface MemoryStoreOptions {
  /** The connection of the store's reader. */
  kafka: KafkaConfig;
  /** Partitions' log starts and ends: a restore's plan, the reader's watchdog, and the ownership check when the reader cannot answer. */
  admin: KafkaAdmin;
  /** Where the store writes (conversations, handovers, fences): acks=all, idempotent. */
  producer: RecordSink;
  topic: string;
  /** The worker's own groups' prefix (contracts/kafka-acls.ts privateGroup); the reader's group id is `<prefix>.memory`, never joined. */
  groupPrefix: string;
  logger: Logger;
  metrics: MemoryStoreMetrics;
  /** WORKER_STATE_DIR: where the state store lives. */
  stateDir: string;
  /** CONVERSATION_TTL_MS: conversations not written for this long are not served. */
  conversationTtlMs: number;
  /** The most memory partitions (KAFKA_REQUEST_PARTITIONS); sizes the store's table of databases. */
  partitions: number;
  /** Decoded conversations kept in the heap; default 1000. */
  cacheEntries?: number;
  /** How often expired conversations are swept, ms; default 10 minutes. */
  maintenanceIntervalMs?: number;
}

export class MemoryStore {
  readonly #options: MemoryStoreOptions;
  readonly #logger: Logger;
  readonly #ownership: Ownership;
  readonly #writer: MemoryWriter;
  readonly #isCurrent: (partition: number, freshForMs?: number) => Promise<boolean>;
  readonly #cache: ConversationCache;
  readonly #handovers: Handovers;
  readonly #restores: Restores;
  readonly #upkeep: Upkeep;
  #store: StateStore | null = null;
  #reader: AssignedReader | null = null;
  #fenceCheck: NodeJS.Timeout | null = null;
  #maintenance: NodeJS.Timeout | null = null;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    const logger = options.logger.child({ component: "memory" });
    this.#logger = logger;
    const { admin, producer, topic, metrics } = options;
    const clock = systemClock;
    const store = this.#storePort();
    const reader = this.#readerPort();
    const checkpoints = new Checkpoints(store, logger);
    const expired = ttlExpiry(options.conversationTtlMs, clock);
    this.#ownership = new Ownership({ topic, reader, admin, checkpoints, clock, logger });
    this.#writer = new MemoryWriter({ topic, producer, store, checkpoints, positions: this.#ownership, clock, logger });
    const writer = this.#writer;
    this.#cache = new ConversationCache({
      entries: options.cacheEntries ?? DEFAULT_CACHE_ENTRIES,
      store,
      expired,
      drop: (p, writes) => void writer.local(p, writes),
      clock,
      logger,
    });
    // The fence's question, asked between this store's own writes to the partition (see MemoryWriter.between).
    const ownership = this.#ownership;
    const isCurrent = (p: number, freshForMs = 0): Promise<boolean> =>
      ownership.fresh(p, freshForMs) ? Promise.resolve(true) : writer.between(p, () => ownership.isCurrent(p));
    this.#isCurrent = isCurrent;
    this.#handovers = new Handovers({ store, writer, ownership: { holds: (p) => ownership.holds(p), isCurrent }, clock, logger });
    this.#upkeep = new Upkeep({
      store,
      checkpoints,
      partitions: { idle: () => ownership.idle(), position: (p) => ownership.position(p), isCurrent },
      cache: this.#cache,
      ttlMs: options.conversationTtlMs,
      clock,
      logger,
      onSwept: () => this.#updateGauge(),
    });
    this.#restores = new Restores({
      topic,
      admin,
      producer,
      reader,
      store,
      positions: this.#ownership,
      checkpoints,
      cache: this.#cache,
      metrics,
      clock,
      logger,
      onRestored: (p, skipped) => {
        this.#updateGauge();
        void this.#repair(p, skipped).finally(() => this.#upkeep.sweep(p));
      },
    });
  }

  /** Decoded conversations held in the JS heap now (bounded by cacheEntries). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** What the last finished restore of partition p did, if one did. */
  lastRestore(partition: number): RestoreStats | undefined {
    return this.#restores.last(partition);
  }

  /** Opens the state store and starts the reader (it reads nothing until a restore gives it a partition). */
  async start(): Promise<void> {
    const store = StateStore.open({ dir: this.#options.stateDir, topic: this.#options.topic, partitions: this.#options.partitions, logger: this.#logger });
    this.#store = store;
    this.#logger.info({ path: store.path, replaced: store.fellBack }, "state store opened");
    const admin = this.#options.admin;
    const topic = this.#options.topic;
    const reader = new AssignedReader({
      kafka: this.#options.kafka,
      topic,
      name: "memory-reader",
      groupId: privateGroup(this.#options.groupPrefix, "memory"),
      logger: this.#logger,
      onRecords: (records) => this.#restores.onRecords(records),
      // Its watchdog replaces a consumer that stopped fetching (librdkafka#5153) while a
      // restore's records wait, so a stalled restore is driven again from where it was.
      ends: async () => new Map((await admin.offsets(topic)).map((o) => [o.partition, o.high])),
      fetchBytes: FETCH_BYTES,
      // A restore's records are all written before it starts reading (its fence is last):
      // the only wait at the broker is for the fence's fetch, so keep it short.
      fetchWaitMs: 10,
    });
    await reader.start();
    this.#reader = reader;
    this.#fenceCheck = setInterval(() => this.#restores.checkFences(), FENCE_CHECK_MS);
    this.#fenceCheck.unref();
    this.#maintenance = setInterval(() => void this.#upkeep.maintain(), this.#options.maintenanceIntervalMs ?? DEFAULT_MAINTENANCE_MS);
    this.#maintenance.unref();
  }

  async stop(): Promise<void> {
    if (this.#fenceCheck) clearInterval(this.#fenceCheck);
    if (this.#maintenance) clearInterval(this.#maintenance);
    await this.#reader?.stop();
    this.#reader = null;
    await this.#store?.close();
    this.#store = null;
  }

  /** Sets the partitions this worker owns: drops the others, restores or catches up these. */
  assign(partitions: readonly number[]): void {
    this.#ownership.assign(partitions);
    for (const p of this.#ownership.held()) {
      if (!partitions.includes(p)) {
        this.#restores.revoke(p);
        this.#ownership.release(p);
        this.#cache.evict(p);
      }
    }
    for (const p of partitions) {
      // A turn of p awaits the same restore and fails with it (and is retried); log it once here.
      void this.#restores
        .restore(p)
        .catch((err: unknown) =>
          this.#logger.warn({ partition: p, err }, "memory restore did not finish (revoked, or Kafka refused); a turn of the partition restores again"),
        );
    }
    this.#updateGauge();
  }

  /** Resolves once partition p's memory is read to its end (restoring it first if needed). */
  ready(partition: number): Promise<void> {
    if (!this.#ownership.holds(partition)) return this.#restores.restore(partition);
    return this.#restores.pending(partition) ?? Promise.resolve();
  }

  /**
   * Ownership, as the log sees it: whether this store has seen all of memory p (see
   * worker/memory/ownership.ts). False while p is restored, or once another worker that
   * took p over has written there.
   */
  isCurrent(partition: number): Promise<boolean> {
    return this.#isCurrent(partition);
  }

  /**
   * Reads what another worker wrote to memory p since this store last looked, if anything.
   * A worker that wakes from a freeze after its partition moved on thus sees what its
   * successor applied (and re-announces it) instead of answering again from stale state.
   */
  async catchUp(partition: number): Promise<void> {
    if (await this.#isCurrent(partition, CONFIRMED_FRESH_MS)) return;
    this.#logger.warn({ partition }, "memory partition was written by another worker; catching up");
    await this.#restores.restore(partition);
  }

  /**
   * A conversation as the log has it now: restores the partition or catches up with what
   * another worker wrote first, so a worker that woke from a freeze never answers from
   * stale state. Also returns a reply a previous owner handed over for `requestId` of this
   * conversation. `key`: the conversation key (tenant and id, contracts/conversation-key.ts).
   */
  async load(partition: number, key: string, requestId: string): Promise<{ state?: ConversationState; handover?: Handover; restored?: boolean }> {
    // Whether this load waits for the partition's restore (a partition just gained): for the turn's trace.
    const restored = !this.#ownership.holds(partition) || this.#restores.pending(partition) !== undefined;
    await this.ready(partition);
    await this.catchUp(partition);
    const state = this.get(partition, key);
    const handover = this.#handovers.find(partition, requestId, key);
    return { ...(state && { state }), ...(handover && { handover }), ...(restored && { restored }) };
  }

  /**
   * A conversation for a reader elsewhere (a gateway), as the log has it: waits up to
   * `timeoutMs` for the partition's restore and catches up with what another worker wrote.
   * `owned: false` when partition p is not this worker's (any more); rejects when the
   * restore did not finish within the bound.
   */
  async lookup(partition: number, key: string, timeoutMs = 5000): Promise<{ owned: false } | { owned: true; state?: ConversationState }> {
    if (!this.#ownership.assigned(partition)) return { owned: false };
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`memory partition ${partition} not restored within ${timeoutMs} ms`)), timeoutMs);
    });
    const current = (async () => {
      await this.ready(partition);
      await this.catchUp(partition);
    })();
    current.catch(() => {}); // past the bound nobody awaits it; a turn of p restores again
    try {
      await Promise.race([current, bound]);
    } finally {
      clearTimeout(timer);
    }
    if (!this.#ownership.assigned(partition)) return { owned: false };
    const state = this.get(partition, key);
    return state ? { owned: true, state } : { owned: true };
  }

  /**
   * Writes a conversation's new state (null: a tombstone) if this worker is still the
   * partition's only writer; returns false when another worker has written there since (it
   * owns the partition now). `clearHandover` also removes that request's handed-over reply,
   * once its continuation is part of the state.
   *
   * The write is its own fence: its records say where this store expects them to land (its
   * position in the log), and count only if they land there (worker/memory/writes.ts); so
   * no check of the log's end comes first. A partition being restored, or whose position is
   * in doubt, is not written at all. In a transaction the broker is the fence too (it
   * refuses the transaction of a replaced worker).
   *
   * `state` may still be in the making (its history record being written).
   */
  async writeIfOwner(
    partition: number,
    key: string,
    pending: ConversationState | null | Promise<ConversationState>,
    clearHandover?: string,
    transaction?: RecordSink,
  ): Promise<boolean> {
    const state = await pending;
    const at = this.#ownership.position(partition);
    if (at === undefined || at < 0n) return false;
    // The state and the handover's tombstone go in one send (one batch of the partition);
    // false if they did not land where this worker expected (worker/memory/writes.ts).
    return this.put(partition, key, state, this.#handovers.clearing(partition, clearHandover), transaction);
  }

  /**
   * The transaction that wrote memory partition p (writeIfOwner with `transaction`)
   * committed: the partition's end is past its commit marker, one offset after its records.
   */
  committed(partition: number): void {
    this.#ownership.committed(partition);
  }

  /**
   * The transaction that wrote memory partition p was aborted: what this store took from
   * its records is not in the log. The partition is read again from the log before its next
   * turn (its cached conversations dropped, its position no longer the log's end).
   */
  forget(partition: number): void {
    if (this.#ownership.forget(partition)) this.#cache.evict(partition);
  }

  /** Leaves a stopped reply for the partition's next owner (see Handover); false when no longer the owner. */
  handOver(partition: number, handover: Handover): Promise<boolean> {
    return this.#handovers.handOver(partition, handover);
  }

  /** Removes a request's handed-over reply (its continuation is done); false when no longer the owner. */
  clearHandover(partition: number, requestId: string, transaction?: RecordSink): Promise<boolean> {
    return this.#handovers.clear(partition, requestId, transaction);
  }

  /**
   * The attempts an earlier owner recorded at the chat.requests record at `offset` of
   * partition p (worker/attempts.ts), as the log has it: 0 when none (or unreadable).
   */
  async attemptsAt(partition: number, offset: string): Promise<number> {
    await this.ready(partition);
    await this.catchUp(partition);
    const stored = this.#store?.get(partition, "conversation", attemptsKey(offset));
    if (!stored) return 0;
    const decoded = decodeRecord(attemptsMarkerSchema, stored.bytes);
    if (decoded.ok) return decoded.value.attempts;
    this.#logger.warn({ partition, offset, reason: decoded.reason }, "unreadable attempt marker; counting from none");
    return 0;
  }

  /**
   * Records `attempts` at the chat.requests record at `offset` of partition p (null: removes
   * the marker, a tombstone); false, writing nothing, when this worker does not own p.
   */
  async markAttempts(partition: number, offset: string, attempts: number | null): Promise<boolean> {
    const at = this.#ownership.position(partition);
    if (at === undefined || at < 0n) return false;
    const marker: AttemptsMarker | null = attempts === null ? null : { v: SCHEMA_VERSION, type: "attempts", attempts };
    return this.#writer.send(partition, [{ key: attemptsKey(offset), value: marker === null ? null : encodeRecord(marker) }]);
  }

  /** A conversation (by its key) of an owned partition as this store has it (undefined past the TTL). */
  get(partition: number, key: string): ConversationState | undefined {
    if (!this.#ownership.holds(partition)) return undefined;
    return this.#cache.get(partition, key);
  }

  /**
   * Writes a conversation's new state (or a tombstone, for null) under its key to memory
   * partition p, with `also` after it in the same send. False when the records did not land
   * where this worker expected: another worker wrote to the partition (worker/memory/writes.ts).
   */
  async put(partition: number, key: string, state: ConversationState | null, also: readonly MemoryRecord[] = [], transaction?: RecordSink): Promise<boolean> {
    if (!(await this.#writer.send(partition, [{ key, value: state === null ? null : encodeRecord(state) }, ...also], transaction))) return false;
    if (!this.#ownership.holds(partition)) return true;
    if (state === null) this.#cache.delete(partition, key);
    else this.#cache.remember(partition, key, state, Date.now());
    this.#updateGauge();
    return true;
  }

  /**
   * Writes again, as this store has them, the records under keys the restore skipped (a
   * replaced worker's, which landed where their writer did not expect): left the latest of
   * their key, compaction would in time drop the record before them that counts.
   */
  async #repair(partition: number, keys: ReadonlySet<string>): Promise<void> {
    const store = this.#store;
    const records: MemoryRecord[] = [];
    for (const key of keys) {
      if (isFence(key) || !store) continue;
      const write = recordWrite(key, null, 0);
      records.push({ key, value: store.get(partition, write.kind, write.id)?.bytes ?? null });
    }
    if (records.length === 0) return;
    this.#logger.warn({ partition, records: records.length }, "memory records of a replaced worker skipped; writing their keys' state again");
    await this.#writer.send(partition, records).catch((err: unknown) => this.#logger.warn({ partition, err }, "could not write the skipped keys' state again"));
  }

  #updateGauge(): void {
    const store = this.#store;
    if (!store) return;
    let n = 0;
    for (const p of this.#ownership.held()) n += store.count(p);
    this.#options.metrics.conversations.set(n);
  }

  /** The state store as the parts see it: the open one, or an error before start and after stop. */
  #storePort(): MemoryState {
    const open = (): StateStore => {
      if (!this.#store) throw new Error("the memory store is not started");
      return this.#store;
    };
    return {
      checkpoint: (p) => open().checkpoint(p),
      setCheckpoint: (p, next, now) => open().setCheckpoint(p, next, now),
      dropCheckpoint: (p) => open().dropCheckpoint(p),
      clearPartition: (p) => open().clearPartition(p),
      write: (p, writes) => open().write(p, writes),
      writeBulk: (p, writes) => open().writeBulk(p, writes),
      get: (p, kind, id) => open().get(p, kind, id),
      has: (p, kind, id) => open().has(p, kind, id),
      count: (p) => open().count(p),
      sweep: (p, cutoff) => open().sweep(p, cutoff),
    };
  }

  /** The reader as the parts see it: taking a partition off it when not started does nothing; reading or asking needs it started. */
  #readerPort(): MemoryReader {
    const started = (): AssignedReader => {
      if (!this.#reader) throw new Error("the memory store is not started");
      return this.#reader;
    };
    return {
      seek: (p, offset) => started().seek(p, offset),
      add: (p, offset) => this.#reader?.add(p, offset),
      remove: (p) => this.#reader?.remove(p),
      waitFor: (p, offset, timeoutMs) => started().waitFor(p, offset, timeoutMs),
      end: (p, timeoutMs) => started().end(p, timeoutMs),
    };
  }
}
