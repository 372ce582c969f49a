/**
 * The conversations of the partitions this worker owns, restored from chat.memory the way
 * a Kafka Streams state store restores from its changelog.
 *
 * When the worker gains partition p of chat.requests it reads partition p of chat.memory
 * to its end before any request of p runs. "The end" is made exact with a fence: the store
 * writes a marker record (a tombstone under a key no conversation can have) to memory
 * partition p and reads until it sees that record, so everything written before, by any
 * earlier owner, has been applied. A partition kept across a rebalance is caught up the
 * same way from where the store last was, so a write by another owner in between is never
 * missed.
 *
 * The state lives on disk (worker/state-store.ts, LMDB under WORKER_STATE_DIR) with the
 * next offset applied per partition, as a Kafka Streams store keeps its checkpoint: a
 * partition this worker held before is read only from there (a warm restore); one it never
 * held, or whose checkpoint is unusable (see worker/restore-plan.ts), from the beginning (a
 * cold restore), into the store, one fetch at a time. The JS heap holds only a bounded cache
 * of decoded conversations. A revoked partition's data stays on disk but is not served.
 * Conversations not written for CONVERSATION_TTL_MS are not served and are swept from the
 * store (Kafka's retention drops them without tombstones).
 *
 * A single reader (platform/kafka/assigned-reader.ts: no group, nothing committed) does the
 * reading: a partition is given to it from where its restore starts and taken back at the
 * fence, so it reads only partitions being restored. Should the store fall behind what the
 * reader fetches, the partition is taken off the reader until the store has caught up, so RAM
 * holds a bounded part of the partition, not all of it. While the worker owns p it is the
 * only writer of memory p, so between restores its own writes are the truth.
 */
import { randomUUID } from "node:crypto";
import type { KafkaConfig } from "../contracts/config/shared.js";
import { privateGroup } from "../contracts/kafka-acls.js";
import { MEMORY_DELETE_RETENTION_MS } from "../contracts/topics.js";
import { HANDOVER_KEY_PREFIX, conversationStateSchema, handoverSchema, type ConversationState, type Handover } from "../contracts/records/memory.js";
import { decodeRecord, encodeRecord } from "../contracts/records/codec.js";
import type { KafkaAdmin } from "../platform/kafka/admin.js";
import { AssignedReader, type ReadRecord } from "../platform/kafka/assigned-reader.js";
import type { RecordSink } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";
import { planRestore, type RestorePlan } from "./restore-plan.js";
import { StateStore, type RecordWrite } from "./state-store.js";
import { conversationKey } from "../contracts/conversation-key.js";

/** Conversation ids cannot contain '#', so fence keys never collide with conversations. */
const FENCE_PREFIX = "#fence:";
/** How often running restores are checked for a read that passed its fence without reading it. */
const FENCE_CHECK_MS = 2_000;
/** Bytes a restore may hold read and not yet in the store before its partition is taken off the reader. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** Bytes the reader fetches per partition and request: a restore reads whole partitions, in few round trips. */
const FETCH_BYTES = 16 * 1024 * 1024;
/** How long a partition end asked of the reader's consumer may take before the admin is asked (ms). */
const END_TIMEOUT_MS = 3000;
/** Decoded conversations kept in the JS heap (the rest stay on disk until a turn needs them). */
const DEFAULT_CACHE_ENTRIES = 1000;
/** How often expired conversations are swept and idle partitions' checkpoints refreshed. */
const DEFAULT_MAINTENANCE_MS = 10 * 60_000;

export type RestoreKind = "cold" | "warm";

interface PartitionState {
  /** The end of the log as this store last saw it (isCurrent compares against it). */
  nextOffset: bigint;
  restoring: Restoring | null;
}

interface Restoring {
  fenceKey: string;
  /** False until the plan is made (and a cold store cleared) and the fence written: until then nothing is read. */
  started: boolean;
  kind: RestoreKind;
  from: bigint;
  /** Where the fence landed (the producer's delivery report): the read must meet it there. */
  fenceAt: bigint;
  /** The next offset to read: where the reader takes the partition up again after a pause. */
  readTo: bigint;
  /** Records read and not yet handed to the store, and their bytes. */
  pending: RecordWrite[];
  pendingBytes: number;
  /** A store transaction of this restore is in flight (one at a time, in read order). */
  writing: boolean;
  /** Taken off the reader until the store catches up with what was read. */
  paused: boolean;
  /** Set once the fence is read: nothing after it is, and the restore ends when the store has the rest. */
  fenceOffset: bigint | null;
  /** Records applied to the store by this restore. */
  records: number;
  /** Why it is cold, if it is. */
  reason?: string;
  startedAt: number;
  done: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

export interface MemoryStoreMetrics {
  restoreSeconds: { observe(labels: { kind: RestoreKind }, v: number): void };
  restoredRecords?: { inc(labels: { kind: RestoreKind }, v: number): void };
  conversations: { set(v: number): void };
}

/** What the last finished restore of a partition did. */
export interface RestoreStats {
  kind: RestoreKind;
  /** The offset it read from (the log start for a cold restore). */
  from: bigint;
  /** Records it read and applied (fences not counted). */
  records: number;
  /** Why it was cold, if it was. */
  reason?: string;
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
  readonly #partitions = new Map<number, PartitionState>();
  /** The partitions the group gave this worker (assign), whose conversations it answers for. */
  #owned = new Set<number>();
  readonly #admin: KafkaAdmin;
  readonly #producer: RecordSink;
  readonly #topic: string;
  readonly #logger: Logger;
  readonly #metrics: MemoryStoreMetrics;
  readonly #options: MemoryStoreOptions;
  readonly #cacheEntries: number;
  /** Decoded conversations, least recently used first (Map order). */
  readonly #cache = new Map<string, { state: ConversationState; writtenAt: number }>();
  readonly #lastRestore = new Map<number, RestoreStats>();
  #store: StateStore | null = null;
  #reader: AssignedReader | null = null;
  #endsWarnedAt = 0;
  #fenceCheck: NodeJS.Timeout | null = null;
  #maintenance: NodeJS.Timeout | null = null;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    this.#admin = options.admin;
    this.#producer = options.producer;
    this.#topic = options.topic;
    this.#logger = options.logger.child({ component: "memory" });
    this.#metrics = options.metrics;
    this.#cacheEntries = options.cacheEntries ?? DEFAULT_CACHE_ENTRIES;
  }

  /** Decoded conversations held in the JS heap now (bounded by cacheEntries). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** What the last finished restore of partition p did, if one did. */
  lastRestore(partition: number): RestoreStats | undefined {
    return this.#lastRestore.get(partition);
  }

  /** Opens the state store and starts the reader (it reads nothing until a restore gives it a partition). */
  async start(): Promise<void> {
    const store = StateStore.open({ dir: this.#options.stateDir, topic: this.#topic, partitions: this.#options.partitions, logger: this.#logger });
    this.#store = store;
    this.#logger.info({ path: store.path, replaced: store.fellBack }, "state store opened");
    const reader = new AssignedReader({
      kafka: this.#options.kafka,
      topic: this.#topic,
      name: "memory-reader",
      groupId: privateGroup(this.#options.groupPrefix, "memory"),
      logger: this.#logger,
      onRecords: (records) => this.#onRecords(records),
      // Its watchdog replaces a consumer that stopped fetching (librdkafka#5153) while a
      // restore's records wait, so a stalled restore is driven again from where it was.
      ends: async () => new Map((await this.#admin.offsets(this.#topic)).map((o) => [o.partition, o.high])),
      fetchBytes: FETCH_BYTES,
      // A restore's records are all written before it starts reading (its fence is last):
      // the only wait at the broker is for the fence's fetch, so keep it short.
      fetchWaitMs: 10,
    });
    await reader.start();
    this.#reader = reader;
    this.#fenceCheck = setInterval(() => this.#checkFences(), FENCE_CHECK_MS);
    this.#fenceCheck.unref();
    this.#maintenance = setInterval(() => void this.#maintain(), this.#options.maintenanceIntervalMs ?? DEFAULT_MAINTENANCE_MS);
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
    this.#owned = new Set(partitions);
    for (const p of [...this.#partitions.keys()]) {
      if (!partitions.includes(p)) {
        this.#partitions.get(p)?.restoring?.reject(new Error(`partition ${p} was revoked during its restore`));
        this.#partitions.delete(p);
        this.#reader?.remove(p);
        this.#evict(p);
      }
    }
    for (const p of partitions) {
      // A turn of p awaits the same restore and fails with it (and is retried); log it once here.
      void this.#restore(p).catch((err: unknown) =>
        this.#logger.warn({ partition: p, err }, "memory restore did not finish (revoked, or Kafka refused); a turn of the partition restores again"),
      );
    }
    this.#updateGauge();
  }

  /** Resolves once partition p's memory is read to its end (restoring it first if needed). */
  ready(partition: number): Promise<void> {
    const state = this.#partitions.get(partition);
    if (!state) return this.#restore(partition);
    return state.restoring ? state.restoring.done : Promise.resolve();
  }

  /**
   * Ownership, as the log sees it. While this worker owns partition p it is the only writer
   * of memory p, so the partition's end is where this store last wrote or read. Anything
   * beyond that was written by another worker that took p over (its restore fence at
   * least): this store is behind, and may no longer be the owner.
   */
  async isCurrent(partition: number): Promise<boolean> {
    const state = this.#partitions.get(partition);
    if (!state || state.restoring) return false;
    return BigInt(await this.#logEnd(partition)) === state.nextOffset;
  }

  /**
   * Memory partition p's end: one ListOffsets round trip through the reader's consumer (it
   * need not read p to ask); should that fail, through the admin (a metadata request first,
   * so a consumer's metadata cache left stale by a broker's restart costs time, never
   * availability).
   */
  async #logEnd(partition: number): Promise<number> {
    const reader = this.#reader;
    if (!reader) throw new Error("the memory store is not started");
    try {
      return await reader.end(partition, END_TIMEOUT_MS);
    } catch (err) {
      if (Date.now() - this.#endsWarnedAt > 60_000) {
        this.#endsWarnedAt = Date.now();
        this.#logger.warn({ partition, err }, "memory partition end not known to the reader's consumer; asking the admin");
      }
      const end = (await this.#admin.offsets(this.#topic)).find((o) => o.partition === partition)?.high;
      if (end === undefined) throw new Error(`memory topic ${this.#topic} has no partition ${partition}`, { cause: err });
      return end;
    }
  }

  /**
   * Reads what another worker wrote to memory p since this store last looked, if anything.
   * A worker that wakes from a freeze after its partition moved on thus sees what its
   * successor applied (and re-announces it) instead of answering again from stale state.
   */
  async catchUp(partition: number): Promise<void> {
    if (await this.isCurrent(partition)) return;
    this.#logger.warn({ partition }, "memory partition was written by another worker; catching up");
    await this.#restore(partition);
  }

  /**
   * A conversation as the log has it now: restores the partition or catches up with what
   * another worker wrote first, so a worker that woke from a freeze never answers from
   * stale state. Also returns a reply a previous owner handed over for `requestId` of this
   * conversation. `key`: the conversation key (tenant and id, contracts/conversation-key.ts).
   */
  async load(partition: number, key: string, requestId: string): Promise<{ state?: ConversationState; handover?: Handover }> {
    await this.ready(partition);
    await this.catchUp(partition);
    const state = this.get(partition, key);
    const handed = this.#handover(partition, requestId);
    const handover = handed && conversationKey(handed) === key ? handed : undefined;
    return { ...(state && { state }), ...(handover && { handover }) };
  }

  /**
   * A conversation for a reader elsewhere (a gateway), as the log has it: waits up to
   * `timeoutMs` for the partition's restore and catches up with what another worker wrote.
   * `owned: false` when partition p is not this worker's (any more); rejects when the
   * restore did not finish within the bound.
   */
  async lookup(partition: number, key: string, timeoutMs = 5000): Promise<{ owned: false } | { owned: true; state?: ConversationState }> {
    if (!this.#owned.has(partition)) return { owned: false };
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
    if (!this.#owned.has(partition)) return { owned: false };
    const state = this.get(partition, key);
    return state ? { owned: true, state } : { owned: true };
  }

  /**
   * Writes a conversation's new state (null: a tombstone) if this worker is still the
   * partition's only writer; returns false, writing nothing, when another worker has written
   * there since (it owns the partition now). `clearHandover` also removes that request's
   * handed-over reply, once its continuation is part of the state.
   *
   * `state` may still be in the making (its history record being written): the ownership
   * check runs meanwhile, and the record is written once both are done, so the check costs
   * a turn no round trip of its own.
   */
  async writeIfOwner(
    partition: number,
    key: string,
    pending: ConversationState | null | Promise<ConversationState>,
    clearHandover?: string,
    transaction?: RecordSink,
  ): Promise<boolean> {
    // In a transaction the broker is the fence (it refuses the transaction of a replaced
    // worker): no check of the log first.
    const [current, state] = await Promise.all([transaction ? true : this.isCurrent(partition), pending]);
    if (!current) return false;
    // The state and the handover's tombstone go in one send (one batch of the partition).
    const clears = clearHandover !== undefined && this.#partitions.has(partition) && this.#requireStore().has(partition, "handover", clearHandover);
    await this.put(partition, key, state, clears ? [{ key: `${HANDOVER_KEY_PREFIX}${clearHandover}`, value: null }] : [], transaction);
    return true;
  }

  /**
   * The transaction that wrote memory partition p (writeIfOwner with `transaction`)
   * committed: the partition's end is past its commit marker, one offset after its records.
   */
  committed(partition: number): void {
    const owned = this.#partitions.get(partition);
    if (!owned || owned.restoring) return;
    const store = this.#requireStore();
    const checkpointed = store.checkpoint(partition)?.next_offset === owned.nextOffset;
    owned.nextOffset += 1n;
    if (checkpointed) void this.#setCheckpoint(partition, owned.nextOffset);
  }

  /**
   * The transaction that wrote memory partition p was aborted: what this store took from
   * its records is not in the log. The partition is read again from the log before its next
   * turn (its cached conversations dropped, its position no longer the log's end).
   */
  forget(partition: number): void {
    const owned = this.#partitions.get(partition);
    if (!owned || owned.restoring) return;
    this.#evict(partition);
    owned.nextOffset = -1n;
    void this.#requireStore()
      .dropCheckpoint(partition)
      .catch(() => {});
  }

  /** Leaves a stopped reply for the partition's next owner (see Handover); false when no longer the owner. */
  async handOver(partition: number, handover: Handover): Promise<boolean> {
    if (!(await this.isCurrent(partition))) return false;
    await this.#send(partition, `${HANDOVER_KEY_PREFIX}${handover.request_id}`, encodeRecord(handover));
    return true;
  }

  /** Removes a request's handed-over reply (its continuation is done); false when no longer the owner. */
  async clearHandover(partition: number, requestId: string, transaction?: RecordSink): Promise<boolean> {
    if (!transaction && !(await this.isCurrent(partition))) return false;
    await this.#sendAll(partition, [{ key: `${HANDOVER_KEY_PREFIX}${requestId}`, value: null }], transaction);
    return true;
  }

  #handover(partition: number, requestId: string): Handover | undefined {
    if (!this.#partitions.has(partition)) return undefined;
    const stored = this.#requireStore().get(partition, "handover", requestId);
    if (!stored) return undefined;
    const decoded = decodeRecord(handoverSchema, stored.bytes);
    if (!decoded.ok) {
      this.#logger.error({ partition, request_id: requestId, reason: decoded.reason }, "unreadable handover record; the request runs afresh");
      void this.#storeWrite(partition, [{ kind: "handover", id: requestId, value: null, writtenAt: Date.now() }]);
      return undefined;
    }
    return decoded.value;
  }

  /** A conversation (by its key) of an owned partition as this store has it (undefined past the TTL). */
  get(partition: number, key: string): ConversationState | undefined {
    if (!this.#partitions.has(partition)) return undefined;
    const cached = this.#cache.get(cacheKey(partition, key));
    if (cached) {
      if (this.#expired(cached.writtenAt)) return undefined;
      this.#cache.delete(cacheKey(partition, key));
      this.#cache.set(cacheKey(partition, key), cached);
      return cached.state;
    }
    const stored = this.#requireStore().get(partition, "conversation", key);
    if (!stored || this.#expired(stored.writtenAt)) return undefined;
    const decoded = decodeRecord(conversationStateSchema, stored.bytes);
    if (!decoded.ok) {
      this.#logger.error({ partition, conversation_key: key, reason: decoded.reason }, "unreadable memory record; starting the conversation afresh");
      void this.#storeWrite(partition, [{ kind: "conversation", id: key, value: null, writtenAt: Date.now() }]);
      return undefined;
    }
    this.#remember(cacheKey(partition, key), decoded.value, stored.writtenAt);
    return decoded.value;
  }

  /** Writes a conversation's new state (or a tombstone, for null) under its key to memory partition p, with `also` after it in the same send. */
  async put(
    partition: number,
    key: string,
    state: ConversationState | null,
    also: ReadonlyArray<{ key: string; value: Buffer | null }> = [],
    transaction?: RecordSink,
  ): Promise<void> {
    await this.#sendAll(partition, [{ key, value: state === null ? null : encodeRecord(state) }, ...also], transaction);
    if (!this.#partitions.has(partition)) return;
    if (state === null) this.#cache.delete(cacheKey(partition, key));
    else this.#remember(cacheKey(partition, key), state, Date.now());
    this.#updateGauge();
  }

  #expired(writtenAt: number): boolean {
    return writtenAt + this.#options.conversationTtlMs < Date.now();
  }

  #remember(key: string, state: ConversationState, writtenAt: number): void {
    this.#cache.delete(key);
    this.#cache.set(key, { state, writtenAt });
    while (this.#cache.size > this.#cacheEntries) this.#cache.delete(this.#cache.keys().next().value!);
  }

  /** Drops partition p's decoded conversations from the heap (revoked, or about to be rewritten by a restore). */
  #evict(partition: number): void {
    const prefix = cacheKey(partition, "");
    for (const key of [...this.#cache.keys()]) if (key.startsWith(prefix)) this.#cache.delete(key);
  }

  #requireStore(): StateStore {
    if (!this.#store) throw new Error("the memory store is not started");
    return this.#store;
  }

  /**
   * A store write the caller does not wait for (it reads its own writes). A failure is logged
   * and drops the partition's checkpoint: the store now lacks a record, so the next restore
   * of the partition is cold.
   */
  #storeWrite(partition: number, writes: RecordWrite[]): Promise<void> {
    const store = this.#requireStore();
    return store.write(partition, writes).catch((err: unknown) => {
      this.#logger.error({ partition, err }, "state store write failed; the partition's next restore reads from the beginning");
      return store.dropCheckpoint(partition).catch(() => {});
    });
  }

  /** Writes one record to memory partition p; the store's position follows its own writes. */
  async #send(partition: number, key: string, value: Buffer | null): Promise<void> {
    await this.#sendAll(partition, [{ key, value }]);
  }

  /**
   * Writes records to memory partition p in one batch (through `transaction` when given);
   * the store's position follows to after the last.
   */
  async #sendAll(partition: number, records: ReadonlyArray<{ key: string; value: Buffer | null }>, transaction?: RecordSink): Promise<void> {
    const delivered = await (transaction ?? this.#producer).send({ topic: this.#topic, messages: records.map((r) => ({ partition, ...r })) });
    const owned = this.#partitions.get(partition);
    if (!owned) return;
    const now = Date.now();
    const store = this.#requireStore();
    void this.#storeWrite(
      partition,
      records.map((r) => recordWrite(r.key, r.value, now)),
    );
    const first = delivered[0];
    const last = delivered.at(-1);
    if (first === undefined || last === undefined || owned.restoring) return;
    const next = BigInt(last.offset) + 1n;
    owned.nextOffset = next;
    // The checkpoint follows only when nothing came between it and these records, nor among
    // them (another writer's would be missing from the store): else the next restore reads
    // from before them.
    const contiguous = delivered.every((d, i) => d.offset === first.offset + i);
    if (contiguous && store.checkpoint(partition)?.next_offset === BigInt(first.offset)) void this.#setCheckpoint(partition, next);
  }

  #setCheckpoint(partition: number, next: bigint): Promise<void> {
    return this.#requireStore()
      .setCheckpoint(partition, next)
      .catch((err: unknown) => this.#logger.error({ partition, err }, "state store checkpoint write failed"));
  }

  #restore(partition: number): Promise<void> {
    const existing = this.#partitions.get(partition);
    if (existing?.restoring) return existing.restoring.done;
    const state: PartitionState = existing ?? { nextOffset: 0n, restoring: null };
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const fenceKey = `${FENCE_PREFIX}${randomUUID()}`;
    state.restoring = {
      fenceKey,
      started: false,
      kind: "warm",
      from: 0n,
      fenceAt: 0n,
      readTo: 0n,
      pending: [],
      pendingBytes: 0,
      writing: false,
      paused: false,
      fenceOffset: null,
      records: 0,
      startedAt: performance.now(),
      done,
      resolve,
      reject,
    };
    this.#partitions.set(partition, state);
    void this.#startReading(partition, fenceKey).catch((err: Error) => {
      if (state.restoring?.fenceKey !== fenceKey) return; // revoked or failed meanwhile (its promise settled then)
      state.restoring = null;
      this.#partitions.delete(partition);
      this.#reader?.remove(partition);
      reject(err);
    });
    return done;
  }

  async #startReading(partition: number, fenceKey: string): Promise<void> {
    const reader = this.#reader;
    if (!reader) throw new Error("the memory store is not started");
    const plan = await this.#plan(partition);
    const restoring = this.#partitions.get(partition)?.restoring;
    if (restoring?.fenceKey !== fenceKey) return; // revoked meanwhile (its promise was rejected)
    this.#evict(partition);
    if (plan.kind === "cold") {
      this.#logger.info({ partition, reason: plan.reason }, "memory partition restores from the beginning");
      await this.#requireStore().clearPartition(partition);
    }
    if (plan.kind === "cold") restoring.reason = plan.reason;
    restoring.kind = plan.kind;
    restoring.from = plan.from;
    const [fence] = await this.#producer.send({ topic: this.#topic, messages: [{ partition, key: fenceKey, value: null }] });
    if (this.#partitions.get(partition)?.restoring !== restoring) return;
    if (fence === undefined) throw new Error(`the fence of memory partition ${partition} was not acknowledged`);
    restoring.fenceAt = BigInt(fence.offset);
    restoring.readTo = plan.from;
    restoring.started = true;
    reader.seek(partition, Number(plan.from));
  }

  /** Warm from the store's checkpoint, or cold (see planRestore), from the log's offsets now and chat.memory's delete.retention.ms. */
  async #plan(partition: number): Promise<RestorePlan> {
    const o = (await this.#admin.offsets(this.#topic)).find((x) => x.partition === partition);
    if (!o) throw new Error(`memory topic ${this.#topic} has no partition ${partition}`);
    return planRestore({
      checkpoint: this.#requireStore().checkpoint(partition),
      logStart: BigInt(o.low),
      logEnd: BigInt(o.high),
      // Not read from the topic (librdkafka's binding cannot): the topic is created with this
      // value (contracts/topics.ts, the topics Job); an operator who lowers it on the topic
      // must know the workers assume it.
      deleteRetentionMs: MEMORY_DELETE_RETENTION_MS,
      now: Date.now(),
    });
  }

  /** Records the reader fetched, of the partitions being restored (in offset order per partition). */
  #onRecords(records: readonly ReadRecord[]): void {
    const byPartition = new Map<number, ReadRecord[]>();
    for (const r of records) {
      const list = byPartition.get(r.partition);
      if (list) list.push(r);
      else byPartition.set(r.partition, [r]);
    }
    for (const [partition, list] of byPartition) this.#read(partition, list);
  }

  /**
   * Takes a restoring partition's records up to its fence: their store writes are queued (one
   * transaction at a time, in read order). Past the fence nothing is read: the partition is
   * taken off the reader, and the restore ends once the store holds everything before it.
   */
  #read(partition: number, records: readonly ReadRecord[]): void {
    const state = this.#partitions.get(partition);
    const restoring = state?.restoring;
    // Not ours, or already caught up (our writes are the truth), or records fetched before a pause.
    if (!restoring?.started || restoring.paused || restoring.fenceOffset !== null) return;
    for (const record of records) {
      const offset = BigInt(record.offset);
      if (offset < restoring.readTo) continue;
      restoring.readTo = offset + 1n;
      const key = record.key?.toString("utf8") ?? "";
      if (key.startsWith(FENCE_PREFIX)) {
        if (key !== restoring.fenceKey) continue;
        restoring.fenceOffset = offset;
        this.#reader?.remove(partition);
        break;
      }
      restoring.pending.push(recordWrite(key, record.value, record.timestamp));
      restoring.pendingBytes += key.length + (record.value?.length ?? 0);
      if (!key.startsWith(HANDOVER_KEY_PREFIX)) this.#cache.delete(cacheKey(partition, key));
    }
    if (restoring.fenceOffset === null && restoring.writing && restoring.pendingBytes >= MAX_PENDING_BYTES) {
      // The store is behind the reader: stop fetching until it has caught up.
      restoring.paused = true;
      this.#reader?.remove(partition);
    }
    this.#applyPending(partition, restoring);
  }

  /**
   * Writes what a restore has read and the store lacks, in one transaction, and the next
   * once it is committed; a partition paused for the store is read again meanwhile (its
   * next fetch overlaps this transaction). Ends the restore once the fence is read and
   * everything before it is in the store.
   */
  #applyPending(partition: number, restoring: Restoring): void {
    if (restoring.writing || this.#partitions.get(partition)?.restoring !== restoring) return;
    if (restoring.pending.length === 0) {
      if (restoring.fenceOffset !== null) this.#finish(partition, restoring);
      return;
    }
    const writes = restoring.pending;
    restoring.pending = [];
    restoring.pendingBytes = 0;
    restoring.writing = true;
    if (restoring.paused) {
      restoring.paused = false;
      this.#reader?.add(partition, Number(restoring.readTo));
    }
    const applied = (async () => this.#requireStore().writeBulk(partition, writes))();
    applied.then(
      () => {
        restoring.writing = false;
        restoring.records += writes.length;
        this.#applyPending(partition, restoring);
      },
      (err: unknown) => {
        restoring.writing = false;
        this.#failRestore(partition, restoring, err);
      },
    );
  }

  /** The fence is read and everything before it is in the store: the partition is current. */
  #finish(partition: number, restoring: Restoring): void {
    const state = this.#partitions.get(partition);
    if (!state || state.restoring !== restoring || restoring.fenceOffset === null) return;
    state.nextOffset = restoring.fenceOffset + 1n;
    state.restoring = null;
    void this.#setCheckpoint(partition, state.nextOffset);
    const seconds = (performance.now() - restoring.startedAt) / 1000;
    const reason = restoring.reason;
    this.#lastRestore.set(partition, { kind: restoring.kind, from: restoring.from, records: restoring.records, ...(reason !== undefined && { reason }) });
    this.#metrics.restoreSeconds.observe({ kind: restoring.kind }, seconds);
    this.#metrics.restoredRecords?.inc({ kind: restoring.kind }, restoring.records);
    this.#updateGauge();
    this.#logger.info(
      { partition, kind: restoring.kind, records: restoring.records, from: restoring.from.toString(), restore_ms: Math.round(seconds * 1000) },
      "memory partition restored",
    );
    void this.#sweep(partition);
    restoring.resolve();
  }

  /**
   * Fails a restore whose read went past its fence without meeting it: its start fell out
   * of the log between the plan and the fetch (retention deleted a segment), and the
   * consumer then jumps to the partition's end (librdkafka's auto.offset.reset). The next
   * turn of the partition restores again, from a new plan. The reader's position passes
   * the fence only where waitFor asks for it, so each running restore asks.
   */
  #checkFences(): void {
    const reader = this.#reader;
    if (!reader) return;
    for (const [partition, state] of this.#partitions) {
      const restoring = state.restoring;
      if (!restoring?.started || restoring.paused || restoring.fenceOffset !== null) continue;
      void reader.waitFor(partition, Number(restoring.fenceAt) + 1, FENCE_CHECK_MS).then((passed) => {
        if (!passed || this.#partitions.get(partition)?.restoring !== restoring || restoring.paused || restoring.fenceOffset !== null) return;
        this.#failRestore(
          partition,
          restoring,
          new Error(`the read of memory partition ${partition} passed its fence at ${restoring.fenceAt} without reading it`),
        );
      });
    }
  }

  /** A restore that cannot finish (a store write failed: disk full?, or its read skipped records): it fails, and a turn of the partition restores again. */
  #failRestore(partition: number, restoring: Restoring, err: unknown): void {
    const state = this.#partitions.get(partition);
    if (state?.restoring !== restoring) return;
    this.#logger.error({ partition, err }, "memory restore failed");
    this.#partitions.delete(partition);
    this.#reader?.remove(partition);
    this.#evict(partition);
    restoring.reject(err instanceof Error ? err : new Error(String(err)));
  }

  /** Removes partition p's conversations past the TTL from the store. */
  async #sweep(partition: number): Promise<void> {
    try {
      const removed = await this.#requireStore().sweep(partition, Date.now() - this.#options.conversationTtlMs);
      if (removed) {
        this.#evict(partition);
        this.#logger.info({ partition, removed }, "expired conversations swept from the state store");
        this.#updateGauge();
      }
    } catch (err) {
      this.#logger.warn({ partition, err }, "state store sweep failed; expired conversations stay unserved until the next");
    }
  }

  /**
   * Sweeps the owned partitions, and refreshes the checkpoint time of those whose log has not
   * moved since (their checkpoint is still the log's end, so it stays usable however long
   * the partition was idle).
   */
  async #maintain(): Promise<void> {
    const idle = [...this.#partitions].filter(([, s]) => !s.restoring).map(([p]) => p);
    for (const p of idle) await this.#sweep(p);
    try {
      const store = this.#requireStore();
      for (const p of idle) {
        const state = this.#partitions.get(p);
        if (state && !state.restoring && store.checkpoint(p)?.next_offset === state.nextOffset && (await this.isCurrent(p)))
          await this.#setCheckpoint(p, state.nextOffset);
      }
    } catch (err) {
      this.#logger.warn({ err }, "cannot refresh the state store's checkpoints");
    }
  }

  #updateGauge(): void {
    const store = this.#store;
    if (!store) return;
    let n = 0;
    for (const p of this.#partitions.keys()) n += store.count(p);
    this.#metrics.conversations.set(n);
  }
}

function cacheKey(partition: number, key: string): string {
  return `${partition}\u0000${key}`;
}

/** A memory record (by its key: a conversation or a handover) as a store write. */
function recordWrite(key: string, value: Buffer | null, writtenAt: number): RecordWrite {
  return key.startsWith(HANDOVER_KEY_PREFIX)
    ? { kind: "handover", id: key.slice(HANDOVER_KEY_PREFIX.length), value, writtenAt }
    : { kind: "conversation", id: key, value, writtenAt };
}
