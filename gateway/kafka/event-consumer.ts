/**
 * Every gateway replica reads all of chat.requests (a consumer group of its own) and feeds
 * the hub, so any replica can answer status for any request, whichever replica accepted
 * it: chat.requests tells it a request exists (status "queued") before a worker starts it,
 * and which chat.events partition its events use (its `events_partition`, else the
 * default partitioner's by key); only ids, the tenant and that partition are kept, never
 * the content. chat.events is read by partition (event-partitions.ts): each replica reads
 * its own share, and others while a client here follows one of their requests.
 *
 * A new replica looks back: on start each partition is read from the first record newer
 * than now - REQUEST_STATE_TTL_MS, so it knows the requests still within their TTL. The
 * group commits its positions, so when the consumer restarts inside the process (after
 * Kafka was unreachable) it carries on where it was instead of skipping to the end.
 * The group id is unique per process (a private group of the gateways':
 * contracts/kafka-acls.ts); Kafka forgets it after offsets.retention.minutes.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import type { Admin, Consumer, Kafka } from "kafkajs";
import { privateGroup } from "../../contracts/kafka-acls.js";
import { chatRequestSchema, decodeRecord } from "../../contracts/records.js";
import type { TopicNames } from "../../contracts/topics.js";
import { handleConsumerCrash } from "../../platform/kafka.js";
import type { Logger } from "../../platform/logger.js";
import type { EventHub } from "../event-hub.js";
import { ReadProgress, type Offsets } from "./read-progress.js";

export interface EventConsumer {
  /** True once the look-back of chat.requests has been read (or timed out): the replica then knows recent requests. */
  caughtUp(): boolean;
  /** Why the consumer stopped for good (kafkajs gave up restarting it), or null while it runs. */
  failure(): string | null;
  stop(): Promise<void>;
}

export async function startEventConsumer(options: {
  kafka: Kafka;
  admin: Admin;
  topics: TopicNames;
  hub: EventHub;
  /** The gateways' group, under which this replica's own group is named. */
  gatewayGroup: string;
  lookBackMs: number;
  logger: Logger;
  /** Called with where each request was read in chat.requests (for the queue position). */
  onRequestRead?: (requestId: string, partition: number, offset: string) => void;
}): Promise<EventConsumer> {
  const { kafka, admin, topics, hub, logger } = options;
  const log = logger.child({ component: "event-consumer" });
  const read = [topics.requests];
  const consumer: Consumer = kafka.consumer({
    groupId: privateGroup(options.gatewayGroup, `requests.${os.hostname()}.${randomUUID()}`),
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 250,
  });
  const progress = new ReadProgress();
  progress.watch(consumer);

  // Where to start, and where "caught up" is: both fixed before the first fetch.
  const since = Date.now() - options.lookBackMs;
  const starts: Offsets = (
    await Promise.all(read.map(async (topic) => (await admin.fetchTopicOffsetsByTimestamp(topic, since)).map((p) => ({ topic, ...p }))))
  ).flat();
  const ends: Offsets = (
    await Promise.all(read.map(async (topic) => (await admin.fetchTopicOffsets(topic)).map((p) => ({ topic, partition: p.partition, offset: p.high }))))
  ).flat();
  for (const s of starts) progress.advance(s.topic, s.partition, BigInt(s.offset));

  // Seek on every join, not once after run(): run() comes back without a group when
  // kafkajs's first join failed (a broker whose group coordinator is still loading) and it
  // joins again later. Each join carries on from where this replica has read, the look-back
  // start at first; anything fetched before a seek applies is read again, and the hub
  // ignores it as a duplicate.
  consumer.on(consumer.events.GROUP_JOIN, () => {
    for (const { topic, partition } of starts) {
      const next = progress.next(topic, partition);
      if (next !== undefined) consumer.seek({ topic, partition, offset: next.toString() });
    }
  });
  await consumer.connect();
  for (const topic of read) await consumer.subscribe({ topic, fromBeginning: false });
  await consumer.run({
    autoCommit: true,
    autoCommitInterval: 1000,
    eachMessage: async ({ partition, message }) => {
      const decoded = decodeRecord(chatRequestSchema, message.value);
      // A malformed request is the workers' to dead-letter; nothing to track.
      if (decoded.ok) {
        const r = decoded.value;
        hub.track(r.request_id, r.conversation_id, r.tenant, r.events_partition);
        options.onRequestRead?.(r.request_id, partition, message.offset);
      }
    },
  });

  let caughtUp = false;
  const lookBackRead = progress.waitFor(ends, 60_000).then((reached) => {
    caughtUp = true;
    const counts = { tracked: hub.size, look_back_ms: options.lookBackMs };
    if (reached) log.info(counts, "read the look-back of chat.requests");
    else log.warn(counts, "look-back not read within 60 s; serving what has been read");
  });
  void lookBackRead;

  // /healthz fails once this is set, so the gateway is restarted.
  const failure = handleConsumerCrash(consumer, { name: "chat.events consumer", logger: log });

  return {
    caughtUp: () => caughtUp,
    failure,
    stop: () => consumer.disconnect(),
  };
}
