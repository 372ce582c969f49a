/**
 * The worker's membership in the group on chat.requests, in three parts:
 *
 *   group consumer (platform/kafka/group-consumer.ts) ─ records ─▶ turn scheduler ─▶ runRequest
 *        │ assigned / revoked                                   ▲ pause / resume
 *        └──────────────▶ memory store (restore, drop) ─────────┘ commit
 *
 * The consumer only fetches and hands records over; the scheduler runs each partition's
 * turns one at a time off the fetch loop; a revocation waits for the partition's running
 * turn (within DRAIN_TIMEOUT_MS, then a handover) before the partition is released, so a
 * graceful move loses no work and the partitions that stay never stop.
 */
import type { WorkerConfig } from "../contracts/config/worker.js";
import type { TopicNames } from "../contracts/topics.js";
import { GroupConsumer } from "../platform/kafka/group-consumer.js";
import type { KafkaProducer, RecordSink } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";
import type { MemoryStore } from "./memory-store.js";
import type { WorkerMetrics } from "./metrics.js";
import { runRequest, type TurnContext } from "./turn.js";
import { TurnScheduler, type RequestRecord } from "./turn-scheduler.js";

export interface RequestLoop {
  /** True once the group has given this worker its first assignment. */
  joined(): boolean;
  /** Turns running now. */
  running(): number;
  /**
   * SIGTERM: stops taking records, lets running turns finish within `drainMs` (then hands
   * them over), commits, and leaves the group. Resolves once the worker is out of the group.
   */
  drainAndLeave(drainMs: number): Promise<void>;
}

export async function startRequestLoop(options: {
  config: WorkerConfig;
  topics: TopicNames;
  memory: MemoryStore;
  turn: TurnContext;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Called when the consumer stopped for good. */
  onFatal(error: Error): void;
  /** The group member's client.id (it carries the worker's query address); default KAFKA_CLIENT_ID. */
  clientId?: string;
  /** WORKER_TRANSACTIONS: the producer a turn's transaction goes through, with its offset at this member's generation. */
  transactional?: KafkaProducer | null;
}): Promise<RequestLoop> {
  const { config, topics, memory, metrics, logger } = options;
  const transactional = options.transactional ?? null;
  const consumer = new GroupConsumer({
    kafka: config.kafka,
    groupId: config.workerGroupId,
    topic: topics.requests,
    protocol: config.consumer.groupProtocol,
    sessionTimeoutMs: config.consumer.sessionTimeoutMs,
    heartbeatIntervalMs: config.consumer.heartbeatIntervalMs,
    rebalanceTimeoutMs: config.consumer.rebalanceTimeoutMs,
    ...(options.clientId !== undefined && { clientId: options.clientId }),
    logger,
  });

  const scheduler = new TurnScheduler({
    concurrency: config.generation.slots,
    pause: (p) => consumer.pause(p),
    resume: (p) => consumer.resume(p),
    logger,
    run: async (record: RequestRecord, revoke: AbortSignal) => {
      const outcome = await runRequest(
        {
          ...record,
          revoke,
          commit: () => consumer.commit(record.partition, (BigInt(record.offset) + 1n).toString()),
          ...(transactional && {
            transaction: <T>(work: (sink: RecordSink) => Promise<T>) =>
              transactional.transaction(work, {
                consumer: consumer.native(),
                offsets: [{ topic: topics.requests, partition: record.partition, offset: Number(record.offset) + 1 }],
              }),
          }),
        },
        options.turn,
      );
      return outcome === "retry" ? "retry" : "done";
    },
  });

  const updatePartitions = () => {
    const held = consumer.assigned;
    metrics.assignedPartitions.set(held.length);
    memory.assign(held);
  };

  await consumer.start({
    onAssigned: (partitions) => {
      metrics.rebalances.inc();
      updatePartitions();
      logger.info({ protocol: consumer.protocol, added: partitions, partitions: consumer.assigned }, "partitions assigned");
    },
    onRevoked: async (partitions, lost) => {
      metrics.rebalances.inc();
      for (const p of partitions) metrics.partitionLag.remove({ topic: topics.requests, partition: String(p) });
      logger.info({ revoked: partitions, lost, running: scheduler.running }, lost ? "partitions lost" : "partitions revoked; draining their turns");
      const started = performance.now();
      await scheduler.revoke(partitions, { drainMs: config.drainTimeoutMs, lost });
      updatePartitions();
      logger.info({ revoked: partitions, drain_ms: Math.round(performance.now() - started), partitions: consumer.assigned }, "partitions released");
    },
    onRecord: (record) => {
      metrics.partitionLag.set({ topic: record.topic, partition: String(record.partition) }, record.lag);
      scheduler.offer(record);
    },
    onFatal: options.onFatal,
  });

  return {
    joined: () => consumer.joined,
    running: () => scheduler.running,
    async drainAndLeave(drainMs: number) {
      await scheduler.close(drainMs);
      await consumer.close();
    },
  };
}
