/**
 * The scale benchmark's Kafka adapter: the same small consumer surface over the worker's
 * group consumer (platform/kafka/group-consumer.ts: librdkafka) and worker/turn-scheduler.ts,
 * in three settings:
 *
 *   confluent-consumer      the worker as shipped: KIP-848, the default drain bound
 *   confluent-consumer-drain1s   the same with a 1 s drain bound, so in-flight turns of
 *                           moved partitions are handed over rather than finished
 *   confluent-classic       the shipped consumer on the classic protocol (cooperative-sticky)
 *
 * Earlier runs also measured kafkajs (eager rebalancing) and @platformatic/kafka (KIP-848)
 * here; their figures stay in bench/results/scale.json's history and docs/benchmarks.md,
 * and the clients left the project.
 */
import { GroupConsumer } from "../../platform/kafka/group-consumer.js";
import { createLogger } from "../../platform/logger.js";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { TurnScheduler } from "../../worker/turn-scheduler.js";
import { benchKafkaConfig } from "../lib/stack.js";

export type ClientKind = "confluent-consumer" | "confluent-consumer-drain1s" | "confluent-classic";

/** The shipped drain bound (DRAIN_TIMEOUT_MS's default). */
const SHIPPED_DRAIN_MS = loadWorkerConfig({ MODEL: "-", WORKER_HTTP_HOST: "127.0.0.1" }).drainTimeoutMs;

export interface ConsumerSettings {
  brokers: string;
  groupId: string;
  topic: string;
  /** This member's name; with static membership also its group.instance.id. */
  memberName: string;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  concurrency: number;
}

export interface Handler {
  /**
   * `lost` aborts when the turn must stop: its reason is a RevokeCause (`lost`: the
   * partition already moved; `handover`: the drain bound passed, hand the reply over).
   */
  (message: { partition: number; offset: string; lost: AbortSignal }): Promise<void>;
}

export interface SimConsumer {
  /** Joins and runs `handler` for each record; commits each record after its handler returns. */
  start(handler: Handler, onAssignment: (event: "assigned" | "revoked", partitions: number[]) => void): Promise<void>;
  /** Stops taking records, lets running handlers finish, leaves the group. */
  stop(): Promise<void>;
}

/** The worker's scheduler around a sim handler: the record's turn, committed by `commit`. */
function simScheduler(
  s: ConsumerSettings,
  handler: Handler,
  io: { pause(p: number): void; resume(p: number): void; commit(partition: number, next: bigint): Promise<void> },
) {
  return new TurnScheduler({
    concurrency: s.concurrency,
    logger: createLogger("sim", "fatal"),
    pause: io.pause,
    resume: io.resume,
    run: async (record, revoke, _first, position) => {
      await handler({ partition: record.partition, offset: record.offset, lost: revoke });
      if (revoke.aborted) return "done"; // handed over or lost: left uncommitted for the next owner
      const to = position.next();
      if (position.settle(to)) await io.commit(record.partition, to);
      return "done";
    },
  });
}

/** The shipped consumer: librdkafka (KIP-848 or classic cooperative-sticky) + the TurnScheduler. */
async function confluentConsumer(s: ConsumerSettings, protocol: "consumer" | "classic", drainMs: number): Promise<SimConsumer> {
  const consumer = new GroupConsumer({
    kafka: benchKafkaConfig(s.brokers, s.memberName),
    groupId: s.groupId,
    topic: s.topic,
    protocol,
    sessionTimeoutMs: s.sessionTimeoutMs,
    heartbeatIntervalMs: s.heartbeatIntervalMs,
    rebalanceTimeoutMs: s.rebalanceTimeoutMs,
    logger: createLogger("sim", "fatal"),
  });
  let scheduler: TurnScheduler | null = null;
  return {
    async start(handler, onAssignment) {
      const sched = simScheduler(s, handler, {
        pause: (p) => consumer.pause(p),
        resume: (p) => consumer.resume(p),
        commit: (partition, next) => consumer.commit(partition, next.toString()),
      });
      scheduler = sched;
      await consumer.start({
        onAssigned: (partitions) => onAssignment("assigned", partitions),
        onRevoked: async (partitions, lost) => {
          onAssignment("revoked", partitions);
          await sched.revoke(partitions, { drainMs, lost });
        },
        onRecord: (record) => sched.offer(record),
        onFatal: (err) => {
          throw err;
        },
      });
    },
    async stop() {
      await scheduler?.close(drainMs);
      await consumer.close();
    },
  };
}

export async function createSimConsumer(kind: ClientKind, settings: ConsumerSettings): Promise<SimConsumer> {
  switch (kind) {
    case "confluent-consumer":
      return confluentConsumer(settings, "consumer", SHIPPED_DRAIN_MS);
    case "confluent-consumer-drain1s":
      return confluentConsumer(settings, "consumer", 1000);
    case "confluent-classic":
      return confluentConsumer(settings, "classic", SHIPPED_DRAIN_MS);
  }
}
