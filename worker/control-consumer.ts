/**
 * Every worker reads all of chat.control, so a cancel reaches the worker running the request
 * whichever it is. It reads by assignment (platform/kafka/assigned-reader.ts): every
 * partition, joining no group and committing nothing, so no rebalance ever stops it and a
 * broker restart costs no rejoin. It starts at the first record of the cancellation memory
 * (the offsets of now minus rememberMs) and ignores records older than that memory, so a
 * worker that has just taken over a request still honours a cancel sent moments before.
 */
import type { KafkaConfig } from "../contracts/config/shared.js";
import { controlRecordSchema } from "../contracts/records/control.js";
import { decodeRecord } from "../contracts/records/codec.js";
import type { KafkaAdmin } from "../platform/kafka/admin.js";
import { AssignedReader } from "../platform/kafka/assigned-reader.js";
import type { Logger } from "../platform/logger.js";
import { CANCEL_MEMORY_MS, type Cancellations } from "./cancellations.js";

export interface ControlConsumer {
  stop(): Promise<void>;
}

export async function startControlConsumer(options: {
  kafka: KafkaConfig;
  /** Finds where the memory starts, and the partitions' ends for the reader's watchdog. */
  admin: KafkaAdmin;
  topic: string;
  /** A private group of the worker's (contracts/kafka-acls.ts): never joined, nothing committed. */
  groupId: string;
  cancellations: Cancellations;
  logger: Logger;
  rememberMs?: number;
}): Promise<ControlConsumer> {
  const rememberMs = options.rememberMs ?? CANCEL_MEMORY_MS;
  const { admin, topic, logger } = options;
  const apply = (value: Buffer | null, offset: number) => {
    const decoded = decodeRecord(controlRecordSchema, value);
    if (!decoded.ok) {
      logger.warn({ offset, reason: decoded.reason }, "ignored malformed control record");
      return;
    }
    const record = decoded.value;
    if (Date.now() - record.at > rememberMs) return;
    const stopped = options.cancellations.cancel(record.request_id, record.tenant, record.reason ?? "cancelled by the client", record.at);
    if (stopped) logger.info({ request_id: record.request_id }, "cancel: generation stopped");
  };
  const reader = new AssignedReader({
    kafka: options.kafka,
    topic,
    name: "cancel-reader",
    groupId: options.groupId,
    logger,
    onRecords: (records) => {
      for (const r of records) apply(r.value, r.offset);
    },
    // A reader that stopped fetching would let cancels go unheard: its watchdog compares with these.
    ends: async () => new Map((await admin.offsets(topic)).map((o) => [o.partition, o.high])),
  });
  const from = await startOffsets(admin, topic, rememberMs, logger);
  await reader.start();
  for (const [partition, offset] of from) reader.add(partition, offset);
  logger.debug({ partitions: [...from.keys()] }, "reading chat.control");
  return { stop: () => reader.stop() };
}

/** How long the start waits for Kafka to say where the memory starts before the worker fails (ms). */
const START_WAIT_MS = 30_000;

/** Each partition's first offset within the memory; asked again while Kafka does not answer (a broker still starting). */
async function startOffsets(admin: KafkaAdmin, topic: string, rememberMs: number, logger: Logger): Promise<Map<number, number>> {
  const deadline = Date.now() + START_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await admin.offsetsAt(topic, Date.now() - rememberMs);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      logger.warn({ err, attempt }, "cannot find where chat.control's cancels start yet; retrying");
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** attempt)));
    }
  }
}
