/**
 * The Kafka helpers tests, bench and chaos share: the broker to run against, a KafkaConfig
 * for a principal of it, and reading a topic to its end, all through the project's one
 * Kafka module (platform/kafka/: librdkafka).
 *
 * The broker: KAFKA_BROKERS when set (start nothing; its principals from
 * KAFKA_CREDENTIALS_FILE when it is secured), else a fresh local one, secured as production
 * should be (SASL/SCRAM, one principal per component, deny by default: scripts/kafka/security.ts).
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { KafkaConfig } from "../contracts/config/shared.js";
import { KafkaAdmin } from "../platform/kafka/admin.js";
import { AssignedReader, type ReadRecord } from "../platform/kafka/assigned-reader.js";
import { KafkaProducer, type Delivered, type OutgoingRecord } from "../platform/kafka/producer.js";
import { createLogger } from "../platform/logger.js";
import { startBroker } from "../scripts/kafka-broker.js";
import { loginConfig } from "../scripts/kafka/provision.js";
import { newCredentials, readCredentials, type BrokerCredentials, type BrokerRole } from "../scripts/kafka/security.js";

export type { ReadRecord } from "../platform/kafka/assigned-reader.js";

export interface TestKafka {
  brokers: string;
  /** The broker's principals; null on a plaintext broker (KAFKA_BROKERS without KAFKA_CREDENTIALS_FILE). */
  credentials: BrokerCredentials | null;
  /** Where they are kept, passed to the services' helpers (testkit/stack.ts). */
  credentialsFile: string | null;
  stop(): Promise<void>;
}

export async function useKafka(): Promise<TestKafka> {
  const external = process.env.KAFKA_BROKERS?.trim();
  if (external) {
    const file = process.env.KAFKA_CREDENTIALS_FILE?.trim() || null;
    return { brokers: external, credentials: file ? readCredentials(file) : null, credentialsFile: file, stop: async () => {} };
  }
  const broker = await startBroker();
  return { brokers: broker.brokers, credentials: broker.credentials, credentialsFile: broker.credentialsFile, stop: () => broker.stop() };
}

/**
 * The project's KafkaConfig for a client of one's own (platform/kafka/), logged in as `role`
 * on a secured broker (tests, bench and chaos observe as the administrator); `tls` for a
 * TLS listener.
 */
export function kafkaConfigFor(kafka: Pick<TestKafka, "brokers" | "credentials">, role: BrokerRole = "admin", tls: KafkaConfig["tls"] = null): KafkaConfig {
  const config = loginConfig(kafka.brokers, kafka.credentials ?? newCredentials(), role, tls);
  return kafka.credentials ? config : { ...config, sasl: null };
}

/** A topic prefix of its own, so tests sharing one broker never see each other's records. */
export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(4).toString("hex")}.`;
}

/** A logger for the testkit's own clients: only what is fatal. */
const quiet = () => createLogger("testkit", "fatal");

/**
 * Each partition's end now (the next offset written; read_committed: the last stable
 * offset), and its log start.
 */
export async function topicEnds(config: KafkaConfig, topic: string): Promise<Map<number, { low: number; high: number }>> {
  const admin = new KafkaAdmin(config, { clientId: `${config.clientId}-ends`, timeoutMs: 10_000 });
  try {
    return new Map((await admin.offsets(topic)).map((o) => [o.partition, { low: o.low, high: o.high }]));
  } finally {
    admin.close();
  }
}

export interface ReadTopicOptions {
  /** Only these partitions; default all. */
  readonly partitions?: readonly number[];
  /** Default true: nothing of an aborted transaction, and the end is the last stable offset. */
  readonly readCommitted?: boolean;
  /** Gives up after this long (ms), naming the partitions not read to their end; default 60 s. */
  readonly timeoutMs?: number;
  /** Bytes fetched per partition and request; default 1 MiB (larger for big topics). */
  readonly fetchBytes?: number;
}

/**
 * Hands every record of `topic` to `each`, each partition in offset order, from the log start
 * up to the ends the partitions have when the call starts; keeps nothing (for topics too big
 * to hold). An AssignedReader: no group is joined and nothing is committed.
 */
export async function forEachRecord(config: KafkaConfig, topic: string, each: (record: ReadRecord) => void, options: ReadTopicOptions = {}): Promise<void> {
  const ends = await topicEnds(config, topic);
  const wanted = [...ends].filter(([p, o]) => o.high > o.low && (!options.partitions || options.partitions.includes(p)));
  if (wanted.length === 0) return;
  const end = new Map(wanted.map(([p, o]) => [p, o.high]));
  const reader = new AssignedReader({
    kafka: config,
    topic,
    name: "topic-reader",
    // Never joined (the administrator may name any group).
    groupId: `testkit-reader-${randomUUID()}`,
    logger: quiet(),
    readCommitted: options.readCommitted ?? true,
    ...(options.fetchBytes !== undefined && { fetchBytes: options.fetchBytes }),
    onRecords: (records) => {
      for (const r of records) if (r.offset < (end.get(r.partition) ?? 0)) each(r);
    },
  });
  await reader.start();
  try {
    for (const [p, o] of wanted) reader.add(p, o.low);
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    const left: number[] = [];
    for (const [p, o] of wanted) {
      if (!(await reader.waitFor(p, o.high, Math.max(1, deadline - Date.now())))) left.push(p);
    }
    if (left.length > 0)
      throw new Error(`reading ${topic} did not reach its end within ${options.timeoutMs ?? 60_000} ms (partitions left: ${left.join(",")})`);
  } finally {
    await reader.stop();
  }
}

/** Every record of `topic` up to its ends at the call (forEachRecord), sorted by partition, then offset. */
export async function readTopic(config: KafkaConfig, topic: string, options: ReadTopicOptions = {}): Promise<ReadRecord[]> {
  const records: ReadRecord[] = [];
  await forEachRecord(config, topic, (r) => records.push(r), options);
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** Sends records to a topic with a producer of its own (the project's: the keys' murmur2 partition), then disconnects. */
export async function produceRecords(config: KafkaConfig, topic: string, messages: readonly OutgoingRecord[]): Promise<Delivered[]> {
  const producer = await KafkaProducer.connect(config, { logger: quiet(), clientId: `${config.clientId}-testkit` });
  try {
    return await producer.send({ topic, messages });
  } finally {
    await producer.disconnect();
  }
}
