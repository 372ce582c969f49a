/**
 * Sends a record that cannot be processed to chat.requests.dlq: the original key and
 * bytes, and headers saying why and where it came from, so nothing is lost and an
 * operator can inspect or replay it.
 */
import type { KafkaMessage, Producer } from "kafkajs";
import { DLQ_HEADERS } from "../contracts/topics.js";

export interface DeadLetterSource {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

export async function deadLetter(
  producer: Producer,
  dlqTopic: string,
  source: DeadLetterSource,
  reason: string,
  workerId: string,
): Promise<void> {
  await producer.send({
    topic: dlqTopic,
    acks: -1,
    messages: [
      {
        key: source.message.key,
        value: source.message.value,
        headers: {
          ...source.message.headers,
          [DLQ_HEADERS.reason]: reason.slice(0, 2000),
          [DLQ_HEADERS.topic]: source.topic,
          [DLQ_HEADERS.partition]: String(source.partition),
          [DLQ_HEADERS.offset]: source.message.offset,
          [DLQ_HEADERS.workerId]: workerId,
        },
      },
    ],
  });
}
