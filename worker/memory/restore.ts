/**
 * A memory partition's restore: reading partition p of chat.memory into the state store
 * up to a fence, the way a Kafka Streams store restores from its changelog, before any
 * request of p runs. "The end" of the log is made exact by the fence: the restore writes a
 * marker record (a tombstone under a fence key, worker/memory/keys.ts) to memory p and
 * reads until it meets that record, so everything written before it, by any earlier owner,
 * is applied. A partition kept across a rebalance is caught up the same way from where the
 * store last was, so a write by another owner in between is never missed.
 *
 * The read starts at the store's checkpoint (warm) or at the log start, the store cleared
 * first (cold), as worker/restore-plan.ts decides. The reader is given the partition from
 * there and taken back at the fence, so it reads only partitions being restored. What it
 * reads goes to the store one transaction at a time, in read order; should the store fall
 * behind by MAX_PENDING_BYTES, the partition is taken off the reader until it has caught
 * up, so RAM holds a bounded part of the partition. The restore ends once the fence is read
 * and everything before it is in the store; it fails (and a turn of the partition restores
 * again, from a new plan) when a store write fails, when its read passes the fence without
 * reading it (the start fell out of the log meanwhile), or when the partition is revoked.
 */
import { randomUUID } from "node:crypto";
import { landedAsExpected } from "../../contracts/records/memory.js";
import { MEMORY_DELETE_RETENTION_MS } from "../../contracts/topics.js";
import type { ReadRecord } from "../../platform/kafka/assigned-reader.js";
import type { RecordSink } from "../../platform/kafka/producer.js";
import type { Logger } from "../../platform/logger.js";
import { planRestore, type RestorePlan } from "../restore-plan.js";
import type { RecordWrite } from "../state-store.js";
import type { ConversationCache } from "./cache.js";
import { FENCE_PREFIX, isFence, isHandover, recordWrite } from "./keys.js";
import type { Ownership } from "./ownership.js";
import type { Clock, LogOffsets, MemoryReader, MemoryState } from "./ports.js";
import type { Checkpoints } from "./upkeep.js";

/** Bytes a restore may hold read and not yet in the store before its partition is taken off the reader. */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** How long a check of a restore's read waits for the reader to pass the fence (ms). */
export const FENCE_CHECK_MS = 2_000;

export type RestoreKind = "cold" | "warm";

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

export interface RestoreMetrics {
  restoreSeconds: { observe(labels: { kind: RestoreKind }, v: number): void };
  restoredRecords?: { inc(labels: { kind: RestoreKind }, v: number): void };
}

export interface RestoresOptions {
  topic: string;
  /** The log's offsets now, for the plan. */
  admin: LogOffsets;
  /** Where the fence is written. */
  producer: RecordSink;
  reader: Pick<MemoryReader, "seek" | "add" | "remove" | "waitFor">;
  store: Pick<MemoryState, "checkpoint" | "clearPartition" | "writeBulk">;
  positions: Pick<Ownership, "beginRestore" | "restored" | "release">;
  checkpoints: Pick<Checkpoints, "set">;
  cache: Pick<ConversationCache, "evict" | "delete">;
  metrics: RestoreMetrics;
  clock: Clock;
  logger: Logger;
  /** Partition p's restore ended: the store holds p to its fence (the gauge and the TTL sweep follow). */
  /**
   * The restore ended; `skipped`: keys of records it read that did not land where their
   * writer expected (a replaced worker's), which it left out of the store.
   */
  onRestored(partition: number, skipped: ReadonlySet<string>): void;
  /** Tests shrink it; default MAX_PENDING_BYTES. */
  maxPendingBytes?: number;
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
  /** Keys of records read that did not land where their writer expected (skipped; see landedAsExpected). */
  skipped: Set<string>;
  /** Why it is cold, if it is. */
  reason?: string;
  startedAt: number;
  done: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

export class Restores {
  readonly #options: RestoresOptions;
  readonly #maxPendingBytes: number;
  /** The restores running, by partition. */
  readonly #running = new Map<number, Restoring>();
  readonly #last = new Map<number, RestoreStats>();

  constructor(options: RestoresOptions) {
    this.#options = options;
    this.#maxPendingBytes = options.maxPendingBytes ?? MAX_PENDING_BYTES;
  }

  /** What the last finished restore of partition p did, if one did. */
  last(partition: number): RestoreStats | undefined {
    return this.#last.get(partition);
  }

  /** The restore of p running now (settles when it ends), if one is. */
  pending(partition: number): Promise<void> | undefined {
    return this.#running.get(partition)?.done;
  }

  /** Restores partition p (or catches it up), unless a restore of it is running already: resolves once p is read to its fence. */
  restore(partition: number): Promise<void> {
    const running = this.#running.get(partition);
    if (running) return running.done;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const restoring: Restoring = {
      fenceKey: `${FENCE_PREFIX}${randomUUID()}`,
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
      skipped: new Set(),
      startedAt: this.#options.clock.monotonic(),
      done,
      resolve,
      reject,
    };
    this.#options.positions.beginRestore(partition);
    this.#running.set(partition, restoring);
    void this.#startReading(partition, restoring).catch((err: Error) => {
      if (this.#running.get(partition) !== restoring) return; // revoked or failed meanwhile (its promise settled then)
      this.#running.delete(partition);
      this.#options.positions.release(partition);
      this.#options.reader.remove(partition);
      reject(err);
    });
    return done;
  }

  /** Partition p was revoked: a restore of it fails, and the reader no longer reads it. */
  revoke(partition: number): void {
    this.#running.get(partition)?.reject(new Error(`partition ${partition} was revoked during its restore`));
    this.#running.delete(partition);
    this.#options.reader.remove(partition);
  }

  /** Plans the restore, clears a cold store, writes the fence, and gives the reader the partition from the plan's start. */
  async #startReading(partition: number, restoring: Restoring): Promise<void> {
    const { store, producer, reader, cache, topic, logger } = this.#options;
    const plan = await this.#plan(partition);
    if (this.#running.get(partition) !== restoring) return; // revoked meanwhile (its promise was rejected)
    cache.evict(partition);
    if (plan.kind === "cold") {
      logger.info({ partition, reason: plan.reason }, "memory partition restores from the beginning");
      await store.clearPartition(partition);
      restoring.reason = plan.reason;
    }
    restoring.kind = plan.kind;
    restoring.from = plan.from;
    const [fence] = await producer.send({ topic, messages: [{ partition, key: restoring.fenceKey, value: null }] });
    if (this.#running.get(partition) !== restoring) return;
    if (fence === undefined) throw new Error(`the fence of memory partition ${partition} was not acknowledged`);
    restoring.fenceAt = BigInt(fence.offset);
    restoring.readTo = plan.from;
    restoring.started = true;
    reader.seek(partition, Number(plan.from));
  }

  /** Warm from the store's checkpoint, or cold (see planRestore), from the log's offsets now and chat.memory's delete.retention.ms. */
  async #plan(partition: number): Promise<RestorePlan> {
    const { admin, store, topic, clock } = this.#options;
    const o = (await admin.offsets(topic)).find((x) => x.partition === partition);
    if (!o) throw new Error(`memory topic ${topic} has no partition ${partition}`);
    return planRestore({
      checkpoint: store.checkpoint(partition),
      logStart: BigInt(o.low),
      logEnd: BigInt(o.high),
      // Not read from the topic (librdkafka's binding cannot): the topic is created with this
      // value (contracts/topics.ts, the topics Job); an operator who lowers it on the topic
      // must know the workers assume it.
      deleteRetentionMs: MEMORY_DELETE_RETENTION_MS,
      now: clock.now(),
    });
  }

  /** Records the reader fetched, of the partitions being restored (in offset order per partition). */
  onRecords(records: readonly ReadRecord[]): void {
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
    const { reader, cache } = this.#options;
    const restoring = this.#running.get(partition);
    // Not being restored, or not reading yet, or records fetched before a pause, or the fence already read.
    if (!restoring?.started || restoring.paused || restoring.fenceOffset !== null) return;
    for (const record of records) {
      const offset = BigInt(record.offset);
      if (offset < restoring.readTo) continue;
      restoring.readTo = offset + 1n;
      const key = record.key?.toString("utf8") ?? "";
      if (!landedAsExpected(record)) {
        restoring.skipped.add(key);
        continue;
      }
      if (isFence(key)) {
        if (key !== restoring.fenceKey) continue;
        restoring.fenceOffset = offset;
        reader.remove(partition);
        break;
      }
      restoring.pending.push(recordWrite(key, record.value, record.timestamp));
      restoring.pendingBytes += key.length + (record.value?.length ?? 0);
      if (!isHandover(key)) cache.delete(partition, key);
    }
    if (restoring.fenceOffset === null && restoring.writing && restoring.pendingBytes >= this.#maxPendingBytes) {
      // The store is behind the reader: stop fetching until it has caught up.
      restoring.paused = true;
      reader.remove(partition);
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
    if (restoring.writing || this.#running.get(partition) !== restoring) return;
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
      this.#options.reader.add(partition, Number(restoring.readTo));
    }
    const applied = (async () => this.#options.store.writeBulk(partition, writes))();
    applied.then(
      () => {
        restoring.writing = false;
        restoring.records += writes.length;
        this.#applyPending(partition, restoring);
      },
      (err: unknown) => {
        restoring.writing = false;
        this.#fail(partition, restoring, err);
      },
    );
  }

  /** The fence is read and everything before it is in the store: the partition is current. */
  #finish(partition: number, restoring: Restoring): void {
    const { positions, checkpoints, metrics, clock, logger } = this.#options;
    if (this.#running.get(partition) !== restoring || restoring.fenceOffset === null) return;
    const next = restoring.fenceOffset + 1n;
    this.#running.delete(partition);
    positions.restored(partition, next);
    void checkpoints.set(partition, next);
    const seconds = (clock.monotonic() - restoring.startedAt) / 1000;
    const reason = restoring.reason;
    this.#last.set(partition, { kind: restoring.kind, from: restoring.from, records: restoring.records, ...(reason !== undefined && { reason }) });
    metrics.restoreSeconds.observe({ kind: restoring.kind }, seconds);
    metrics.restoredRecords?.inc({ kind: restoring.kind }, restoring.records);
    logger.info(
      { partition, kind: restoring.kind, records: restoring.records, from: restoring.from.toString(), restore_ms: Math.round(seconds * 1000) },
      "memory partition restored",
    );
    this.#options.onRestored(partition, restoring.skipped);
    restoring.resolve();
  }

  /**
   * Fails a restore whose read went past its fence without meeting it: its start fell out
   * of the log between the plan and the fetch (retention deleted a segment), and the
   * consumer then jumps to the partition's end (librdkafka's auto.offset.reset). The next
   * turn of the partition restores again, from a new plan. The reader's position passes
   * the fence only where waitFor asks for it, so each running restore asks (for up to
   * FENCE_CHECK_MS); the store calls this every FENCE_CHECK_MS.
   */
  checkFences(): void {
    for (const [partition, restoring] of this.#running) {
      if (!restoring.started || restoring.paused || restoring.fenceOffset !== null) continue;
      void this.#options.reader.waitFor(partition, Number(restoring.fenceAt) + 1, FENCE_CHECK_MS).then((passed) => {
        if (!passed || this.#running.get(partition) !== restoring || restoring.paused || restoring.fenceOffset !== null) return;
        this.#fail(partition, restoring, new Error(`the read of memory partition ${partition} passed its fence at ${restoring.fenceAt} without reading it`));
      });
    }
  }

  /** A restore that cannot finish (a store write failed: disk full?, or its read skipped records): it fails, and a turn of the partition restores again. */
  #fail(partition: number, restoring: Restoring, err: unknown): void {
    const { positions, reader, cache, logger } = this.#options;
    if (this.#running.get(partition) !== restoring) return;
    logger.error({ partition, err }, "memory restore failed");
    this.#running.delete(partition);
    positions.release(partition);
    reader.remove(partition);
    cache.evict(partition);
    restoring.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
