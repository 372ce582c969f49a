/**
 * Reads single records at exact offsets: what a history read does, hop by hop, along the
 * links its records carry. librdkafka's consumer (no group: assign at an offset, consume
 * one record), because kafkajs reads only through a consumer group. Fetch sizes are small
 * so one hop does not pull megabytes of the partition's other conversations, and reads are
 * read_committed, so nothing of an aborted write is ever seen.
 *
 * A pool: each read takes one consumer for all its hops (a consumer serves one position
 * at a time), so concurrent reads do not move each other's position.
 */
import { createRequire } from "node:module";
import type { KafkaConfig } from "../../contracts/config.js";
import { KafkaLlmError } from "../../contracts/errors.js";
import type { Logger } from "../../platform/logger.js";
import { librdkafkaConnection } from "../../platform/group-consumer.js";

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
}

export interface OffsetReader {
  /** Runs `read` with a consumer of the pool to itself. */
  withFetcher<T>(read: (fetcher: OffsetFetcher) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

interface NativeMessage {
  offset: number;
  partition: number;
  key?: Buffer | null;
  value: Buffer | null;
}
interface NativeConsumer {
  connect(options: Record<string, unknown>, cb: (err: Error | null) => void): void;
  disconnect(cb: (err: Error | null) => void): void;
  assign(tps: Array<{ topic: string; partition: number; offset: number }>): void;
  unassign(): void;
  consume(n: number, cb: (err: Error | null, messages: NativeMessage[]) => void): void;
  setDefaultConsumeTimeout(ms: number): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
}

/** librdkafka's RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET. */
const ERR_AUTO_OFFSET_RESET = -140;
/** How long one hop waits for its record before taking it as absent. */
const FETCH_TIMEOUT_MS = 3000;
/** Bytes fetched per hop: enough for one batch holding a history record (a turn is a few KB). */
const FETCH_BYTES = 64 * 1024;

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
            if (err && (err as Error & { code?: number }).code === ERR_AUTO_OFFSET_RESET) resolve(null);
            else if (err) reject(new KafkaLlmError("kafka_unavailable", "chat.history cannot be read just now; try again shortly", { cause: err }));
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
      throw new KafkaLlmError("kafka_unavailable", `chat.history did not answer within ${FETCH_TIMEOUT_MS / 1000} s; try again shortly`);
    } finally {
      this.#consumer.unassign();
    }
  }
}

export async function startOffsetReader(options: { kafka: KafkaConfig; topic: string; size: number; logger: Logger }): Promise<OffsetReader> {
  const log = options.logger.child({ component: "offset-reader", topic: options.topic });
  const require = createRequire(import.meta.url);
  const { KafkaConsumer } = require("@confluentinc/kafka-javascript") as { KafkaConsumer: new (conf: Record<string, unknown>) => NativeConsumer };
  const idle: Fetcher[] = [];
  const all: NativeConsumer[] = [];
  const waiting: Array<(f: Fetcher) => void> = [];
  for (let i = 0; i < options.size; i++) {
    const consumer = new KafkaConsumer({
      ...librdkafkaConnection(options.kafka),
      // A group id librdkafka wants; nothing is ever committed under it.
      "group.id": "kafka-llm-offset-reader",
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
    consumer.on("event.error", (err) => log.warn({ err }, "offset reader: client error (librdkafka retries)"));
    await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())));
    consumer.setDefaultConsumeTimeout(100);
    all.push(consumer);
    idle.push(new Fetcher(consumer, options.topic));
  }
  const release = (f: Fetcher) => {
    const next = waiting.shift();
    if (next) next(f);
    else idle.push(f);
  };
  return {
    async withFetcher(read) {
      const fetcher = idle.pop() ?? (await new Promise<Fetcher>((resolve) => waiting.push(resolve)));
      try {
        return await read(fetcher);
      } finally {
        release(fetcher);
      }
    },
    async stop() {
      await Promise.all(all.map((c) => new Promise<void>((resolve) => c.disconnect(() => resolve()))));
    },
  };
}
