/**
 * The project's admin client: librdkafka's, with the calls the services make. Every call has
 * a timeout (a call made for an HTTP request answers, or fails, within seconds when Kafka
 * is away).
 *
 * Not here: describing consumer groups, which librdkafka's binding can crash the process
 * doing while the brokers are unreachable (group-describer.ts runs it in a child process),
 * and reading a topic's configuration, which the binding does not offer
 * (confluentinc/confluent-kafka-javascript#444): the topics are created with the
 * configuration the design needs (contracts/topics.ts) and the workers take what they
 * must know of it from there.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { librdkafkaConnection } from "./connection.js";
import { call, ErrorCode, rdkafka, type NativeAdmin, type NativeConsumer, type NativeError, type NativeMetadata, type TopicPartitionOffset } from "./native.js";

export interface NewTopic {
  readonly name: string;
  readonly partitions: number;
  /** -1: the broker's default.replication.factor. */
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

export interface PartitionOffsets {
  readonly partition: number;
  /** The oldest offset still in the log. */
  readonly low: number;
  /** The offset the next record written gets (the high watermark). */
  readonly high: number;
}

/** Kafka's "no committed offset" (librdkafka's RD_KAFKA_OFFSET_INVALID). */
const OFFSET_INVALID = -1001;
const EARLIEST = -2;
const LATEST = -1;
const READ_COMMITTED = 1;

export class KafkaAdmin {
  readonly #native: NativeAdmin;
  readonly #config: KafkaConfig;
  readonly #clientId: string;
  readonly timeoutMs: number;

  /** Makes the client (librdkafka connects as calls need it). */
  constructor(config: KafkaConfig, options: { clientId?: string; timeoutMs?: number } = {}) {
    this.#config = config;
    this.#clientId = options.clientId ?? `${config.clientId}-admin`;
    this.timeoutMs = options.timeoutMs ?? 5000;
    // librdkafka says why it cannot reach a broker (a refused SASL login, a certificate it
    // cannot verify) only in its log; a call fails with "Broker transport failure". The last
    // such line is added to a call's error, so a service that cannot start says why.
    this.#native = rdkafka().AdminClient.create(
      // allow.auto.create.topics (true by default on a producer's handle, which an admin's is):
      // asking for a topic's metadata must never create it.
      { ...librdkafkaConnection(config, this.#clientId), "allow.auto.create.topics": false, event_cb: true },
      {
        "event.log": (log: { severity: number; message: string }) => {
          if (log.severity <= 3) this.#lastFailure = { at: Date.now(), message: log.message };
        },
      },
    );
  }

  #lastFailure: { at: number; message: string } | null = null;

  /** A call's error, with what librdkafka last logged about a broker it could not reach (within a minute); its code kept. */
  #explained(err: unknown): unknown {
    const failure = this.#lastFailure;
    if (!(err instanceof Error) || !failure || Date.now() - failure.at > 60_000) return err;
    return Object.assign(new Error(`${err.message} (librdkafka: ${failure.message})`, { cause: err }), { code: (err as NativeError).code });
  }

  close(): void {
    this.#native.disconnect();
  }

  listTopics(timeoutMs = this.timeoutMs): Promise<string[]> {
    return call<string[]>((cb) => this.#native.listTopics({ timeout: timeoutMs }, cb)).catch((err: unknown) => {
      throw this.#explained(err);
    });
  }

  /**
   * Creates topics; one that exists already (a concurrent creator won) is no error. Throws
   * the first other refusal (its `code` is Kafka's: authorizationFailure() names it).
   */
  async createTopics(topics: readonly NewTopic[], timeoutMs = 30_000): Promise<void> {
    for (const t of topics) {
      try {
        await call((cb) =>
          this.#native.createTopic(
            { topic: t.name, num_partitions: t.partitions, replication_factor: t.replicationFactor, config: { ...t.configs } },
            timeoutMs,
            cb,
          ),
        );
      } catch (err) {
        if ((err as NativeError).code !== ErrorCode.TOPIC_ALREADY_EXISTS) throw err;
      }
    }
  }

  /**
   * Each topic's partition numbers, sorted; a topic the metadata does not list (it does not
   * exist, or this principal may not describe it) is refused with UNKNOWN_TOPIC_OR_PART.
   *
   * A metadata request to any broker, not DescribeTopics: librdkafka sends DescribeTopics
   * to the controller, and while no controller can be reached it asks for a connection to
   * it every time a broker changes state, without the reconnect back-off, so every service
   * that asked spun its librdkafka threads for the call's whole timeout and a broker
   * restarting beside them was starved of CPU (RELIABILITY.md, "a broker restart"). The
   * request asks for every topic the principal may describe: naming one makes the binding
   * create a topic handle, after which the client's disconnect can hang for good.
   */
  async partitions(topics: readonly string[], timeoutMs = this.timeoutMs): Promise<Map<string, number[]>> {
    const metadata = await call<NativeMetadata | undefined>((cb) => this.#native._client.getMetadata({ allTopics: true, timeout: timeoutMs }, cb)).catch(
      (err: unknown) => {
        throw this.#explained(err);
      },
    );
    const out = new Map<string, number[]>();
    for (const topic of topics) {
      const listed = metadata?.topics.find((t) => t.name === topic);
      if (!listed || listed.partitions.length === 0) {
        throw Object.assign(new Error(`topic ${topic} is not known to the brokers, or this principal may not describe it`), {
          code: ErrorCode.UNKNOWN_TOPIC_OR_PART,
        });
      }
      out.set(
        topic,
        listed.partitions.map((p) => p.id).sort((a, b) => a - b),
      );
    }
    return out;
  }

  /** Each partition's log start and end (high watermark), as the leaders have them now. */
  async offsets(topic: string, timeoutMs = this.timeoutMs): Promise<PartitionOffsets[]> {
    const partitions = (await this.partitions([topic], timeoutMs)).get(topic) ?? [];
    const [low, high] = await Promise.all([this.#listOffsets(topic, partitions, EARLIEST, timeoutMs), this.#listOffsets(topic, partitions, LATEST, timeoutMs)]);
    return partitions.map((partition) => ({ partition, low: low.get(partition) ?? 0, high: high.get(partition) ?? 0 }));
  }

  /**
   * Per partition, the first offset whose record is at or after `timestamp` (ms), or the
   * partition's end when none is.
   */
  async offsetsAt(topic: string, timestamp: number, timeoutMs = this.timeoutMs): Promise<Map<number, number>> {
    const partitions = (await this.partitions([topic], timeoutMs)).get(topic) ?? [];
    const [at, high] = await Promise.all([this.#listOffsets(topic, partitions, timestamp, timeoutMs), this.#listOffsets(topic, partitions, LATEST, timeoutMs)]);
    return new Map(partitions.map((p) => [p, (at.get(p) ?? -1) >= 0 ? at.get(p)! : (high.get(p) ?? 0)]));
  }

  async #listOffsets(topic: string, partitions: readonly number[], timestamp: number, timeoutMs: number): Promise<Map<number, number>> {
    if (partitions.length === 0) return new Map();
    const listed = await call<Array<TopicPartitionOffset & { error?: NativeError }>>((cb) =>
      this.#native.listOffsets(
        partitions.map((partition) => ({ topic, partition, offset: { timestamp } })),
        { timeout: timeoutMs, isolationLevel: READ_COMMITTED },
        cb,
      ),
    );
    const out = new Map<number, number>();
    for (const o of listed) {
      if (o.error) throw o.error;
      out.set(o.partition, o.offset);
    }
    return out;
  }

  /** A group's committed offsets on `topic` (the next offset to read), by partition; partitions without one are absent. */
  async committed(groupId: string, topic: string, partitions: readonly number[], timeoutMs = this.timeoutMs): Promise<Map<number, number>> {
    const [group] = await call<Array<{ groupId: string; error?: NativeError; partitions: Array<TopicPartitionOffset & { error?: NativeError }> }>>((cb) =>
      this.#native.listConsumerGroupOffsets([{ groupId, partitions: partitions.map((partition) => ({ topic, partition })) }], { timeout: timeoutMs }, cb),
    );
    if (group?.error) throw group.error;
    const out = new Map<number, number>();
    for (const p of group?.partitions ?? []) {
      if (p.error) throw p.error;
      if (p.offset !== OFFSET_INVALID && p.offset >= 0) out.set(p.partition, p.offset);
    }
    return out;
  }

  /**
   * Commits offsets for a group without joining it (a group no member uses: a reader's
   * position). librdkafka's admin has no AlterConsumerGroupOffsets, so a consumer of that
   * group id that never subscribes commits them, then goes.
   */
  async commit(groupId: string, offsets: readonly TopicPartitionOffset[], timeoutMs = this.timeoutMs): Promise<void> {
    const consumer: NativeConsumer = new (rdkafka().KafkaConsumer)({
      ...librdkafkaConnection(this.#config, this.#clientId),
      "group.id": groupId,
      "enable.auto.commit": false,
    });
    await call((cb) => consumer.connect({ timeout: timeoutMs }, cb));
    try {
      await call((cb) => consumer.commitCb([...offsets], cb));
    } finally {
      await call((cb) => consumer.disconnect(cb)).catch(() => undefined);
    }
  }

  deleteGroups(groupIds: readonly string[], timeoutMs = this.timeoutMs): Promise<Array<{ groupId: string; errorCode?: number }>> {
    return call((cb) => this.#native.deleteGroups([...groupIds], { timeout: timeoutMs }, cb));
  }

  /** Deletes a partition's records below `offset` (its log start moves there, as retention would); resolves with the new log start. */
  async deleteRecords(topic: string, partition: number, offset: number, timeoutMs = this.timeoutMs): Promise<number> {
    const [result] = await call<Array<{ lowWatermark: number; error?: NativeError }>>((cb) =>
      this.#native.deleteRecords([{ topic, partition, offset }], { timeout: timeoutMs, operationTimeout: timeoutMs }, cb),
    );
    if (result?.error) throw result.error;
    return result?.lowWatermark ?? offset;
  }
}
