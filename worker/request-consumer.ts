/**
 * The worker's membership in the consumer group on chat.requests. It hands each record
 * to the turn, heartbeats while a generation runs (a long one must not cost the worker
 * its partitions), and commits a record only after its turn is written.
 */
import type { Consumer, Kafka } from "kafkajs";
import type { WorkerConfig } from "../contracts/config.js";
import type { TopicNames } from "../contracts/topics.js";
import type { Logger } from "../platform/logger.js";
import { runTurn, type TurnContext } from "./turn.js";

export interface RequestConsumer {
  readonly consumer: Consumer;
  /** True once the worker has joined the group. */
  joined(): boolean;
  stop(): Promise<void>;
}

export async function startRequestConsumer(
  kafka: Kafka,
  config: WorkerConfig,
  topics: TopicNames,
  turnContext: TurnContext,
  logger: Logger,
): Promise<RequestConsumer> {
  const consumer = kafka.consumer({
    groupId: config.groupId,
    sessionTimeout: config.consumer.sessionTimeoutMs,
    heartbeatInterval: config.consumer.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 1000,
  });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    joined = true;
    logger.info({ memberId: payload.memberId, assignment: payload.memberAssignment }, "joined consumer group");
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    joined = false;
    logger.error({ err: payload.error?.message, restart: payload.restart }, "consumer crashed");
  });

  await consumer.connect();
  // A new group starts at the oldest request: queued work is never skipped.
  await consumer.subscribe({ topic: topics.requests, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message, heartbeat }) => {
      const beat = setInterval(() => {
        heartbeat().catch((err: Error) => logger.debug({ err: err.message }, "heartbeat during turn failed"));
      }, config.consumer.heartbeatIntervalMs);
      try {
        await runTurn(
          {
            topic,
            partition,
            message,
            commit: () =>
              consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]),
          },
          turnContext,
        );
      } finally {
        clearInterval(beat);
      }
    },
  });

  return {
    consumer,
    joined: () => joined,
    async stop() {
      // kafkajs lets the running eachMessage finish, then leaves the group.
      await consumer.disconnect();
    },
  };
}
