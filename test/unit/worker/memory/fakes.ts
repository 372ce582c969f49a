/**
 * In-memory stand-ins for the ports of the memory store's parts (worker/memory/ports.ts):
 * a state store, a chat.memory log that a sink writes to and a reader reads, a clock, a
 * logger whose lines a test reads. Each keeps only what a part's decisions depend on.
 */
import { createLogger, type Logger } from "../../../../platform/logger.js";
import type { PartitionOffsets } from "../../../../platform/kafka/admin.js";
import type { Delivered, OutgoingRecord, RecordSink } from "../../../../platform/kafka/producer.js";
import type { Checkpoint, RecordKind, RecordWrite, StoredRecord } from "../../../../worker/state-store.js";
import type { Clock, LogOffsets, MemoryReader, MemoryState } from "../../../../worker/memory/ports.js";
import { SCHEMA_VERSION } from "../../../../contracts/records/fields.js";
import type { ConversationState, Handover } from "../../../../contracts/records/memory.js";

export const NOW = 1_800_000_000_000;

export class FakeClock implements Clock {
  at = NOW;
  mono = 0;
  now(): number {
    return this.at;
  }
  monotonic(): number {
    return this.mono;
  }
}

/** A logger at debug level whose lines (parsed) are in `lines`. */
export function recordingLogger(): { logger: Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }>; messages(): string[] } {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = createLogger("test", "debug", { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger, lines, messages: () => lines.map((l) => l.msg) };
}

/** A promise the test settles. */
export function deferred<T = void>(): { promise: Promise<T>; resolve(v: T): void; reject(e: Error): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets pending promise callbacks run. */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** The state store: records by partition, kind and id, checkpoints, and every call. */
export class FakeState implements MemoryState {
  readonly records = new Map<string, StoredRecord>();
  readonly checkpoints = new Map<number, Checkpoint>();
  readonly calls: string[] = [];
  /** Set: write/writeBulk/sweep/setCheckpoint/dropCheckpoint reject with it. */
  fail: Partial<Record<"write" | "writeBulk" | "sweep" | "setCheckpoint" | "dropCheckpoint", Error>> = {};
  /** Set: each writeBulk waits for the test to settle it (in call order). */
  holdBulk = false;
  readonly bulks: Array<{ partition: number; writes: readonly RecordWrite[]; commit(): void; fail(e: Error): void }> = [];
  swept = 0;

  checkpoint(p: number): Checkpoint | undefined {
    return this.checkpoints.get(p);
  }
  async setCheckpoint(p: number, next: bigint, now = NOW): Promise<void> {
    this.calls.push(`setCheckpoint:${p}:${next}`);
    if (this.fail.setCheckpoint) throw this.fail.setCheckpoint;
    this.checkpoints.set(p, { next_offset: next, written_at: now });
  }
  async dropCheckpoint(p: number): Promise<void> {
    this.calls.push(`dropCheckpoint:${p}`);
    this.checkpoints.delete(p);
    if (this.fail.dropCheckpoint) throw this.fail.dropCheckpoint;
  }
  async clearPartition(p: number): Promise<void> {
    this.calls.push(`clearPartition:${p}`);
    this.checkpoints.delete(p);
    for (const k of [...this.records.keys()]) if (k.startsWith(`${p}/`)) this.records.delete(k);
  }
  write(p: number, writes: readonly RecordWrite[]): Promise<void> {
    this.calls.push(`write:${p}:${writes.map((w) => `${w.kind}/${w.id}`).join(",")}`);
    if (this.fail.write) return Promise.reject(this.fail.write);
    this.#apply(p, writes);
    return Promise.resolve();
  }
  writeBulk(p: number, writes: readonly RecordWrite[]): Promise<void> {
    this.calls.push(`writeBulk:${p}:${writes.length}`);
    if (this.fail.writeBulk) return Promise.reject(this.fail.writeBulk);
    if (!this.holdBulk) {
      this.#apply(p, writes);
      return Promise.resolve();
    }
    const d = deferred();
    this.bulks.push({
      partition: p,
      writes,
      commit: () => {
        this.#apply(p, writes);
        d.resolve();
      },
      fail: (e) => d.reject(e),
    });
    return d.promise;
  }
  get(p: number, kind: RecordKind, id: string): StoredRecord | undefined {
    return this.records.get(`${p}/${kind}/${id}`);
  }
  has(p: number, kind: RecordKind, id: string): boolean {
    return this.records.has(`${p}/${kind}/${id}`);
  }
  count(p: number): number {
    return [...this.records.keys()].filter((k) => k.startsWith(`${p}/conversation/`)).length;
  }
  async sweep(p: number, cutoff: number): Promise<number> {
    this.calls.push(`sweep:${p}:${cutoff}`);
    if (this.fail.sweep) throw this.fail.sweep;
    let removed = 0;
    for (const [k, r] of [...this.records]) {
      if (k.startsWith(`${p}/conversation/`) && r.writtenAt < cutoff) {
        this.records.delete(k);
        removed++;
      }
    }
    this.swept += removed;
    return removed;
  }
  /** Puts a record straight into the store (as an earlier restore left it). */
  put(p: number, kind: RecordKind, id: string, bytes: Buffer, writtenAt = NOW): void {
    this.records.set(`${p}/${kind}/${id}`, { bytes, writtenAt });
  }
  #apply(p: number, writes: readonly RecordWrite[]): void {
    for (const w of writes) {
      if (w.value === null) this.records.delete(`${p}/${w.kind}/${w.id}`);
      else this.records.set(`${p}/${w.kind}/${w.id}`, { bytes: w.value, writtenAt: w.writtenAt });
    }
  }
}

export interface LoggedRecord {
  key: string;
  value: Buffer | null;
  timestamp: number;
  headers?: Readonly<Record<string, string | Buffer>>;
}

/** chat.memory: one log per partition (an offset is an index), written through `sink` (or `append`, another writer). */
export class FakeLog implements LogOffsets {
  readonly partitions = new Map<number, LoggedRecord[]>();
  readonly low = new Map<number, number>();
  readonly sends: Array<{ topic: string; messages: readonly OutgoingRecord[] }> = [];
  /** Set: a send rejects with it. */
  failSend: Error | undefined;
  /** Set: a send resolves with no delivery report. */
  noReports = false;
  /** Set: each send waits until the test resolves it. */
  hold: Array<() => void> | undefined;
  readonly sink: RecordSink = {
    send: async (batch) => {
      this.sends.push(batch);
      if (this.hold) await new Promise<void>((r) => this.hold!.push(r));
      if (this.failSend) throw this.failSend;
      const delivered: Delivered[] = [];
      for (const m of batch.messages) delivered.push(this.append(m.partition ?? 0, String(m.key), m.value, m.timestamp, m.headers));
      return this.noReports ? [] : delivered;
    },
  };
  constructor(partitions: number[] = [0]) {
    for (const p of partitions) this.partitions.set(p, []);
  }
  append(partition: number, key: string, value: Buffer | null, timestamp = NOW, headers?: Readonly<Record<string, string | Buffer>>): Delivered {
    const log = this.partitions.get(partition)!;
    log.push({ key, value, timestamp, ...(headers && { headers }) });
    return { partition, offset: log.length - 1 };
  }
  end(partition: number): number {
    return this.partitions.get(partition)?.length ?? 0;
  }
  async offsets(_topic: string): Promise<PartitionOffsets[]> {
    return [...this.partitions].map(([partition, log]) => ({ partition, low: this.low.get(partition) ?? 0, high: log.length }));
  }
}

/** The reader by assignment over a FakeLog: which partitions it reads from where, and `deliver` hands their records to `onRecords`. */
export class FakeReader implements MemoryReader {
  readonly reading = new Map<number, number>();
  readonly calls: string[] = [];
  /** Set: end rejects (the reader's consumer cannot say). */
  endFails: Error | undefined;
  /** What waitFor answers (whether the position passed the offset). */
  passed = false;
  constructor(readonly log: FakeLog) {}
  seek(partition: number, offset: number): void {
    this.calls.push(`seek:${partition}:${offset}`);
    this.reading.set(partition, offset);
  }
  add(partition: number, offset: number): void {
    this.calls.push(`add:${partition}:${offset}`);
    this.reading.set(partition, offset);
  }
  remove(partition: number): void {
    this.calls.push(`remove:${partition}`);
    this.reading.delete(partition);
  }
  async waitFor(_partition: number, _offset: number, _timeoutMs: number): Promise<boolean> {
    return this.passed;
  }
  async end(partition: number, _timeoutMs: number): Promise<number> {
    if (this.endFails) throw this.endFails;
    return this.log.end(partition);
  }
  /** The records of partition p from where it is read, up to `max` of them, as one fetch (the reader's position moves past them). */
  fetch(
    partition: number,
    max = Infinity,
  ): Array<{ partition: number; offset: number; key: Buffer; value: Buffer | null; timestamp: number; headers: Readonly<Record<string, string | Buffer>> }> {
    const from = this.reading.get(partition);
    if (from === undefined) return [];
    const records = this.log.partitions.get(partition)!.slice(from, from + max);
    this.reading.set(partition, from + records.length);
    return records.map((r, i) => ({ partition, offset: from + i, key: Buffer.from(r.key), value: r.value, timestamp: r.timestamp, headers: r.headers ?? {} }));
  }
}

export function conversation(id: string, note = "hello", at = NOW): ConversationState {
  return {
    v: SCHEMA_VERSION,
    type: "conversation",
    conversation_id: id,
    tenant: "t",
    messages: [{ role: "user", content: note, request_id: `r-${id}`, at }],
    applied: [],
    turns: 1,
    created_at: at,
    updated_at: at,
  };
}

export function handover(requestId: string, conversationId = "c-1"): Handover {
  return {
    v: SCHEMA_VERSION,
    type: "handover",
    request_id: requestId,
    conversation_id: conversationId,
    tenant: "t",
    attempt: "w-old.1",
    next_seq: 4,
    reply: "Once upon",
    usage: { prompt_tokens: 10, cached_prompt_tokens: 0, completion_tokens: 2 },
    time_to_first_token_ms: 3,
    generation_ms: 40,
    started_at: NOW - 100,
    worker_id: "w-old",
  };
}
