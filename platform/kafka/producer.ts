/**
 * The project's producer: librdkafka's, with a promise per record settled by its delivery
 * report (polled on librdkafka's background thread, so a report reaches JavaScript as soon
 * as the broker acknowledges, without a poll interval's delay).
 *
 * Records are sent as they come (linger.ms 0: a chat bus waits on each record); records
 * produced while a request is in flight go together in the next one. Idempotent by default
 * (acks=all, ordered, no duplicates from retries). With `transactionalId` the producer is
 * transactional: `transaction()` writes records and a consumer's offsets atomically, and the
 * broker refuses a producer (or a consumer generation) that has been replaced.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import type { Logger } from "../logger.js";
import { librdkafkaConnection, SEVERITY } from "./connection.js";
import {
  call,
  ErrorCode,
  rdkafka,
  type DeliveryReport,
  type NativeConsumer,
  type NativeError,
  type NativeProducer,
  type TopicPartitionOffset,
} from "./native.js";

export interface OutgoingRecord {
  readonly key?: string | Buffer | null;
  readonly value: Buffer | null;
  /** The partition; absent: the key's (murmur2, partitioner.ts), or any for a null key. */
  readonly partition?: number;
  readonly headers?: Readonly<Record<string, string | Buffer>>;
  /** Milliseconds since the epoch; absent: now. */
  readonly timestamp?: number;
}

/** Where a record landed. */
export interface Delivered {
  readonly partition: number;
  readonly offset: number;
}

/** The one call the writers make: a stand-in in unit tests, a KafkaProducer (or an open transaction) otherwise. */
export interface RecordSink {
  /** Sends records to one topic, in order; resolves once every one is acknowledged, with where each landed. */
  send(batch: { topic: string; messages: readonly OutgoingRecord[] }): Promise<Delivered[]>;
}

export interface ProducerOptions {
  readonly logger: Logger;
  /** The producer's client.id, when not KAFKA_CLIENT_ID. */
  readonly clientId?: string;
  /** Default true: acks=all, no duplicates from retries, order kept. */
  readonly idempotent?: boolean;
  /** How long librdkafka tries to deliver a record before failing it (message.timeout.ms); default 30 s. */
  readonly deliveryTimeoutMs?: number;
  /** Makes the producer transactional, with this transactional.id. */
  readonly transactionalId?: string;
  /** transaction.timeout.ms: how long the broker lets a transaction stay open. */
  readonly transactionTimeoutMs?: number;
  /** A fatal error (the producer cannot go on: fenced, or its idempotence state lost). */
  onFatal?(error: NativeError): void;
}

interface Pending {
  resolve(delivered: Delivered): void;
  reject(err: Error): void;
}

/** A consumer's offsets committed with a transaction. */
export interface TransactionOffsets {
  readonly consumer: NativeConsumer;
  /** The offsets, or what gives them when the transaction begins (after the producer's earlier transactions ended). */
  readonly offsets: TopicPartitionOffset[] | (() => TopicPartitionOffset[]);
  /** Called once the transaction committed, before the producer's next transaction begins. */
  readonly onCommitted?: () => void;
}

/** The transaction was aborted (or could not be begun); nothing of it is visible to read_committed readers. */
export class TransactionAborted extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = "TransactionAborted";
  }
}

/** The producer was replaced (fenced): another instance with its transactional.id, or its consumer's generation, took over. */
export class ProducerFenced extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = "ProducerFenced";
  }
}

/** This producer was replaced by another with its transactional.id: it can do nothing more. */
const PRODUCER_FENCED_CODES = new Set<number>([ErrorCode.FENCED, ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH]);
/** The consumer's generation the offsets were sent at is no longer current: the group has replaced the member. */
const MEMBER_FENCED_CODES = new Set<number>([
  ErrorCode.FENCED_MEMBER_EPOCH,
  ErrorCode.STALE_MEMBER_EPOCH,
  ErrorCode.ILLEGAL_GENERATION,
  ErrorCode.UNKNOWN_MEMBER_ID,
]);

export class KafkaProducer implements RecordSink {
  readonly #native: NativeProducer;
  readonly #logger: Logger;
  readonly #transactional: boolean;
  #failure: NativeError | null = null;
  /** The transaction in progress; the next waits for it. */
  #txQueue: Promise<unknown> = Promise.resolve();

  private constructor(native: NativeProducer, logger: Logger, transactional: boolean) {
    this.#native = native;
    this.#logger = logger;
    this.#transactional = transactional;
  }

  /** Makes and connects a producer (and, when transactional, initializes its transactions). */
  static async connect(config: KafkaConfig, options: ProducerOptions): Promise<KafkaProducer> {
    const idempotent = options.idempotent ?? true;
    const conf: Record<string, unknown> = {
      ...librdkafkaConnection(config, options.clientId),
      dr_cb: true,
      event_cb: true,
      "linger.ms": 0,
      "enable.idempotence": idempotent || options.transactionalId !== undefined,
      acks: -1,
      // A transactional producer's records must be delivered within its transaction.
      "message.timeout.ms": Math.min(options.deliveryTimeoutMs ?? 30_000, options.transactionTimeoutMs ?? 60_000),
      partitioner: "murmur2_random",
      ...(options.transactionalId !== undefined && {
        "transactional.id": options.transactionalId,
        "transaction.timeout.ms": options.transactionTimeoutMs ?? 60_000,
      }),
    };
    if (!idempotent && options.transactionalId === undefined) {
      // Not idempotent: a few quick retries, then the caller hears of it.
      conf["message.send.max.retries"] = 2;
      conf["retry.backoff.ms"] = 100;
    }
    const { Producer } = rdkafka();
    const native = new Producer(conf);
    const logger = options.logger.child({ component: "kafka-producer" });
    const producer = new KafkaProducer(native, logger, options.transactionalId !== undefined);
    native.on("event.log", (log: { severity: number; fac: string; message: string }) =>
      logger[SEVERITY[log.severity] ?? "debug"]({ fac: log.fac }, log.message),
    );
    native.on("event.error", (err: NativeError) => {
      if (err.isFatal) {
        producer.#failure = err;
        logger.error({ err: { message: err.message, code: err.code } }, "the producer hit a fatal error");
        options.onFatal?.(err);
        return;
      }
      // A broker away: librdkafka reconnects and retries by itself.
      logger.debug({ err: { message: err.message, code: err.code } }, "producer error; librdkafka retries");
    });
    native.on("delivery-report", (err: NativeError | null, report: DeliveryReport) => {
      const pending = report.opaque as Pending | undefined;
      if (!pending) return;
      if (err) pending.reject(err);
      else pending.resolve({ partition: report.partition, offset: report.offset });
    });
    await call((cb) => native.connect({ timeout: 30_000 }, cb));
    native.setPollInBackground(true);
    if (options.transactionalId !== undefined) await call((cb) => native.initTransactions(30_000, cb));
    return producer;
  }

  /** Why the producer cannot go on (a fatal error), or null. */
  failure(): string | null {
    return this.#failure ? `the Kafka producer stopped: ${this.#failure.message}` : null;
  }

  send(batch: { topic: string; messages: readonly OutgoingRecord[] }): Promise<Delivered[]> {
    if (this.#transactional) return Promise.reject(new Error("a transactional producer sends only inside transaction()"));
    return this.#produce(batch.topic, batch.messages);
  }

  #produce(topic: string, messages: readonly OutgoingRecord[]): Promise<Delivered[]> {
    return Promise.all(
      messages.map(
        (m) =>
          new Promise<Delivered>((resolve, reject) => {
            const headers = m.headers ? Object.entries(m.headers).map(([k, v]) => ({ [k]: v })) : undefined;
            try {
              this.#native.produce(topic, m.partition ?? null, m.value, m.key ?? null, m.timestamp ?? null, { resolve, reject } satisfies Pending, headers);
            } catch (err) {
              reject(err as Error);
            }
          }),
      ),
    );
  }

  /**
   * Runs `work` in a transaction: what it sends, and `offsets` (`consumer`'s group, at its
   * current generation), are committed together, or none of it is. Transactions of one
   * producer run one after another. Throws TransactionAborted when the transaction was
   * aborted (the caller may try again), ProducerFenced when this producer or the
   * consumer's generation was replaced (it must not).
   */
  transaction<T>(work: (sink: RecordSink) => Promise<T>, commit?: TransactionOffsets): Promise<T> {
    if (!this.#transactional) return Promise.reject(new Error("this producer is not transactional"));
    const run = this.#txQueue.then(() => this.#runTransaction(work, commit));
    this.#txQueue = run.catch(() => undefined);
    return run;
  }

  async #runTransaction<T>(work: (sink: RecordSink) => Promise<T>, commit?: TransactionOffsets): Promise<T> {
    const native = this.#native;
    try {
      await call((cb) => native.beginTransaction(cb));
    } catch (err) {
      throw this.#classify(err, "could not begin a transaction");
    }
    try {
      // The offsets go to the group's coordinator while `work` writes (the commit makes both
      // visible at once): their two round trips overlap the records' instead of following them.
      const list = typeof commit?.offsets === "function" ? commit.offsets() : commit?.offsets;
      const offsets = commit && list && list.length > 0 ? call((cb) => native.sendOffsetsToTransaction(list, commit.consumer, 10_000, cb)) : undefined;
      // Both settle before an abort: librdkafka refuses a transactional call while another runs.
      const [done, sent] = await Promise.allSettled([work({ send: (batch) => this.#produce(batch.topic, batch.messages) }), offsets]);
      if (done.status === "rejected") throw done.reason;
      if (sent.status === "rejected") throw sent.reason;
      await call((cb) => native.commitTransaction(30_000, cb));
      commit?.onCommitted?.();
      return done.value;
    } catch (err) {
      const classified = this.#classify(err, "the transaction failed");
      // Abort whatever can be aborted, a transaction refused for its consumer's generation
      // too: left open, it would hold back every read_committed reader of its partitions
      // until the broker timed it out (transaction.timeout.ms and the sweep after it).
      // Only a fenced producer cannot: the broker aborts its transaction for it.
      if (!PRODUCER_FENCED_CODES.has((err as { code?: number }).code ?? 0)) {
        try {
          await call((cb) => native.abortTransaction(30_000, cb));
        } catch (abortErr) {
          this.#logger.warn({ err: abortErr }, "could not abort a failed transaction");
        }
      }
      throw classified;
    }
  }

  #classify(err: unknown, what: string): Error {
    const code = (err as { code?: number }).code ?? 0;
    const message = `${what}: ${(err as Error).message}`;
    return PRODUCER_FENCED_CODES.has(code) || MEMBER_FENCED_CODES.has(code)
      ? new ProducerFenced(message, { cause: err })
      : new TransactionAborted(message, { cause: err });
  }

  /** Waits until everything produced is acknowledged (or `timeoutMs` passes). */
  flush(timeoutMs = 10_000): Promise<void> {
    return call((cb) => this.#native.flush(timeoutMs, cb));
  }

  /** Flushes (briefly) and disconnects; records not yet acknowledged fail. */
  async disconnect(): Promise<void> {
    if (!this.#native.isConnected()) return;
    await this.flush(5000).catch((err: unknown) => this.#logger.debug({ err }, "flush before disconnect did not finish"));
    await call((cb) => this.#native.disconnect(cb)).catch((err: unknown) => this.#logger.debug({ err }, "producer disconnect failed"));
  }
}
