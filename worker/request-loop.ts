/**
 * The worker's membership in the group on chat.requests, in three parts:
 *
 *   group consumer (platform/kafka/group-consumer.ts) ─ records ─▶ turn scheduler ─▶ runRequest
 *        │ assigned / revoked                                   ▲ pause / resume
 *        └──────────────▶ memory store (restore, drop) ─────────┘ commit
 *
 * The consumer only fetches and hands records over; the scheduler runs the turns off the
 * fetch loop, a conversation's one at a time and a partition's conversations side by side,
 * and commits each partition up to its lowest record not done; a revocation waits for the
 * partition's running turns (within DRAIN_TIMEOUT_MS, then a handover) before it is released, so a
 * graceful move loses no work and the partitions that stay never stop. Attempts at each
 * record are counted (worker/attempts.ts): one that has had MAX_REQUEST_ATTEMPTS, or can
 * never succeed, is dead-lettered, its client told, and its offset committed, so its
 * partition goes on.
 */
import type { WorkerConfig } from "../contracts/config/worker.js";
import type { TopicNames } from "../contracts/topics.js";
import { GroupConsumer } from "../platform/kafka/group-consumer.js";
import type { KafkaProducer, RecordSink } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";
import type { MemoryStore } from "./memory-store.js";
import type { WorkerMetrics } from "./metrics.js";
import { AttemptLedger, type GivenUp } from "./attempts.js";
import { deadLetterRequest } from "./dead-letter.js";
import { runRequest, type TurnContext, type TurnOutcome } from "./turn.js";
import { TurnScheduler, type RecordCommit, type RequestRecord } from "./turn-scheduler.js";

export interface RequestLoop {
  /** True once the group has given this worker its first assignment. */
  joined(): boolean;
  /** Turns running now. */
  running(): number;
  /** When the request consumer's poll loop last returned (ms since the epoch): liveness. */
  polledAt(): number;
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
  const attempts = new AttemptLedger(memory, config.maxRequestAttempts, logger);
  const consumer = new GroupConsumer({
    kafka: config.kafka,
    groupId: config.pool.group,
    topic: topics.requests,
    protocol: config.consumer.groupProtocol,
    sessionTimeoutMs: config.consumer.sessionTimeoutMs,
    heartbeatIntervalMs: config.consumer.heartbeatIntervalMs,
    rebalanceTimeoutMs: config.consumer.rebalanceTimeoutMs,
    ...(options.clientId !== undefined && { clientId: options.clientId }),
    logger,
  });

  const scheduler = new TurnScheduler({
    // Every slot: the base model's and each adapter's.
    concurrency: config.generation.slots + config.pool.adapters.length * config.pool.adapterSlots,
    pause: (p) => consumer.pause(p),
    resume: (p) => consumer.resume(p),
    logger,
    run: async (record: RequestRecord, revoke: AbortSignal, first: boolean, position: RecordCommit) => {
      // The partition's committed offset moves to its lowest record not done (turn-scheduler.ts).
      const commit = async () => {
        const to = position.next();
        if (position.settle(to)) await consumer.commit(record.partition, to.toString());
      };
      // A request that will not succeed: dead-lettered, its client told, its offset committed.
      const giveUp = async (why: GivenUp) => {
        await deadLetterRequest(record, why, options.turn);
        await commit();
        metrics.requests.inc({ outcome: "dead_lettered" });
        await attempts.done(record);
        return "done" as const;
      };
      const refused = await attempts.begin(record, first);
      if (refused) return giveUp(refused);
      let outcome: TurnOutcome;
      try {
        outcome = await runRequest(
          {
            ...record,
            revoke,
            commit,
            ...(transactional && {
              transaction: <T>(work: (sink: RecordSink) => Promise<T>, onCommitted?: () => void) => {
                // Taken when the transaction begins (transactions run one after another), and
                // settled as it commits, so the next one's offset counts this record done.
                let to = 0n;
                return transactional.transaction(work, {
                  consumer: consumer.native(),
                  offsets: () => {
                    to = position.next();
                    return [{ topic: topics.requests, partition: record.partition, offset: Number(to) }];
                  },
                  onCommitted: () => {
                    position.settle(to);
                    onCommitted?.();
                  },
                });
              },
            }),
          },
          options.turn,
        );
      } catch (err) {
        const failed = revoke.aborted ? null : attempts.failed(record, err);
        if (!failed) throw err; // the scheduler runs it again after a back-off
        return giveUp(failed);
      }
      if (outcome === "retry") return "retry";
      // Handed over or lost: the next owner runs it, and reads its marker.
      if (outcome === "handed_over" || outcome === "lost") await attempts.interrupted(record);
      else await attempts.done(record);
      return "done";
    },
  });

  metrics.watchEngine({ slots: options.turn.slots, scheduler });

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
      for (const p of partitions) attempts.drop(p);
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
    polledAt: () => consumer.polledAt,
    async drainAndLeave(drainMs: number) {
      await scheduler.close(drainMs);
      await consumer.close();
    },
  };
}
