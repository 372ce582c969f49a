/**
 * Reads whole topics straight from Kafka, to the end offsets they have when the read
 * starts: the chaos accounting trusts what is on the topics, not what any service says.
 */
import { randomUUID } from "node:crypto";
import kafkajs, { type IHeaders, type Kafka } from "kafkajs";
import { kafkajsLogin, type BrokerCredentials } from "../scripts/kafka/security.js";

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

/** A kafkajs client for reading, logged in as the broker's administrator (the accounting reads every topic). */
export function readerClient(brokers: string, credentials: BrokerCredentials | null): Kafka {
  return new kafkajs.Kafka({ clientId: "chaos-accounting", brokers: [brokers], logLevel: kafkajs.logLevel.NOTHING, ...kafkajsLogin(credentials, "admin") });
}

/**
 * Every record of `topic`, each partition in offset order, up to the end offsets read at
 * the start. Gives up after `timeoutMs` (the caller then reports what it could not read).
 */
export async function readTopic(kafka: Kafka, topic: string, timeoutMs = 60_000): Promise<LoggedRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: Array<{ partition: number; high: string; low: string }>;
  try {
    ends = await admin.fetchTopicOffsets(topic);
  } finally {
    await admin.disconnect();
  }
  const target = new Map(ends.map((o) => [o.partition, BigInt(o.high)]));
  const pending = new Set(ends.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => o.partition));
  const records: LoggedRecord[] = [];
  if (pending.size === 0) return records;

  const consumer = kafka.consumer({ groupId: `chaos-read-${randomUUID()}`, maxWaitTimeInMs: 100, maxBytesPerPartition: 8 * 1024 * 1024 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${topic} did not reach its end within ${timeoutMs} ms (partitions left: ${[...pending].join(",")})`)),
        timeoutMs,
      );
      void consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          const offset = BigInt(message.offset);
          const end = target.get(partition) ?? 0n;
          if (offset < end) {
            records.push({
              topic,
              partition,
              offset,
              key: message.key?.toString("utf8") ?? null,
              value: message.value,
              headers: headerText(message.headers),
              timestamp: Number(message.timestamp),
            });
          }
          // Compaction and transaction markers leave gaps: the last offset below the end may not exist.
          if (offset + 1n >= end && pending.delete(partition) && pending.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
}

function headerText(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const last = Array.isArray(value) ? value.at(-1) : value;
    if (last !== undefined) out[name] = last.toString();
  }
  return out;
}
