/**
 * Every worker reads all of chat.control (a group of its own), so a cancel reaches the
 * worker running the request whichever it is. It reads from the beginning and ignores
 * records older than the cancellation memory, so a worker that has just taken over a
 * request still honours a cancel sent moments before.
 */
import { randomUUID } from "node:crypto";
import type { Consumer, Kafka } from "kafkajs";
import { controlRecordSchema, decodeRecord } from "../contracts/records.js";
import { SOLE_READER, watchConsumerCrash } from "../platform/kafka.js";
import type { Logger } from "../platform/logger.js";
import { CANCEL_MEMORY_MS, type Cancellations } from "./cancellations.js";

export async function startControlConsumer(options: {
  kafka: Kafka;
  topic: string;
  groupPrefix: string;
  cancellations: Cancellations;
  logger: Logger;
  rememberMs?: number;
  /** The reader stopped for good (the worker exits so its partitions move). */
  onFatal(error: Error): void;
}): Promise<Consumer> {
  const rememberMs = options.rememberMs ?? CANCEL_MEMORY_MS;
  // Its own group: cancels must keep flowing, and rejoin quickly after a broker restart.
  const consumer = options.kafka.consumer({ ...SOLE_READER, groupId: `${options.groupPrefix}.control.${randomUUID()}` });
  watchConsumerCrash(consumer, { name: "cancel reader", logger: options.logger, onFatal: options.onFatal });
  await consumer.connect();
  await consumer.subscribe({ topic: options.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      const decoded = decodeRecord(controlRecordSchema, message.value);
      if (!decoded.ok) {
        options.logger.warn({ offset: message.offset, reason: decoded.reason }, "ignored malformed control record");
        return;
      }
      const record = decoded.value;
      if (Date.now() - record.at > rememberMs) return;
      const stopped = options.cancellations.cancel(record.request_id, record.tenant, record.reason ?? "cancelled by the client", record.at);
      if (stopped) options.logger.info({ request_id: record.request_id }, "cancel: generation stopped");
    },
  });
  return consumer;
}
