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
 * missed. A revoked partition's state is dropped.
 *
 * A single reader consumer (its own group, never committing) does the reading; it keeps
 * every partition paused except those being restored. While the worker owns p it is the
 * only writer of memory p, so between restores its own writes are the truth.
 */
import { randomUUID } from "node:crypto";
import type { Admin, Consumer, Kafka, Producer } from "kafkajs";
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

/** Conversation ids cannot contain '#', so fence keys never collide with conversations. */
const FENCE_PREFIX = "#fence:";
/** A restore that has not reached its fence for this long is driven again (seek + resume). */
const STALL_MS = 10_000;
const STALL_CHECK_MS = 2_000;

interface PartitionState {
  conversations: Map<string, Buffer | ConversationState>;
  /** Replies handed over by a previous owner, by request id. */
  handovers: Map<string, Buffer | Handover>;
  /** Where the next restore or catch-up starts reading. */
  nextOffset: bigint;
  restoring: {
    fenceKey: string;
    from: bigint;
    startedAt: number;
    lastDrivenAt: number;
    done: Promise<void>;
    resolve(): void;
    reject(e: Error): void;
  } | null;
}

export interface MemoryStoreMetrics {
  restoreSeconds: { observe(v: number): void };
  conversations: { set(v: number): void };
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
  #reader: Consumer | null = null;
  #readerPartitions: number[] = [];
  #watchdog: NodeJS.Timeout | null = null;

  constructor(options: { kafka: Kafka; admin: Admin; producer: Producer; topic: string; groupPrefix: string; logger: Logger; metrics: MemoryStoreMetrics }) {
    this.#kafka = options.kafka;
    this.#admin = options.admin;
    this.#producer = options.producer;
    this.#topic = options.topic;
    this.#groupPrefix = options.groupPrefix;
    this.#logger = options.logger.child({ component: "memory" });
    this.#metrics = options.metrics;
  }

  /** Starts the reader and waits until it has joined its group (all memory partitions). */
  async start(): Promise<void> {
    const reader = this.#kafka.consumer({
      ...SOLE_READER,
      groupId: `${this.#groupPrefix}.memory.${randomUUID()}`,
      maxBytesPerPartition: 16 * 1024 * 1024,
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
        for (const [p, state] of this.#partitions) if (state.restoring) this.#seekAndResume(p, state.restoring.from);
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
  }

  async stop(): Promise<void> {
    if (this.#watchdog) clearInterval(this.#watchdog);
    await this.#reader?.disconnect();
    this.#reader = null;
  }

  /** Sets the partitions this worker owns: drops the others, restores or catches up these. */
  assign(partitions: readonly number[]): void {
    this.#owned = new Set(partitions);
    for (const p of [...this.#partitions.keys()]) {
      if (!partitions.includes(p)) {
        this.#partitions.get(p)?.restoring?.reject(new Error(`partition ${p} was revoked during its restore`));
        this.#partitions.delete(p);
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
    const offsets = await this.#admin.fetchTopicOffsets(this.#topic);
    const end = offsets.find((o) => o.partition === partition)?.high;
    return end !== undefined && BigInt(end) === state.nextOffset;
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
   * stale state. Also returns a reply a previous owner handed over for `requestId`.
   */
  async load(partition: number, conversationId: string, requestId: string): Promise<{ state?: ConversationState; handover?: Handover }> {
    await this.ready(partition);
    await this.catchUp(partition);
    const state = this.get(partition, conversationId);
    const handover = this.#handover(partition, requestId);
    return { ...(state && { state }), ...(handover && { handover }) };
  }

  /**
   * A conversation for a reader elsewhere (a gateway), as the log has it: waits up to
   * `timeoutMs` for the partition's restore and catches up with what another worker wrote.
   * `owned: false` when partition p is not this worker's (any more); rejects when the
   * restore did not finish within the bound.
   */
  async lookup(partition: number, conversationId: string, timeoutMs = 5000): Promise<{ owned: false } | { owned: true; state?: ConversationState }> {
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
    const state = this.get(partition, conversationId);
    return state ? { owned: true, state } : { owned: true };
  }

  /**
   * Writes a conversation's new state (null: a tombstone) if this worker is still the
   * partition's only writer; returns false, writing nothing, when another worker has written
   * there since (it owns the partition now). `clearHandover` also removes that request's
   * handed-over reply, once its continuation is part of the state.
   */
  async writeIfOwner(partition: number, conversationId: string, state: ConversationState | null, clearHandover?: string): Promise<boolean> {
    if (!(await this.isCurrent(partition))) return false;
    // The state and the handover's tombstone go in one send (one batch of the partition).
    const clears = clearHandover !== undefined && this.#partitions.get(partition)?.handovers.has(clearHandover) === true;
    await this.put(partition, conversationId, state, clears ? [{ key: `${HANDOVER_KEY_PREFIX}${clearHandover}`, value: null }] : []);
    if (clears) this.#partitions.get(partition)?.handovers.delete(clearHandover);
    return true;
  }

  /** Leaves a stopped reply for the partition's next owner (see Handover); false when no longer the owner. */
  async handOver(partition: number, handover: Handover): Promise<boolean> {
    if (!(await this.isCurrent(partition))) return false;
    await this.#send(partition, `${HANDOVER_KEY_PREFIX}${handover.request_id}`, encodeRecord(handover));
    this.#partitions.get(partition)?.handovers.set(handover.request_id, handover);
    return true;
  }

  /** Removes a request's handed-over reply (its continuation is done); false when no longer the owner. */
  async clearHandover(partition: number, requestId: string): Promise<boolean> {
    if (!(await this.isCurrent(partition))) return false;
    await this.#send(partition, `${HANDOVER_KEY_PREFIX}${requestId}`, null);
    this.#partitions.get(partition)?.handovers.delete(requestId);
    return true;
  }

  #handover(partition: number, requestId: string): Handover | undefined {
    const handovers = this.#partitions.get(partition)?.handovers;
    const value = handovers?.get(requestId);
    if (value === undefined || !Buffer.isBuffer(value)) return value;
    const decoded = decodeRecord(handoverSchema, value);
    if (!decoded.ok) {
      this.#logger.error({ partition, request_id: requestId, reason: decoded.reason }, "unreadable handover record; the request runs afresh");
      handovers!.delete(requestId);
      return undefined;
    }
    handovers!.set(requestId, decoded.value);
    return decoded.value;
  }

  get(partition: number, conversationId: string): ConversationState | undefined {
    const conversations = this.#partitions.get(partition)?.conversations;
    const value = conversations?.get(conversationId);
    if (value === undefined || !Buffer.isBuffer(value)) return value;
    const decoded = decodeRecord(conversationStateSchema, value);
    if (!decoded.ok) {
      this.#logger.error({ partition, conversation_id: conversationId, reason: decoded.reason }, "unreadable memory record; starting the conversation afresh");
      conversations!.delete(conversationId);
      return undefined;
    }
    conversations!.set(conversationId, decoded.value);
    return decoded.value;
  }

  /** Writes a conversation's new state (or a tombstone, for null) to memory partition p, with `also` after it in the same send. */
  async put(
    partition: number,
    conversationId: string,
    state: ConversationState | null,
    also: ReadonlyArray<{ key: string; value: Buffer | null }> = [],
  ): Promise<void> {
    await this.#sendAll(partition, [{ key: conversationId, value: state === null ? null : encodeRecord(state) }, ...also]);
    const owned = this.#partitions.get(partition);
    if (!owned) return;
    if (state === null) owned.conversations.delete(conversationId);
    else owned.conversations.set(conversationId, state);
    this.#updateGauge();
  }

  /** Writes one record to memory partition p; the store's position follows its own writes. */
  async #send(partition: number, key: string, value: Buffer | null): Promise<void> {
    await this.#sendAll(partition, [{ key, value }]);
  }

  /** Writes records to memory partition p in one batch; the store's position follows to after the last. */
  async #sendAll(partition: number, records: ReadonlyArray<{ key: string; value: Buffer | null }>): Promise<void> {
    const [meta] = await this.#producer.send({ topic: this.#topic, acks: -1, messages: records.map((r) => ({ partition, ...r })) });
    const owned = this.#partitions.get(partition);
    if (owned && meta?.baseOffset !== undefined && !owned.restoring) owned.nextOffset = BigInt(meta.baseOffset) + BigInt(records.length);
  }

  #restore(partition: number): Promise<void> {
    const existing = this.#partitions.get(partition);
    if (existing?.restoring) return existing.restoring.done;
    const state: PartitionState = existing ?? { conversations: new Map(), handovers: new Map(), nextOffset: 0n, restoring: null };
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const fenceKey = `${FENCE_PREFIX}${randomUUID()}`;
    const startedAt = performance.now();
    state.restoring = { fenceKey, from: state.nextOffset, startedAt, lastDrivenAt: startedAt, done, resolve, reject };
    this.#partitions.set(partition, state);
    void this.#startReading(partition, fenceKey, state.nextOffset).catch((err: Error) => {
      if (state.restoring?.fenceKey === fenceKey) state.restoring = null;
      this.#partitions.delete(partition);
      reject(err);
    });
    return done;
  }

  async #startReading(partition: number, fenceKey: string, from: bigint): Promise<void> {
    if (!this.#reader) throw new Error("the memory store is not started");
    await this.#producer.send({ topic: this.#topic, acks: -1, messages: [{ partition, key: fenceKey, value: null }] });
    this.#seekAndResume(partition, from);
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
      if (!r || now - r.startedAt < STALL_MS || now - r.lastDrivenAt < STALL_MS) continue;
      r.lastDrivenAt = now;
      this.#logger.warn({ partition: p, waiting_ms: Math.round(now - r.startedAt) }, "memory restore stalled; reading again from its start");
      this.#seekAndResume(p, r.from);
    }
  }

  #applyBatch(partition: number, messages: ReadonlyArray<{ offset: string; key: Buffer | null; value: Buffer | null }>): void {
    const state = this.#partitions.get(partition);
    const restoring = state?.restoring;
    if (!state || !restoring) return; // not ours, or already caught up: our writes are the truth
    for (const message of messages) {
      const offset = BigInt(message.offset);
      if (offset < restoring.from) continue;
      const key = message.key?.toString("utf8") ?? "";
      if (key.startsWith(FENCE_PREFIX)) {
        if (key !== restoring.fenceKey) continue;
        state.nextOffset = offset + 1n;
        state.restoring = null;
        this.#reader?.pause([{ topic: this.#topic, partitions: [partition] }]);
        const seconds = (performance.now() - restoring.startedAt) / 1000;
        this.#metrics.restoreSeconds.observe(seconds);
        this.#updateGauge();
        this.#logger.info(
          { partition, conversations: state.conversations.size, from: restoring.from.toString(), restore_ms: Math.round(seconds * 1000) },
          "memory partition restored",
        );
        restoring.resolve();
        return;
      }
      const [map, id] = key.startsWith(HANDOVER_KEY_PREFIX) ? [state.handovers, key.slice(HANDOVER_KEY_PREFIX.length)] : [state.conversations, key];
      if (message.value === null) map.delete(id);
      else map.set(id, message.value);
    }
  }

  #updateGauge(): void {
    let n = 0;
    for (const p of this.#partitions.values()) n += p.conversations.size;
    this.#metrics.conversations.set(n);
  }
}
