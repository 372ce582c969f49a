/**
 * The scale benchmark's Kafka adapter: the same small consumer surface over
 *
 *   kafkajs                 the worker as it was before KIP-848: eager rebalancing, each
 *                           turn inside eachMessage (heartbeats sent from inside it)
 *   platformatic-consumer   @platformatic/kafka with group.protocol=consumer (KIP-848),
 *                           turns run by the worker's TurnScheduler off the stream
 *   confluent-consumer      the worker as shipped: platform/group-consumer.ts (librdkafka,
 *                           KIP-848) and worker/turn-scheduler.ts, the default drain bound
 *   confluent-consumer-drain1s   the same with a 1 s drain bound, so in-flight turns of
 *                           moved partitions are handed over rather than finished
 *   confluent-classic       the shipped consumer on the classic protocol (cooperative-sticky)
 *
 * Every client is made through the project's Kafka module where the project uses it.
 */
import { createKafka, createGroupConsumer } from "../../platform/kafka.js";
import { createLogger } from "../../platform/logger.js";
import { loadWorkerConfig } from "../../contracts/config.js";
import { TurnScheduler, type RequestRecord, type RevokeCause } from "../../worker/turn-scheduler.js";
import { benchKafkaConfig } from "../lib/stack.js";

export type ClientKind = "kafkajs" | "platformatic-consumer" | "confluent-consumer" | "confluent-consumer-drain1s" | "confluent-classic";

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

/** kafkajs as the worker used it before KIP-848: eager rebalancing, heartbeats from inside a long message. */
async function kafkajsConsumer(s: ConsumerSettings): Promise<SimConsumer> {
  const kafka = createKafka(benchKafkaConfig(s.brokers, s.memberName), createLogger("sim", "fatal"));
  const consumer = kafka.consumer({
    groupId: s.groupId,
    sessionTimeout: s.sessionTimeoutMs,
    rebalanceTimeout: s.rebalanceTimeoutMs,
    heartbeatInterval: s.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 500,
  });
  const LOST = new Set(["UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "FENCED_INSTANCE_ID"]);
  return {
    async start(handler, onAssignment) {
      let held: number[] = [];
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        const now = payload.memberAssignment[s.topic] ?? [];
        if (held.length) onAssignment("revoked", held);
        onAssignment("assigned", now);
        held = [...now];
      });
      await consumer.connect();
      await consumer.subscribe({ topic: s.topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: s.concurrency,
        eachMessage: async ({ partition, message, heartbeat }) => {
          const lost = new AbortController();
          const beat = setInterval(() => {
            heartbeat().catch((err: Error & { type?: string }) => {
              if (err.type && LOST.has(err.type)) lost.abort({ kind: "lost" } satisfies RevokeCause);
            });
          }, s.heartbeatIntervalMs);
          try {
            await handler({ partition, offset: message.offset, lost: lost.signal });
          } finally {
            clearInterval(beat);
          }
          if (!lost.signal.aborted) await consumer.commitOffsets([{ topic: s.topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
        },
      });
    },
    async stop() {
      await consumer.stop();
      await consumer.disconnect();
    },
  };
}

/** The worker's scheduler around a sim handler: the record's turn, committed by `commit`. */
function simScheduler(s: ConsumerSettings, handler: Handler, io: { pause(p: number): void; resume(p: number): void; commit(r: RequestRecord): Promise<void> }) {
  return new TurnScheduler({
    concurrency: s.concurrency,
    logger: createLogger("sim", "fatal"),
    pause: io.pause,
    resume: io.resume,
    run: async (record, revoke) => {
      await handler({ partition: record.partition, offset: record.offset, lost: revoke });
      if (revoke.aborted) return "done"; // handed over or lost: left uncommitted for the next owner
      await io.commit(record);
      return "done";
    },
  });
}

/** The shipped consumer: librdkafka (KIP-848 or classic cooperative-sticky) + the TurnScheduler. */
async function confluentConsumer(s: ConsumerSettings, protocol: "consumer" | "classic", drainMs: number): Promise<SimConsumer> {
  const consumer = createGroupConsumer(benchKafkaConfig(s.brokers, s.memberName), {
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
        commit: (r) => consumer.commit(r.partition, (BigInt(r.offset) + 1n).toString()),
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

/**
 * @platformatic/kafka with the consumer protocol. It acknowledges a revocation as soon as the
 * broker asks, with no hook to finish in-flight work first, so a revoked partition's running
 * turn can only be stopped (counted as aborted; its next owner runs it again). It cannot pause
 * one partition of a stream: records wait in the scheduler instead.
 */
async function platformaticConsumer(s: ConsumerSettings): Promise<SimConsumer> {
  const { Consumer } = await import("@platformatic/kafka");
  const login = benchKafkaConfig(s.brokers, s.memberName).sasl;
  const consumer = new Consumer({
    clientId: s.memberName,
    bootstrapBrokers: [s.brokers],
    ...(login && { sasl: { mechanism: "SCRAM-SHA-512" as const, username: login.username, password: login.password } }),
    groupId: s.groupId,
    groupProtocol: "consumer",
    rebalanceTimeout: s.rebalanceTimeoutMs,
    maxWaitTime: 100,
  });
  const messages = new Map<string, { commit(): void | Promise<void> }>();
  let held = new Set<number>();
  let watch: NodeJS.Timeout | undefined;
  let scheduler: TurnScheduler | null = null;
  let stream: { close(): Promise<void> } | null = null;
  return {
    async start(handler, onAssignment) {
      const sched = simScheduler(s, handler, {
        pause: () => {},
        resume: () => {},
        commit: async (r) => {
          const key = `${r.partition}/${r.offset}`;
          await messages.get(key)?.commit();
          messages.delete(key);
        },
      });
      scheduler = sched;
      // Its assignment changes are seen by watching consumer.assignments.
      watch = setInterval(() => {
        const now = new Set((consumer.assignments ?? []).filter((a) => a.topic === s.topic).flatMap((a) => a.partitions));
        const gone = [...held].filter((p) => !now.has(p));
        const added = [...now].filter((p) => !held.has(p));
        held = now;
        if (gone.length) {
          onAssignment("revoked", gone);
          void sched.revoke(gone, { drainMs: 0, lost: true });
        }
        if (added.length) onAssignment("assigned", added);
      }, 50);
      const messagesStream = await consumer.consume({ topics: [s.topic], mode: "committed", fallbackMode: "earliest", autocommit: false });
      stream = messagesStream;
      messagesStream.on(
        "data",
        (m: { topic: string; partition: number; offset: bigint; key: Buffer | null; value: Buffer | null; commit(): void | Promise<void> }) => {
          const record: RequestRecord = { topic: m.topic, partition: m.partition, offset: m.offset.toString(), key: m.key, value: m.value };
          messages.set(`${record.partition}/${record.offset}`, m);
          sched.offer(record);
        },
      );
    },
    async stop() {
      await scheduler?.close(SHIPPED_DRAIN_MS);
      clearInterval(watch);
      await stream?.close();
      await consumer.close();
    },
  };
}

export async function createSimConsumer(kind: ClientKind, settings: ConsumerSettings): Promise<SimConsumer> {
  switch (kind) {
    case "kafkajs":
      return kafkajsConsumer(settings);
    case "platformatic-consumer":
      return platformaticConsumer(settings);
    case "confluent-consumer":
      return confluentConsumer(settings, "consumer", SHIPPED_DRAIN_MS);
    case "confluent-consumer-drain1s":
      return confluentConsumer(settings, "consumer", 1000);
    case "confluent-classic":
      return confluentConsumer(settings, "classic", SHIPPED_DRAIN_MS);
  }
}
