/**
 * Every gateway replica reads all of chat.events (a group of its own, starting at the
 * latest offset, committing nothing) and feeds the hub.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import type { Consumer, Kafka } from "kafkajs";
import { chatEventSchema, decodeRecord } from "../contracts/records.js";
import type { Logger } from "../platform/logger.js";
import type { EventHub } from "./event-hub.js";

export async function startEventConsumer(kafka: Kafka, topic: string, hub: EventHub, logger: Logger): Promise<Consumer> {
  const consumer = kafka.consumer({
    groupId: `kafka-llm-gateway-${os.hostname()}-${randomUUID()}`,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 500,
  });
  // Ready once the first fetch is done: by then the start offsets are fixed, so any event
  // produced for a request accepted afterwards will be read.
  const firstFetch = new Promise<void>((resolve) => {
    const remove = consumer.on(consumer.events.FETCH, () => {
      remove();
      resolve();
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: false });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const decoded = decodeRecord(chatEventSchema, message.value);
      if (!decoded.ok) {
        logger.warn({ partition, offset: message.offset, reason: decoded.reason }, "ignored malformed event");
        return;
      }
      hub.accept(decoded.value);
    },
  });
  await firstFetch;
  return consumer;
}
