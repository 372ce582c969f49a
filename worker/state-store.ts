/**
 * The worker's disk-backed copy of its memory partitions (LMDB: one environment per topic
 * under WORKER_STATE_DIR, `<topic>.lmdb`), so that a partition it held before is restored from where it left
 * off instead of from the beginning of chat.memory (Kafka Streams keeps a RocksDB store
 * and a checkpoint file for the same reason).
 *
 * Per partition of chat.memory it holds the conversations and handovers as the record
 * bytes (behind an 8-byte header: when the record was written, for the TTL) and a
 * checkpoint: the next offset of chat.memory whose records are NOT yet in the store. The
 * checkpoint is only ever written after the records below it (LMDB commits in order), so a
 * crash leaves a store that is behind its log, never ahead: the next restore reads the rest.
 *
 * Reads are synchronous (LMDB reads are memory-mapped); writes are asynchronous and batched
 * into one transaction per event turn. Until a write commits, reads see it through a
 * pending overlay, so the store reads its own writes.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { open, type Database, type RootDatabase } from "lmdb";
import type { Logger } from "../platform/logger.js";

/** Bumped when the layout changes: a store of another format is thrown away (cold restore). */
const FORMAT = 1;
const HEADER_BYTES = 8;

export interface Checkpoint {
  /** The next chat.memory offset not in the store. */
  next_offset: bigint;
  /** When it was written, ms since the epoch. */
  written_at: number;
}

/** A record as the store keeps it: its bytes and when it was written (ms). */
export interface StoredRecord {
  bytes: Buffer;
  writtenAt: number;
}

export type RecordKind = "conversation" | "handover";

export interface RecordWrite {
  kind: RecordKind;
  id: string;
  /** null: removed (a tombstone). */
  value: Buffer | null;
  /** When the record was written (its Kafka timestamp), ms. */
  writtenAt: number;
}

interface PartitionDbs {
  conversations: Database<Buffer, string>;
  handovers: Database<Buffer, string>;
}

export class StateStore {
  readonly #root: RootDatabase;
  readonly #meta: Database<{ next_offset: string; written_at: number }, string>;
  readonly #dbs = new Map<number, PartitionDbs>();
  readonly #checkpoints = new Map<number, Checkpoint>();
  readonly #pending = new Map<string, Buffer | null>();
  /** Where the environment lives. */
  readonly path: string;
  /** True when the configured directory could not be used and a fresh one was opened instead. */
  readonly fellBack: boolean;

  private constructor(root: RootDatabase, where: string, fellBack: boolean) {
    this.#root = root;
    this.path = where;
    this.fellBack = fellBack;
    this.#meta = root.openDB({ name: "meta", encoding: "json" });
  }

  /**
   * Opens the store for `topic` under `dir` (created if missing). A directory that cannot be
   * opened (not a directory, not writable, a corrupt or foreign environment, another format)
   * is logged and replaced: first by a fresh environment in its place, else by one under the
   * OS's temp dir. Either way every partition then restores cold. `partitions`: the most
   * memory partitions this store will hold (LMDB sizes its table of databases by it).
   */
  static open(options: { dir: string; topic: string; partitions: number; logger: Logger }): StateStore {
    const { dir, topic, logger } = options;
    const maxDbs = 2 * options.partitions + 16;
    // One environment per topic, so that stores of other topics (other prefixes, a renamed
    // topic) never share its table of databases.
    const where = path.join(dir, `${topic}.lmdb`);
    try {
      return StateStore.#openAt(where, maxDbs, false);
    } catch (err) {
      logger.warn({ err, dir }, "state store unusable; replacing it (every partition restores from the beginning of chat.memory)");
    }
    try {
      rmSync(where, { recursive: true, force: true });
      rmSync(`${where}-lock`, { force: true });
      return StateStore.#openAt(where, maxDbs, true);
    } catch (err) {
      const fallback = path.join(mkdtempSync(path.join(os.tmpdir(), "kafka-llm-state-")), `${topic}.lmdb`);
      logger.warn({ err, dir, fallback }, "cannot create a state store in WORKER_STATE_DIR; using a temporary directory");
      return StateStore.#openAt(fallback, maxDbs, true);
    }
  }

  static #openAt(where: string, maxDbs: number, fresh: boolean): StateStore {
    mkdirSync(path.dirname(where), { recursive: true });
    assertLmdbFile(where);
    const root = open({ path: where, maxDbs, encoding: "binary" });
    try {
      const format = root.get("#format") as Buffer | undefined;
      if (format === undefined) root.putSync("#format", Buffer.from(String(FORMAT)));
      else if (format.toString() !== String(FORMAT)) throw new Error(`state store format ${format.toString()}, expected ${FORMAT}`);
      const store = new StateStore(root, where, fresh);
      store.#loadCheckpoints();
      return store;
    } catch (err) {
      void root.close();
      throw err;
    }
  }

  #loadCheckpoints(): void {
    for (const { key, value } of this.#meta.getRange({})) {
      const p = Number(key);
      if (Number.isInteger(p) && typeof value?.next_offset === "string" && typeof value.written_at === "number") {
        this.#checkpoints.set(p, { next_offset: BigInt(value.next_offset), written_at: value.written_at });
      }
    }
  }

  #partition(p: number): PartitionDbs {
    let dbs = this.#dbs.get(p);
    if (!dbs) {
      dbs = {
        conversations: this.#root.openDB({ name: `${p}.conversations`, encoding: "binary" }),
        handovers: this.#root.openDB({ name: `${p}.handovers`, encoding: "binary" }),
      };
      this.#dbs.set(p, dbs);
    }
    return dbs;
  }

  checkpoint(p: number): Checkpoint | undefined {
    return this.#checkpoints.get(p);
  }

  /** Records that the store holds every record of partition p below `nextOffset` (committed after the writes before it). */
  setCheckpoint(p: number, nextOffset: bigint, now = Date.now()): Promise<void> {
    const checkpoint = { next_offset: nextOffset, written_at: now };
    this.#checkpoints.set(p, checkpoint);
    return this.#meta.put(String(p), { next_offset: nextOffset.toString(), written_at: now }).then(() => undefined);
  }

  /** Forgets partition p's checkpoint (a write to it failed): its next restore is cold. */
  dropCheckpoint(p: number): Promise<void> {
    this.#checkpoints.delete(p);
    return this.#meta.remove(String(p)).then(() => undefined);
  }

  /** Forgets partition p (its checkpoint first, so a crash midway leaves a store that restores cold). */
  async clearPartition(p: number): Promise<void> {
    this.#checkpoints.delete(p);
    for (const key of [...this.#pending.keys()]) if (key.startsWith(`${p}\u0000`)) this.#pending.delete(key);
    await this.#meta.remove(String(p));
    const dbs = this.#partition(p);
    await Promise.all([dbs.conversations.clearAsync(), dbs.handovers.clearAsync()]);
  }

  /** Applies writes to partition p in one transaction; resolves once it is committed. */
  write(p: number, writes: readonly RecordWrite[]): Promise<void> {
    const dbs = this.#partition(p);
    const done: Array<Promise<boolean>> = [];
    for (const w of writes) {
      const db = w.kind === "conversation" ? dbs.conversations : dbs.handovers;
      const key = pendingKey(p, w.kind, w.id);
      const value = w.value === null ? null : withHeader(w.value, w.writtenAt);
      this.#pending.set(key, value);
      const last = value === null ? db.remove(w.id) : db.put(w.id, value);
      done.push(last);
      // Settled either way (a failed write is the caller's to report, through the returned promise).
      const settle = () => {
        if (this.#pending.get(key) === value) this.#pending.delete(key);
      };
      void last.then(settle, settle);
    }
    return Promise.all(done).then(() => undefined);
  }

  /**
   * Applies a restore's batch of writes to partition p in one transaction, without the
   * read-your-writes overlay (nothing reads a restoring partition before its fence, which
   * waits for this commit): one promise for the batch instead of one per record.
   */
  writeBulk(p: number, writes: readonly RecordWrite[]): Promise<void> {
    const dbs = this.#partition(p);
    return this.#root.transaction(() => {
      for (const w of writes) {
        const db = w.kind === "conversation" ? dbs.conversations : dbs.handovers;
        if (w.value === null) db.removeSync(w.id);
        else db.putSync(w.id, withHeader(w.value, w.writtenAt));
      }
    });
  }

  get(p: number, kind: RecordKind, id: string): StoredRecord | undefined {
    const key = pendingKey(p, kind, id);
    const raw = this.#pending.has(key) ? this.#pending.get(key) : this.#db(p, kind).getBinary(id);
    if (!raw) return undefined;
    return { bytes: raw.subarray(HEADER_BYTES), writtenAt: raw.readDoubleBE(0) };
  }

  has(p: number, kind: RecordKind, id: string): boolean {
    const key = pendingKey(p, kind, id);
    if (this.#pending.has(key)) return this.#pending.get(key) !== null;
    return this.#db(p, kind).doesExist(id);
  }

  /** Conversations stored for partition p (including any past the TTL not yet swept). */
  count(p: number): number {
    return (this.#partition(p).conversations.getStats() as { entryCount: number }).entryCount;
  }

  /** Removes partition p's conversations written before `cutoff` (ms); resolves to how many. */
  sweep(p: number, cutoff: number): Promise<number> {
    const db = this.#partition(p).conversations;
    return db.transaction(() => {
      let removed = 0;
      for (const { key, value } of db.getRange({})) {
        if (value.length >= HEADER_BYTES && value.readDoubleBE(0) < cutoff && !this.#pending.has(pendingKey(p, "conversation", key))) {
          db.removeSync(key);
          removed++;
        }
      }
      return removed;
    });
  }

  /** Writes records committed so far and closes the environment. */
  async close(): Promise<void> {
    await this.#root.committed;
    await this.#root.close();
  }

  #db(p: number, kind: RecordKind): Database<Buffer, string> {
    const dbs = this.#partition(p);
    return kind === "conversation" ? dbs.conversations : dbs.handovers;
  }
}

function pendingKey(p: number, kind: RecordKind, id: string): string {
  return `${p}\u0000${kind === "conversation" ? "c" : "h"}\u0000${id}`;
}

function withHeader(bytes: Buffer, writtenAt: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + bytes.length);
  out.writeDoubleBE(writtenAt, 0);
  bytes.copy(out, HEADER_BYTES);
  return out;
}

/**
 * Refuses a file that is not an LMDB environment before LMDB maps it: LMDB trusts its meta
 * page, and a process that maps garbage dies of a segmentation fault rather than an error.
 * Checks the first meta page's magic and format version (lmdb-js's LMDB: 0xBEEFC0DE, 2).
 */
function assertLmdbFile(file: string): void {
  let size: number;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new Error(`${file} is not a file`);
    size = stat.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return; // a new store
    throw err;
  }
  const head = Buffer.alloc(32);
  const fd = openSync(file, "r");
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (size < 8192 || head.readUInt32LE(24) !== 0xbeefc0de || head.readUInt32LE(28) !== 2) throw new Error(`${file} is not an LMDB environment`);
}
