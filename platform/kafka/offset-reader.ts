/**
 * Reads records at exact offsets of one topic: what a history read does, hop by hop, along
 * the links its records carry, and what a worker's replay does to find a request's terminal
 * event on chat.events (one record, or a bounded scan forward from a lower bound).
 * librdkafka's consumer (no group: assign at an offset, consume). Fetch sizes are small so
 * one hop does not pull megabytes of the partition's other conversations, and reads are
 * read_committed, so nothing of an aborted write is ever seen.
 *
 * A pool: each read takes one consumer for all its hops (a consumer serves one position
 * at a time), so concurrent reads do not move each other's position; consumers are opened
 * as concurrent reads need them, up to the pool's size.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { KafkaLlmError } from "../../contracts/errors.js";
import type { Logger } from "../logger.js";
import { librdkafkaConnection } from "./connection.js";
import { call, ErrorCode, rdkafka, type NativeConsumer, type NativeMessage } from "./native.js";

export interface FetchedRecord {
  readonly offset: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

/** One consumer of the pool, held by one read. */
export interface OffsetFetcher {
  /**
   * The record at exactly `offset` of the partition; null when it is not there (aged out,
   * or past the end). Throws kafka_unavailable when Kafka does not answer.
   */
  fetch(partition: number, offset: number): Promise<FetchedRecord | null>;
  /**
   * Reads the partition forward from `from` up to (not including) `end`, calling `visit` on
   * each record until it returns true; returns that record, or null when none did before
   * `end`. `from` below the log start starts at the log start. Throws kafka_unavailable when
   * the partition stops answering before `end`.
   */
  scan(partition: number, from: number, end: number, visit: (record: FetchedRecord) => boolean): Promise<FetchedRecord | null>;
  /** The partition's log start (`low`, the oldest offset still kept) and end (`high`, the next offset written). */
  watermarks(partition: number): Promise<{ low: number; high: number }>;
}

export interface OffsetReader {
  /** Runs `read` with a consumer of the pool to itself. */
  withFetcher<T>(read: (fetcher: OffsetFetcher) => Promise<T>): Promise<T>;
  /**
   * The partition's end (the offset the next record written there gets, as the leader has
   * it now): one ListOffsets request ("latest"), with librdkafka's cached metadata. Needs no
   * consumer to itself (it moves no position). Throws kafka_unavailable when Kafka does not
   * answer.
   */
  end(partition: number): Promise<number>;
  stop(): Promise<void>;
}

/** The ListOffsets timestamp that asks for the end of the log. */
const LATEST = -1;
/** How long one hop waits for its record before taking it as absent. */
const FETCH_TIMEOUT_MS = 3000;
/** Bytes fetched per hop: enough for one batch holding a history record (a turn is a few KB). */
const FETCH_BYTES = 64 * 1024;
/** Records one consume of a scan asks for. */
const SCAN_BATCH = 100;

class Fetcher implements OffsetFetcher {
  readonly #consumer: NativeConsumer;
  readonly #topic: string;

  constructor(consumer: NativeConsumer, topic: string) {
    this.#consumer = consumer;
    this.#topic = topic;
  }

  async fetch(partition: number, offset: number): Promise<FetchedRecord | null> {
    this.#consumer.assign([{ topic: this.#topic, partition, offset }]);
    const deadline = Date.now() + FETCH_TIMEOUT_MS;
    try {
      // A consume may come back empty before the fetch has answered: ask again until the deadline.
      while (Date.now() < deadline) {
        const messages = await new Promise<NativeMessage[] | null>((resolve, reject) =>
          this.#consumer.consume(1, (err, m) => {
            // An offset outside the partition (aged out, or not written): auto.offset.reset=error says so.
            if (err && err.code === ErrorCode.AUTO_OFFSET_RESET) resolve(null);
            else if (err) reject(unavailable(this.#topic, err));
            else resolve(m);
          }),
        );
        if (messages === null) return null;
        const m = messages[0];
        if (!m) continue;
        // An offset that no longer exists (retention) or holds a control record lands on a later one.
        if (m.partition !== partition || m.offset !== offset) return null;
        return { offset: m.offset, key: m.key ?? null, value: m.value };
      }
      // Not "absent": a record that exists may simply not have come (a broker away). Saying
      // so keeps a read from passing a slow fetch off as the end of the history.
      throw new KafkaLlmError("kafka_unavailable", `${this.#topic} did not answer within ${FETCH_TIMEOUT_MS / 1000} s; try again shortly`);
    } finally {
      this.#consumer.unassign();
    }
  }

  async scan(partition: number, from: number, end: number, visit: (record: FetchedRecord) => boolean): Promise<FetchedRecord | null> {
    const { low } = await this.watermarks(partition);
    const start = Math.max(from, low);
    if (start >= end) return null;
    this.#consumer.assign([{ topic: this.#topic, partition, offset: start }]);
    // The deadline is for progress: a scan of many records takes as long as it takes.
    let deadline = Date.now() + FETCH_TIMEOUT_MS;
    try {
      while (Date.now() < deadline) {
        const messages = await new Promise<NativeMessage[] | null>((resolve, reject) =>
          this.#consumer.consume(SCAN_BATCH, (err, m) => {
            // The start aged out between the watermarks and the fetch: nothing left to find there.
            if (err && err.code === ErrorCode.AUTO_OFFSET_RESET) resolve(null);
            else if (err) reject(unavailable(this.#topic, err));
            else resolve(m);
          }),
        );
        if (messages === null) return null;
        for (const m of messages) {
          if (m.partition !== partition || m.offset >= end) return null;
          const record = { offset: m.offset, key: m.key ?? null, value: m.value };
          if (visit(record)) return record;
        }
        if (messages.length > 0) deadline = Date.now() + FETCH_TIMEOUT_MS;
        // Offsets a fetch skips (compacted away, control records) still move the position on.
        const position = this.#consumer.position([{ topic: this.#topic, partition }])[0]?.offset;
        if (position !== undefined && position >= end) return null;
      }
      throw new KafkaLlmError("kafka_unavailable", `${this.#topic} did not answer within ${FETCH_TIMEOUT_MS / 1000} s; try again shortly`);
    } finally {
      this.#consumer.unassign();
    }
  }

  watermarks(partition: number): Promise<{ low: number; high: number }> {
    return new Promise((resolve, reject) =>
      this.#consumer.queryWatermarkOffsets(this.#topic, partition, FETCH_TIMEOUT_MS, (err, offsets) =>
        err ? reject(unavailable(this.#topic, err)) : resolve({ low: Number(offsets.lowOffset), high: Number(offsets.highOffset) }),
      ),
    );
  }
}

function unavailable(topic: string, cause: unknown): KafkaLlmError {
  return new KafkaLlmError("kafka_unavailable", `${topic} cannot be read just now; try again shortly`, { cause });
}

/**
 * Starts the pool: one consumer at once (so a missing binding or an unreachable cluster
 * shows at start), the others, up to `size`, when reads need them at the same time.
 */
export async function startOffsetReader(options: {
  kafka: KafkaConfig;
  topic: string;
  size: number;
  /** The group id librdkafka wants (nothing is committed under it and it never joins): a private group of the component's (contracts/kafka-acls.ts). */
  groupId: string;
  logger: Logger;
}): Promise<OffsetReader> {
  const log = options.logger.child({ component: "offset-reader", topic: options.topic });
  const { KafkaConsumer } = rdkafka();
  const idle: Fetcher[] = [];
  const all: NativeConsumer[] = [];
  const waiting: Array<(f: Fetcher) => void> = [];
  let opened = 0;
  let warnedAt = 0;

  async function open(): Promise<Fetcher> {
    opened++;
    const consumer = new KafkaConsumer({
      ...librdkafkaConnection(options.kafka),
      // A group id librdkafka wants; nothing is ever committed under it.
      "group.id": options.groupId,
      "enable.auto.commit": false,
      "enable.auto.offset.store": false,
      "auto.offset.reset": "error",
      "isolation.level": "read_committed",
      "fetch.wait.max.ms": 10,
      // librdkafka wants this >= message.max.bytes; one partition per fetch, so the next one bounds it.
      "fetch.max.bytes": 1_000_000,
      "max.partition.fetch.bytes": FETCH_BYTES,
      "queued.min.messages": 1,
      // Without it librdkafka waits 1 s before fetching again once its queue holds a record.
      "fetch.queue.backoff.ms": 0,
      "queued.max.messages.kbytes": 64,
    });
    // librdkafka reports every failed reconnect while a broker is away: say so once a minute.
    consumer.on("event.error", (err: Error) => {
      if (Date.now() - warnedAt < 60_000) return;
      warnedAt = Date.now();
      log.warn({ err }, "offset reader: client error (librdkafka retries; reads fail as unavailable meanwhile)");
    });
    try {
      await call((cb) => consumer.connect({ timeout: 10_000 }, cb));
    } catch (err) {
      opened--;
      throw unavailable(options.topic, err);
    }
    consumer.setDefaultConsumeTimeout(100);
    all.push(consumer);
    return new Fetcher(consumer, options.topic);
  }

  idle.push(await open());
  const release = (f: Fetcher) => {
    const next = waiting.shift();
    if (next) next(f);
    else idle.push(f);
  };
  return {
    async withFetcher(read) {
      const fetcher = idle.pop() ?? (opened < options.size ? await open() : await new Promise<Fetcher>((resolve) => waiting.push(resolve)));
      try {
        return await read(fetcher);
      } finally {
        release(fetcher);
      }
    },
    async end(partition) {
      // One ListOffsets request for one partition, where an admin's call would ask for
      // the metadata and both watermarks of every partition.
      const topic = options.topic;
      const consumer = all[0]!;
      const ask = () =>
        new Promise<number>((resolve, reject) =>
          consumer.offsetsForTimes([{ topic, partition, offset: LATEST }], FETCH_TIMEOUT_MS, (err, offsets) => {
            const o = offsets?.find((x) => x.partition === partition);
            if (err || !o || o.error || o.offset < 0) reject(unavailable(topic, err ?? o?.error ?? new Error(`no end offset for partition ${partition}`)));
            else resolve(o.offset);
          }),
        );
      try {
        return await ask();
      } catch {
        // librdkafka finds the leader in its metadata cache, which a broker's restart can
        // leave without the partition ("Unknown partition") for metadata.max.age.ms (15 min)
        // when nothing reads the topic: ask for the topic's metadata, then once more.
        await new Promise<void>((resolve) => consumer.getMetadata({ topic, timeout: FETCH_TIMEOUT_MS }, () => resolve()));
        return ask();
      }
    },
    async stop() {
      await Promise.all(all.map((c) => new Promise<void>((resolve) => c.disconnect(() => resolve()))));
    },
  };
}
