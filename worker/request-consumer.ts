/**
 * The worker's membership in the consumer group on chat.requests. Partitions are processed
 * concurrently (up to the slots), each in order. It restores a partition's memory when the
 * partition is gained, heartbeats while a generation runs (a long one must not cost the
 * worker its partitions), stops a turn whose partition was lost, and commits a record only
 * after its turn is written.
 */
import type { Consumer, Kafka } from "kafkajs";
import type { WorkerConfig } from "../contracts/config.js";
import type { TopicNames } from "../contracts/topics.js";
import type { Logger } from "../platform/logger.js";
import type { MemoryStore } from "./memory-store.js";
import type { WorkerMetrics } from "./metrics.js";
import { runTurn, type TurnContext } from "./turn.js";

export interface RequestConsumer {
  readonly consumer: Consumer;
  /** True while the worker is a member of the group. */
  joined(): boolean;
  /** Stops taking new records; resolves once the running turns have returned. */
  stopFetching(): Promise<void>;
  /** Leaves the group (after stopFetching). */
  leave(): Promise<void>;
}

/** Heartbeat errors that mean this member is no longer the owner of its partitions. */
const LOST_MEMBERSHIP = new Set(["UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "FENCED_INSTANCE_ID"]);

export async function startRequestConsumer(options: {
  kafka: Kafka;
  config: WorkerConfig;
  topics: TopicNames;
  memory: MemoryStore;
  turn: TurnContext;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Called when the consumer stopped for good. */
  onFatal(error: Error): void;
}): Promise<RequestConsumer> {
  const { config, topics, memory, metrics, logger } = options;
  const consumer = options.kafka.consumer({
    groupId: config.groupId,
    sessionTimeout: config.consumer.sessionTimeoutMs,
    rebalanceTimeout: config.consumer.rebalanceTimeoutMs,
    heartbeatInterval: config.consumer.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 500,
  });
  let joined = false;
  let assigned: number[] = [];

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    joined = true;
    const partitions = payload.memberAssignment[topics.requests] ?? [];
    for (const p of assigned) if (!partitions.includes(p)) metrics.partitionLag.remove({ topic: topics.requests, partition: String(p) });
    assigned = [...partitions];
    memory.assign(partitions);
    metrics.rebalances.inc();
    metrics.assignedPartitions.set(partitions.length);
    logger.info({ memberId: payload.memberId, partitions }, "joined consumer group");
  });
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    metrics.partitionLag.set({ topic: payload.topic, partition: String(payload.partition) }, Number(payload.offsetLag));
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    joined = false;
    logger.error({ err: payload.error?.message, restart: payload.restart }, "consumer crashed");
    // kafkajs gives up on errors it deems permanent: a worker that consumes nothing must
    // not look alive, so it exits and its partitions move to the others.
    if (!payload.restart) options.onFatal(payload.error);
  });
  consumer.on(consumer.events.STOP, () => {
    joined = false;
  });

  await consumer.connect();
  // A new group starts at the oldest request: queued work is never skipped.
  await consumer.subscribe({ topic: topics.requests, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: config.generation.slots,
    eachMessage: async ({ topic, partition, message, heartbeat }) => {
      // Fetch this record again rather than move past it: the seek also stops kafkajs from
      // handing over the rest of the batch, so later records never overtake it.
      const requeue = () => consumer.seek({ topic, partition, offset: message.offset });
      // A worker that was frozen (GC pause, stalled VM) may hold records of a partition that
      // has moved on: ask the coordinator first. kafkajs sends a heartbeat here only when
      // the interval has passed, which after a freeze it has.
      try {
        await heartbeat();
      } catch (err) {
        const type = (err as { type?: string }).type ?? "";
        if (LOST_MEMBERSHIP.has(type) || type === "REBALANCE_IN_PROGRESS") {
          logger.warn({ partition, offset: message.offset, err: type }, "not taking a record: group membership is changing");
          requeue();
          return;
        }
      }
      const revoked = new AbortController();
      const beat = setInterval(() => {
        heartbeat().catch((err: Error & { type?: string }) => {
          if (err.type && LOST_MEMBERSHIP.has(err.type)) {
            logger.warn({ partition, err: err.type }, "lost group membership during a turn; stopping it");
            revoked.abort();
          }
        });
      }, config.consumer.heartbeatIntervalMs);
      try {
        await runTurn(
          {
            topic,
            partition,
            message,
            revoked: revoked.signal,
            requeue,
            commit: () => consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]),
          },
          options.turn,
        );
      } finally {
        clearInterval(beat);
      }
    },
  });

  return {
    consumer,
    joined: () => joined,
    // kafkajs stops fetching at once and lets the running eachMessage calls return.
    stopFetching: () => consumer.stop(),
    leave: () => consumer.disconnect(),
  };
}
