/**
 * Every worker reads all of chat.control (a group of its own), so a cancel reaches the
 * worker running the request whichever it is. It reads from the beginning and ignores
 * records older than the cancellation memory, so a worker that has just taken over a
 * request still honours a cancel sent moments before.
 */
import { randomUUID } from "node:crypto";
import type { Consumer, Kafka } from "kafkajs";
import { controlRecordSchema, decodeRecord } from "../contracts/records.js";
import { SOLE_READER, handleConsumerCrash } from "../platform/kafka.js";
import type { Logger } from "../platform/logger.js";
import { CANCEL_MEMORY_MS, type Cancellations } from "./cancellations.js";

export async function startControlConsumer(options: {
  kafka: Kafka;
  topic: string;
  groupPrefix: string;
  cancellations: Cancellations;
  logger: Logger;
  rememberMs?: number;
}): Promise<Consumer> {
  const rememberMs = options.rememberMs ?? CANCEL_MEMORY_MS;
  // Its own group: cancels must keep flowing, and rejoin quickly after a broker restart.
  const consumer = options.kafka.consumer({ ...SOLE_READER, groupId: `${options.groupPrefix}.control.${randomUUID()}` });
  const apply = (value: Buffer | null, offset: string) => {
    const decoded = decodeRecord(controlRecordSchema, value);
    if (!decoded.ok) {
      options.logger.warn({ offset, reason: decoded.reason }, "ignored malformed control record");
      return;
    }
    const record = decoded.value;
    if (Date.now() - record.at > rememberMs) return;
    const stopped = options.cancellations.cancel(record.request_id, record.tenant, record.reason ?? "cancelled by the client", record.at);
    if (stopped) options.logger.info({ request_id: record.request_id }, "cancel: generation stopped");
  };
  const run = async () => {
    await consumer.connect();
    await consumer.subscribe({ topic: options.topic, fromBeginning: true });
    await consumer.run({ autoCommit: false, eachMessage: async ({ message }) => apply(message.value, message.offset) });
  };
  // A cancel reader that stopped would let cancels go unheard: run it again.
  handleConsumerCrash(consumer, { name: "cancel reader", logger: options.logger, restart: run });
  await run();
  return consumer;
}
