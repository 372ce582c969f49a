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
 * A single reader consumer (its own group, never committing) does the reading; it keeps
 * every partition paused except those being restored. While the worker owns p it is the
 * only writer of memory p, so between restores its own writes are the truth.
 */
import { randomUUID } from "node:crypto";
import kafkajs, { type Admin, type Consumer, type Kafka, type Producer } from "kafkajs";
import {
  HANDOVER_KEY_PREFIX,
  conversationStateSchema,
  decodeRecord,
  encodeRecord,
  handoverSchema,
  type ConversationState,
  type Handover,
} from "../contracts/records.js";
import { SOLE_READER, handleConsumerCrash } from "../platform/kafka.js";
import type { Logger } from "../platform/logger.js";
import { startOffsetReader, type OffsetReader } from "../platform/offset-reader.js";
import type { KafkaConfig } from "../contracts/config.js";
import { DEFAULT_DELETE_RETENTION_MS, planRestore, type RestorePlan } from "./restore-plan.js";
import { StateStore, type RecordWrite } from "./state-store.js";
import { conversationKey } from "../contracts/conversation-key.js";

const { ConfigResourceTypes } = kafkajs;

/** Conversation ids cannot contain '#', so fence keys never collide with conversations. */
const FENCE_PREFIX = "#fence:";
/** A restore that has not reached its fence for this long is driven again (seek + resume). */
const STALL_MS = 10_000;
const STALL_CHECK_MS = 2_000;
/** Decoded conversations kept in the JS heap (the rest stay on disk until a turn needs them). */
const DEFAULT_CACHE_ENTRIES = 1000;
/** How often expired conversations are swept and idle partitions' checkpoints refreshed. */
const DEFAULT_MAINTENANCE_MS = 10 * 60_000;

export type RestoreKind = "cold" | "warm";

interface PartitionState {
  /** The end of the log as this store last saw it (isCurrent compares against it). */
  nextOffset: bigint;
  restoring: {
    fenceKey: string;
    /** False until the plan is made (and a cold store cleared): until then nothing is read. */
    started: boolean;
    kind: RestoreKind;
    from: bigint;
    /** Records applied to the store by this restore. */
    records: number;
    /** Why it is cold, if it is. */
    reason?: string;
    /** The store transaction of the last batch applied (awaited before the next one returns). */
    writing: Promise<void>;
    startedAt: number;
    lastDrivenAt: number;
    done: Promise<void>;
    resolve(): void;
    reject(e: Error): void;
  } | null;
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
  kafka: Kafka;
  admin: Admin;
  producer: Producer;
  /**
   * The connection settings of `kafka`, for the librdkafka offset reader the store asks the
   * ends of the topic's partitions: the ownership check before every load and write of a
   * turn, one ListOffsets request each (kafkajs's admin takes three round trips).
   */
  kafkaConfig: KafkaConfig;
  topic: string;
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
  readonly #kafka: Kafka;
  readonly #admin: Admin;
  readonly #producer: Producer;
  readonly #topic: string;
  readonly #groupPrefix: string;
  readonly #logger: Logger;
  readonly #metrics: MemoryStoreMetrics;
  readonly #options: MemoryStoreOptions;
  readonly #cacheEntries: number;
  /** Decoded conversations, least recently used first (Map order). */
  readonly #cache = new Map<string, { state: ConversationState; writtenAt: number }>();
  readonly #lastRestore = new Map<number, RestoreStats>();
  #store: StateStore | null = null;
  #reader: Consumer | null = null;
  #ends: OffsetReader | null = null;
  #endsWarnedAt = 0;
  #readerPartitions: number[] = [];
  #watchdog: NodeJS.Timeout | null = null;
  #maintenance: NodeJS.Timeout | null = null;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    this.#kafka = options.kafka;
    this.#admin = options.admin;
    this.#producer = options.producer;
    this.#topic = options.topic;
    this.#groupPrefix = options.groupPrefix;
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

  /** Opens the state store, starts the reader and waits until it has joined its group (all memory partitions). */
  async start(): Promise<void> {
    const store = StateStore.open({ dir: this.#options.stateDir, topic: this.#topic, partitions: this.#options.partitions, logger: this.#logger });
    this.#store = store;
    this.#logger.info({ path: store.path, replaced: store.fellBack }, "state store opened");
    this.#ends = await startOffsetReader({
      kafka: this.#options.kafkaConfig,
      topic: this.#topic,
      size: 1,
      groupId: `${this.#groupPrefix}.offsets`,
      logger: this.#logger,
    });
    const reader = this.#kafka.consumer({
      ...SOLE_READER,
      groupId: `${this.#groupPrefix}.memory.${randomUUID()}`,
      maxBytesPerPartition: 16 * 1024 * 1024,
      // With every partition paused (no restore running) kafkajs sleeps this long between
      // looks, so it is also how long a restore waits for its first fetch: keep it short,
      // or a warm restore of a few records costs about 100 ms of waiting (the bench's).
      maxWaitTimeInMs: 10,
    });
    this.#reader = reader;
    const joined = new Promise<void>((resolve) => {
      reader.on(reader.events.GROUP_JOIN, ({ payload }) => {
        this.#readerPartitions = payload.memberAssignment[this.#topic] ?? [];
        // Idle partitions stay paused; restores resume the one they read. A re-join (after
        // the reader lost the broker) forgets seeks and pauses, so running restores are
        // driven again from where they started; their fences are still ahead of them.
        const idle = this.#readerPartitions.filter((p) => !this.#partitions.get(p)?.restoring);
        if (idle.length) reader.pause([{ topic: this.#topic, partitions: idle }]);
        for (const [p, state] of this.#partitions) if (state.restoring?.started) this.#seekAndResume(p, state.restoring.from);
        resolve();
      });
    });
    const run = async () => {
      await reader.connect();
      await reader.subscribe({ topic: this.#topic, fromBeginning: true });
      await reader.run({
        autoCommit: false,
        // Offsets must be resolved (nothing is committed): an unresolved batch is fetched
        // again, so a partition larger than one fetch response never reached its fence.
        eachBatchAutoResolve: true,
        eachBatch: async ({ batch }) => this.#applyBatch(batch.partition, batch.messages),
      });
    };
    // A reader that stopped restores nothing: run it again (its join re-drives running restores).
    handleConsumerCrash(reader, { name: "memory reader", logger: this.#logger, restart: run });
    await run();
    await joined;
    this.#watchdog = setInterval(() => this.#redriveStalled(), STALL_CHECK_MS);
    this.#watchdog.unref();
    this.#maintenance = setInterval(() => void this.#maintain(), this.#options.maintenanceIntervalMs ?? DEFAULT_MAINTENANCE_MS);
    this.#maintenance.unref();
  }

  async stop(): Promise<void> {
    if (this.#watchdog) clearInterval(this.#watchdog);
    if (this.#maintenance) clearInterval(this.#maintenance);
    await this.#reader?.disconnect();
    this.#reader = null;
    await this.#ends?.stop();
    this.#ends = null;
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
   * Memory partition p's end: one ListOffsets through librdkafka; should it fail, through
   * kafkajs's admin (three round trips, but it refreshes its metadata by itself), so a
   * librdkafka cache left stale by a broker's restart costs time, never availability.
   */
  async #logEnd(partition: number): Promise<number> {
    if (!this.#ends) throw new Error("the memory store is not started");
    try {
      return await this.#ends.end(partition);
    } catch (err) {
      if (Date.now() - this.#endsWarnedAt > 60_000) {
        this.#endsWarnedAt = Date.now();
        this.#logger.warn({ partition, err }, "memory partition end not known to librdkafka; asking kafkajs's admin");
      }
      const end = (await this.#admin.fetchTopicOffsets(this.#topic)).find((o) => o.partition === partition)?.high;
      if (end === undefined) throw new Error(`memory topic ${this.#topic} has no partition ${partition}`, { cause: err });
      return Number(end);
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
  async writeIfOwner(partition: number, key: string, pending: ConversationState | null | Promise<ConversationState>, clearHandover?: string): Promise<boolean> {
    const [current, state] = await Promise.all([this.isCurrent(partition), pending]);
    if (!current) return false;
    // The state and the handover's tombstone go in one send (one batch of the partition).
    const clears = clearHandover !== undefined && this.#partitions.has(partition) && this.#requireStore().has(partition, "handover", clearHandover);
    await this.put(partition, key, state, clears ? [{ key: `${HANDOVER_KEY_PREFIX}${clearHandover}`, value: null }] : []);
    return true;
  }

  /** Leaves a stopped reply for the partition's next owner (see Handover); false when no longer the owner. */
  async handOver(partition: number, handover: Handover): Promise<boolean> {
    if (!(await this.isCurrent(partition))) return false;
    await this.#send(partition, `${HANDOVER_KEY_PREFIX}${handover.request_id}`, encodeRecord(handover));
    return true;
  }

  /** Removes a request's handed-over reply (its continuation is done); false when no longer the owner. */
  async clearHandover(partition: number, requestId: string): Promise<boolean> {
    if (!(await this.isCurrent(partition))) return false;
    await this.#send(partition, `${HANDOVER_KEY_PREFIX}${requestId}`, null);
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
  async put(partition: number, key: string, state: ConversationState | null, also: ReadonlyArray<{ key: string; value: Buffer | null }> = []): Promise<void> {
    await this.#sendAll(partition, [{ key, value: state === null ? null : encodeRecord(state) }, ...also]);
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

  /** Writes records to memory partition p in one batch; the store's position follows to after the last. */
  async #sendAll(partition: number, records: ReadonlyArray<{ key: string; value: Buffer | null }>): Promise<void> {
    const [meta] = await this.#producer.send({ topic: this.#topic, acks: -1, messages: records.map((r) => ({ partition, ...r })) });
    const owned = this.#partitions.get(partition);
    if (!owned) return;
    const now = Date.now();
    const store = this.#requireStore();
    void this.#storeWrite(
      partition,
      records.map((r) => recordWrite(r.key, r.value, now)),
    );
    if (meta?.baseOffset === undefined || owned.restoring) return;
    const base = BigInt(meta.baseOffset);
    const next = base + BigInt(records.length);
    owned.nextOffset = next;
    // The checkpoint follows only when nothing came between it and these records (another
    // writer's would be missing from the store): else the next restore reads from before them.
    if (store.checkpoint(partition)?.next_offset === base) void this.#setCheckpoint(partition, next);
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
    const startedAt = performance.now();
    state.restoring = {
      fenceKey,
      started: false,
      kind: "warm",
      from: 0n,
      records: 0,
      writing: Promise.resolve(),
      startedAt,
      lastDrivenAt: startedAt,
      done,
      resolve,
      reject,
    };
    this.#partitions.set(partition, state);
    void this.#startReading(partition, fenceKey).catch((err: Error) => {
      if (state.restoring?.fenceKey === fenceKey) state.restoring = null;
      this.#partitions.delete(partition);
      reject(err);
    });
    return done;
  }

  async #startReading(partition: number, fenceKey: string): Promise<void> {
    if (!this.#reader) throw new Error("the memory store is not started");
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
    await this.#producer.send({ topic: this.#topic, acks: -1, messages: [{ partition, key: fenceKey, value: null }] });
    if (this.#partitions.get(partition)?.restoring !== restoring) return;
    restoring.started = true;
    this.#seekAndResume(partition, plan.from);
  }

  /** Warm from the store's checkpoint, or cold (see planRestore), from the log's offsets and delete.retention.ms now. */
  async #plan(partition: number): Promise<RestorePlan> {
    const offsets = await this.#admin.fetchTopicOffsets(this.#topic);
    const o = offsets.find((x) => x.partition === partition);
    if (!o) throw new Error(`memory topic ${this.#topic} has no partition ${partition}`);
    return planRestore({
      checkpoint: this.#requireStore().checkpoint(partition),
      logStart: BigInt(o.low),
      logEnd: BigInt(o.high),
      deleteRetentionMs: await this.#deleteRetentionMs(),
      now: Date.now(),
    });
  }

  async #deleteRetentionMs(): Promise<number> {
    try {
      const described = await this.#admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: this.#topic, configNames: ["delete.retention.ms"] }],
      });
      const value = Number(described.resources[0]?.configEntries.find((c) => c.configName === "delete.retention.ms")?.configValue);
      return Number.isFinite(value) && value > 0 ? value : DEFAULT_DELETE_RETENTION_MS;
    } catch (err) {
      this.#logger.warn({ err }, "cannot read delete.retention.ms of the memory topic; assuming Kafka's default (1 day)");
      return DEFAULT_DELETE_RETENTION_MS;
    }
  }

  #seekAndResume(partition: number, from: bigint): void {
    const reader = this.#reader;
    if (!reader) return;
    try {
      reader.seek({ topic: this.#topic, partition, offset: from.toString() });
      reader.resume([{ topic: this.#topic, partitions: [partition] }]);
    } catch (err) {
      // The reader is between sessions; its next join drives this restore again.
      this.#logger.warn({ partition, err }, "memory reader not ready; the restore resumes when it rejoins");
    }
  }

  /** Drives again any restore stuck past STALL_MS (its seek lost to a reader restart). */
  #redriveStalled(): void {
    const now = performance.now();
    for (const [p, state] of this.#partitions) {
      const r = state.restoring;
      if (!r || !r.started || now - r.startedAt < STALL_MS || now - r.lastDrivenAt < STALL_MS) continue;
      r.lastDrivenAt = now;
      this.#logger.warn({ partition: p, waiting_ms: Math.round(now - r.startedAt) }, "memory restore stalled; reading again from its start");
      this.#seekAndResume(p, r.from);
    }
  }

  /**
   * Applies a fetched batch of a restoring partition to the store, in one transaction that
   * is committed before the next batch is taken (so RAM holds one fetch, not the partition).
   */
  async #applyBatch(
    partition: number,
    messages: ReadonlyArray<{ offset: string; timestamp: string; key: Buffer | null; value: Buffer | null }>,
  ): Promise<void> {
    const state = this.#partitions.get(partition);
    const restoring = state?.restoring;
    if (!state || !restoring?.started) return; // not ours, or already caught up: our writes are the truth
    const writes: RecordWrite[] = [];
    let fenceOffset: bigint | null = null;
    for (const message of messages) {
      const offset = BigInt(message.offset);
      if (offset < restoring.from) continue;
      const key = message.key?.toString("utf8") ?? "";
      if (key.startsWith(FENCE_PREFIX)) {
        if (key !== restoring.fenceKey) continue;
        fenceOffset = offset;
        break;
      }
      writes.push(recordWrite(key, message.value, Number(message.timestamp)));
      if (!key.startsWith(HANDOVER_KEY_PREFIX)) this.#cache.delete(cacheKey(partition, key));
    }
    // One batch's transaction commits while the next is fetched; RAM holds at most two.
    const previous = restoring.writing;
    const written = writes.length
      ? this.#requireStore()
          .writeBulk(partition, writes)
          .catch((err: unknown) => this.#failRestore(partition, restoring, err))
      : Promise.resolve();
    restoring.writing = written;
    restoring.records += writes.length;
    await previous;
    if (fenceOffset !== null) await written;
    if (state.restoring !== restoring) return; // revoked meanwhile: what was written stays above the checkpoint
    if (fenceOffset === null) return;
    state.nextOffset = fenceOffset + 1n;
    state.restoring = null;
    this.#reader?.pause([{ topic: this.#topic, partitions: [partition] }]);
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

  /** A restore whose store write failed (disk full?): it fails (a turn of the partition restores again). */
  #failRestore(partition: number, restoring: NonNullable<PartitionState["restoring"]>, err: unknown): void {
    const state = this.#partitions.get(partition);
    if (state?.restoring !== restoring) return;
    this.#logger.error({ partition, err }, "state store write failed during a restore");
    this.#partitions.delete(partition);
    this.#evict(partition);
    this.#reader?.pause([{ topic: this.#topic, partitions: [partition] }]);
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
