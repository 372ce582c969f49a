/**
 * The scale benchmark's Kafka adapter: the same small consumer surface over the project's
 * Kafka module (platform/kafka.ts, kafkajs, eager rebalancing) and over
 * @confluentinc/kafka-javascript's KafkaJS-compatible API (librdkafka: cooperative-sticky
 * assignment, optionally static membership), configured the way platform/kafka.ts and
 * worker/request-consumer.ts configure kafkajs.
 *
 * @confluentinc/kafka-javascript is not a dependency of the project: it builds librdkafka
 * from source where no prebuilt binary can be downloaded. bench/scale/install-confluent.sh
 * puts it in .cache/confluent-kafka-javascript; confluentAvailable() says whether it is there.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { createKafka } from "../../platform/kafka.js";
import { createLogger } from "../../platform/logger.js";
import { REPO_ROOT } from "../../test/helpers/services.js";
import { benchKafkaConfig } from "../lib/stack.js";
import { stickyAssigner } from "./sticky-assigner.js";

export type ClientKind = "kafkajs" | "kafkajs-decoupled" | "kafkajs-decoupled-sticky" | "confluent-cooperative" | "confluent-cooperative-static" | "confluent-cooperative-default-cache";

export const CONFLUENT_DIR = path.join(REPO_ROOT, ".cache", "confluent-kafka-javascript", "node_modules", "@confluentinc", "kafka-javascript");

export function confluentAvailable(): boolean {
  return existsSync(path.join(CONFLUENT_DIR, "build", "Release", "confluent-kafka-javascript.node"));
}

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
  /** `lost` aborts when the client reports this member's assignment lost mid-message. */
  (message: { partition: number; offset: string; lost: AbortSignal }): Promise<void>;
}

export interface SimConsumer {
  /** Joins and runs `handler` for each record; commits each record after its handler returns. */
  start(handler: Handler, onAssignment: (event: "assigned" | "revoked", partitions: number[]) => void): Promise<void>;
  /** Stops taking records, lets running handlers finish, leaves the group. */
  stop(): Promise<void>;
}

/** kafkajs exactly as the worker uses it: eager rebalancing, heartbeats from inside a long message. */
async function kafkajsConsumer(s: ConsumerSettings, decoupled: boolean, sticky = false): Promise<SimConsumer> {
  if (decoupled) return kafkajsDecoupled(s, sticky);
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
              if (err.type && LOST.has(err.type)) lost.abort();
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

/**
 * kafkajs used differently (a proposal, not what the worker does): eachMessage hands the
 * record to its turn and returns at once, pausing the partition until the turn is done
 * and committed. kafkajs's fetch loop then never waits on a generation (it waits for all
 * batches of one fetch, so a worker's partitions otherwise start turns in lockstep), and
 * a rebalance never waits for running turns; a turn whose partition went to another
 * member is stopped (the revoked signal the worker already has), and the new owner runs it.
 * On stop, running turns finish and are committed before the member leaves (kafkajs drops
 * commits made after consumer.stop()).
 */
async function kafkajsDecoupled(s: ConsumerSettings, sticky: boolean): Promise<SimConsumer> {
  const kafka = createKafka(benchKafkaConfig(s.brokers, s.memberName), createLogger("sim", "fatal"));
  let held: number[] = [];
  const consumer = kafka.consumer({
    ...(sticky ? { partitionAssigners: [stickyAssigner(() => held)] } : {}),
    groupId: s.groupId,
    sessionTimeout: s.sessionTimeoutMs,
    rebalanceTimeout: s.rebalanceTimeoutMs,
    heartbeatInterval: s.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 500,
  });
  const running = new Map<number, { lost: AbortController; done: Promise<void> }>();
  let stopping = false;
  return {
    async start(handler, onAssignment) {
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        const now = payload.memberAssignment[s.topic] ?? [];
        if (held.length) onAssignment("revoked", held);
        onAssignment("assigned", now);
        held = [...now];
        for (const [p, turn] of running) if (!now.includes(p)) turn.lost.abort();
        // A partition kept across the rebalance stays paused while its turn runs.
        const busy = [...running.keys()].filter((p) => now.includes(p));
        if (busy.length) consumer.pause([{ topic: s.topic, partitions: busy }]);
      });
      await consumer.connect();
      await consumer.subscribe({ topic: s.topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: s.concurrency,
        eachMessage: async ({ partition, message, pause }) => {
          const resume = pause();
          const lost = new AbortController();
          const done = handler({ partition, offset: message.offset, lost: lost.signal }).then(async () => {
            running.delete(partition);
            if (!lost.signal.aborted) {
              await consumer.commitOffsets([{ topic: s.topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]).catch(() => {});
            }
            if (!stopping) resume();
          });
          running.set(partition, { lost, done });
        },
      });
    },
    async stop() {
      stopping = true;
      if (held.length) consumer.pause([{ topic: s.topic, partitions: held }]);
      await Promise.all([...running.values()].map((t) => t.done));
      await consumer.disconnect();
    },
  };
}

/** @confluentinc/kafka-javascript's KafkaJS API: cooperative-sticky, heartbeats by librdkafka. */
async function confluentConsumer(s: ConsumerSettings, staticMembership: boolean, largeCache: boolean): Promise<SimConsumer> {
  const require = createRequire(import.meta.url);
  const lib = require(CONFLUENT_DIR) as { KafkaJS: any };
  const { Kafka, logLevel, PartitionAssigners } = lib.KafkaJS;
  const kafka = new Kafka({ kafkaJS: { brokers: [s.brokers], clientId: s.memberName, logLevel: logLevel.NOTHING } });
  let onAssignment: (event: "assigned" | "revoked", partitions: number[]) => void = () => {};
  let lostController = new AbortController();
  const consumer = kafka.consumer({
    kafkaJS: {
      groupId: s.groupId,
      fromBeginning: true,
      autoCommit: false,
      sessionTimeout: s.sessionTimeoutMs,
      heartbeatInterval: s.heartbeatIntervalMs,
      rebalanceTimeout: s.rebalanceTimeoutMs,
      maxWaitTimeInMs: 500,
      partitionAssigners: [PartitionAssigners.cooperativeSticky],
    },
    ...(staticMembership ? { "group.instance.id": s.memberName } : {}),
    // The KafkaJS layer caches "1.5 s worth" of records, sized by its consumption rate:
    // with turns of seconds that is a record or a few, all of one partition, and its other
    // workers wait until that partition's cached records are done, so a worker runs one
    // partition at a time (also with max.partition.fetch.bytes=1024 and a 6 s cache, tried
    // in development). Only a large cache let it run SLOTS partitions at once, as kafkajs
    // does; but it only sees a rebalance when it polls librdkafka, i.e. when the cache is empty.
    ...(largeCache ? { "js.consumer.max.cache.size.per.worker.ms": 60_000 } : {}),
    rebalance_cb: (err: { code: number }, assignment: Array<{ partition: number }>, fns: { assignmentLost(): boolean }) => {
      const partitions = assignment.map((a) => a.partition);
      // -175 ERR__ASSIGN_PARTITIONS, -174 ERR__REVOKE_PARTITIONS
      if (err.code === -175) onAssignment("assigned", partitions);
      else {
        if (fns.assignmentLost()) {
          lostController.abort();
          lostController = new AbortController();
        }
        onAssignment("revoked", partitions);
      }
    },
  });
  return {
    async start(handler, listener) {
      onAssignment = listener;
      await consumer.connect();
      await consumer.subscribe({ topics: [s.topic] });
      await consumer.run({
        partitionsConsumedConcurrently: s.concurrency,
        eachMessage: async ({ partition, message }: { partition: number; message: { offset: string } }) => {
          const lost = lostController.signal;
          await handler({ partition, offset: message.offset, lost });
          if (!lost.aborted) await consumer.commitOffsets([{ topic: s.topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
        },
      });
    },
    // The KafkaJS API has no stop(): disconnect waits for running messages and leaves
    // (with static membership librdkafka does not send LeaveGroup: the member is expected back).
    stop: () => consumer.disconnect(),
  };
}

export async function createSimConsumer(kind: ClientKind, settings: ConsumerSettings): Promise<SimConsumer> {
  switch (kind) {
    case "kafkajs":
      return kafkajsConsumer(settings, false);
    case "kafkajs-decoupled":
      return kafkajsConsumer(settings, true);
    case "kafkajs-decoupled-sticky":
      return kafkajsConsumer(settings, true, true);
    case "confluent-cooperative":
      return confluentConsumer(settings, false, true);
    case "confluent-cooperative-static":
      return confluentConsumer(settings, true, true);
    case "confluent-cooperative-default-cache":
      return confluentConsumer(settings, false, false);
  }
}
