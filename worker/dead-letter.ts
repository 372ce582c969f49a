/**
 * Sends a record that cannot be processed to chat.requests.dlq: the original key and
 * bytes, and headers saying why and where it came from, so nothing is lost and an
 * operator can inspect or replay it.
 */
import { createHash } from "node:crypto";
import { DLQ_HEADERS } from "../contracts/records/dead-letter.js";
import { ErrorCode } from "../platform/kafka/native.js";
import type { RecordSink } from "../platform/kafka/producer.js";
import type { RequestRecord } from "./turn-scheduler.js";

/** How much of an oversized record's value a dead letter keeps. */
const TRUNCATED_BYTES = 64 * 1024;

/**
 * Sends the record to the dead-letter topic. A record near the size limit (the producer's
 * message.max.bytes, 1 MB, or the broker's) no longer fits once the reason headers are
 * added: then the dead letter keeps the first 64 KiB of the value, with the original size
 * and sha256, and points (topic, partition, offset) at the original, which stays in
 * chat.requests for its retention.
 */
export async function deadLetter(producer: RecordSink, dlqTopic: string, source: RequestRecord, reason: string, workerId: string): Promise<void> {
  const original = Object.entries(source.headers ?? {}).filter((h): h is [string, string | Buffer] => h[1] !== undefined);
  const headers: Record<string, string | Buffer> = {
    ...Object.fromEntries(original),
    [DLQ_HEADERS.reason]: reason.slice(0, 2000),
    [DLQ_HEADERS.topic]: source.topic,
    [DLQ_HEADERS.partition]: String(source.partition),
    [DLQ_HEADERS.offset]: source.offset,
    [DLQ_HEADERS.workerId]: workerId,
  };
  const send = (value: Buffer | null, extra: Record<string, string> = {}) =>
    producer.send({ topic: dlqTopic, messages: [{ key: source.key, value, headers: { ...headers, ...extra } }] });
  try {
    await send(source.value);
  } catch (err) {
    const value = source.value;
    // Refused by librdkafka before it was sent (over message.max.bytes), or by the broker.
    if ((err as { code?: unknown }).code !== ErrorCode.MSG_SIZE_TOO_LARGE || value === null) throw err;
    await send(value.subarray(0, TRUNCATED_BYTES), {
      [DLQ_HEADERS.truncated]: "true",
      [DLQ_HEADERS.originalBytes]: String(value.length),
      [DLQ_HEADERS.originalSha256]: createHash("sha256").update(value).digest("hex"),
    });
  }
}
