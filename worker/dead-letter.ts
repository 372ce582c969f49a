/**
 * Sends a record that cannot be processed to chat.requests.dlq: the original key and
 * bytes, and headers saying why and where it came from, so nothing is lost and an
 * operator can inspect or replay it. Its client is told too (deadLetterRequest): a
 * terminal `error` event goes to chat.events whenever the record's request id, tenant and
 * conversation can be read from it at all, even one that no longer matches the schema
 * (a gateway and a worker of different versions during a rolling upgrade), so no client
 * waits forever for a request nobody will answer.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { ErrorCode as ApiErrorCode } from "../contracts/errors.js";
import { loggableReason } from "../contracts/records/codec.js";
import { DLQ_HEADERS } from "../contracts/records/dead-letter.js";
import { conversationIdSchema, requestIdSchema, tenantSchema } from "../contracts/records/fields.js";
import { ErrorCode } from "../platform/kafka/native.js";
import type { RecordSink } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";
import type { GivenUp } from "./attempts.js";
import { EventWriter, eventsPartitionOf } from "./event-writer.js";
import type { WorkerMetrics } from "./metrics.js";
import type { RequestRecord } from "./turn-scheduler.js";

/** What deadLetterRequest needs of the turn's context (worker/turn.ts TurnContext). */
export interface DeadLetterContext {
  readonly producer: RecordSink;
  readonly topics: { readonly deadLetter: string; readonly events: string };
  readonly config: { readonly workerId: string; readonly kafka: { readonly eventPartitions: number } };
  readonly metrics: Pick<WorkerMetrics, "deadLettered">;
  readonly logger: Logger;
}

/** The fields of a request its client is found by, read from a record that may not be a valid request. */
const requestIdentitySchema = z.object({
  request_id: requestIdSchema,
  tenant: tenantSchema,
  conversation_id: conversationIdSchema,
  events_partition: z.number().int().nonnegative().optional().catch(undefined),
});

/**
 * Dead-letters a request (see deadLetter) and tells its client with a terminal error event
 * (`record_too_large` or `request_dead_lettered`) when the record says who that is. The
 * caller commits the record's offset after.
 */
export async function deadLetterRequest(record: RequestRecord, givenUp: GivenUp, ctx: DeadLetterContext): Promise<void> {
  // A record that is no request says why as it always has; one given up says why it was.
  const reason = givenUp.reason === "invalid_record" ? givenUp.detail : `${givenUp.reason}: ${givenUp.detail}`;
  await deadLetter(ctx.producer, ctx.topics.deadLetter, record, reason, ctx.config.workerId);
  ctx.metrics.deadLettered.inc({ reason: givenUp.reason });
  const who = requestIdentity(record.value);
  ctx.logger.warn(
    {
      partition: record.partition,
      offset: record.offset,
      reason: givenUp.reason,
      detail: loggableReason(givenUp.detail),
      ...(who && { request_id: who.request_id, tenant: who.tenant }),
    },
    "dead-lettered request",
  );
  if (!who) return;
  const code: ApiErrorCode = givenUp.reason === "record_too_large" ? "record_too_large" : "request_dead_lettered";
  const partition = eventsPartitionOf(who, ctx.config.kafka.eventPartitions, ctx.logger);
  const events = new EventWriter(ctx.producer, ctx.topics.events, who, `${ctx.config.workerId}.${Date.now().toString(36)}`, 0, partition);
  events.write({
    type: "error",
    code,
    message:
      code === "record_too_large"
        ? `request ${who.request_id} failed: a record it writes is larger than its topic accepts`
        : `request ${who.request_id} was not processed (${givenUp.reason}) and is kept on the dead letter topic`,
    retryable: false,
  });
  await events.settle();
}

/** The request id, tenant, conversation and events partition of a record's value, if its JSON has them (best effort). */
export function requestIdentity(value: Buffer | null): z.infer<typeof requestIdentitySchema> | null {
  if (value === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString("utf8"));
  } catch {
    return null;
  }
  const who = requestIdentitySchema.safeParse(parsed);
  return who.success ? who.data : null;
}

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
