/**
 * Reads whole topics straight from Kafka, to the end offsets they have when the read
 * starts: the chaos accounting trusts what is on the topics, not what any service says.
 */
import type { KafkaConfig } from "../contracts/config/shared.js";
import type { BrokerCredentials } from "../scripts/kafka/security.js";
import { kafkaConfigFor, readTopic as readWholeTopic } from "../testkit/kafka.js";

export interface LoggedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: string | null;
  readonly value: Buffer | null;
  /** Header values as text (a header given several times: its last value). */
  readonly headers: Readonly<Record<string, string>>;
  /** Broker or producer timestamp, ms since the epoch. */
  readonly timestamp: number;
}

/** The Kafka login of the accounting's reads: the broker's administrator (it reads every topic). */
export function readerConfig(brokers: string, credentials: BrokerCredentials | null): KafkaConfig {
  return { ...kafkaConfigFor({ brokers, credentials }), clientId: "chaos-accounting" };
}

/**
 * Every record of `topic`, each partition in offset order, up to the end offsets read at
 * the start (read_committed). Gives up after `timeoutMs` (the caller then reports what it
 * could not read).
 */
export async function readTopic(config: KafkaConfig, topic: string, timeoutMs = 60_000): Promise<LoggedRecord[]> {
  const records = await readWholeTopic(config, topic, { timeoutMs, fetchBytes: 8 * 1024 * 1024 });
  return records.map((r) => ({
    topic,
    partition: r.partition,
    offset: BigInt(r.offset),
    key: r.key?.toString("utf8") ?? null,
    value: r.value,
    headers: Object.fromEntries(Object.entries(r.headers).map(([name, value]) => [name, value.toString()])),
    timestamp: r.timestamp,
  }));
}
