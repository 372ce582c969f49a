/**
 * The project's one Kafka module: every client (producer, consumer, admin) is made here,
 * so connection settings, logging and the partitioner are the same everywhere.
 *
 * Two client libraries, each for what it does best: the worker group's consumer is
 * librdkafka's (createGroupConsumer), which speaks the KIP-848 consumer rebalance protocol
 * and lets a revoked partition's turn finish before the partition moves; everything else
 * (producers, admin, the gateway's and the memory store's readers, each the only member of
 * its group) is kafkajs, whose rebalances never touch them. Two gateway parts read Kafka
 * in ways kafkajs has no call for: history hops at exact offsets (librdkafka,
 * platform/offset-reader.ts) and named readers' positions, committed without joining
 * a group (@platformatic/kafka's admin, gateway/kafka/reader-positions.ts).
 */
import type { SASLMechanismValue } from "@platformatic/kafka";
import { Kafka, logLevel, Partitioners, type LogEntry, type PartitionMetadata, type Producer, type ProducerConfig, type SASLOptions } from "kafkajs";
import type { KafkaConfig } from "../contracts/config.js";
import { GroupConsumer, type GroupConsumerOptions } from "./kafka/group-consumer.js";
import type { Logger } from "./logger.js";

export type { Admin, Consumer, Producer, EachMessagePayload, KafkaMessage } from "kafkajs";

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/** kafkajs logs at info about every group join; that is debug noise for us. */
function kafkajsLogCreator(logger: Logger) {
  const child = logger.child({ component: "kafkajs" });
  return () =>
    ({ level, log }: LogEntry) => {
      const { message, ...extra } = log;
      const name = LEVELS[level] ?? "debug";
      child[name === "info" ? "debug" : name](extra, message);
    };
}

export function createKafka(config: KafkaConfig, logger: Logger): Kafka {
  return new Kafka({
    clientId: config.clientId,
    brokers: [...config.brokers],
    ...(config.tls && { ssl: { ...config.tls } }),
    ...(config.sasl && { sasl: { ...config.sasl } as SASLOptions }),
    logLevel: logLevel.INFO,
    logCreator: kafkajsLogCreator(logger),
    // Backoff capped at 5 s: after a broker restart clients come back within seconds, not
    // after kafkajs's default 30 s steps.
    retry: { initialRetryTime: 200, maxRetryTime: 5000, retries: 8 },
  });
}

const KEY_PARTITIONER = Partitioners.DefaultPartitioner();

/**
 * The partition a record keyed `key` lands on among `partitions` when no partition is named:
 * the producers' partitioner (below), the Java client's murmur2. Where a conversation's
 * requests and memory are (so who owns it), and where its events go by default.
 */
export function keyPartition(key: string, partitions: number): number {
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0 }) as PartitionMetadata);
  return KEY_PARTITIONER({ topic: "", partitionMetadata, message: { key, value: null } });
}

/**
 * Connection options of a @platformatic/kafka client (its admin names groups without joining
 * them): the brokers, TLS and SASL of KafkaConfig, and short timeouts, so that a call made
 * for an HTTP request answers (or fails) within seconds when Kafka is away.
 */
export function platformaticConnection(kafka: KafkaConfig, clientIdSuffix: string, retries: number) {
  return {
    clientId: `${kafka.clientId}-${clientIdSuffix}`,
    bootstrapBrokers: [...kafka.brokers],
    ...(kafka.tls && { tls: { ...kafka.tls } }),
    ...(kafka.sasl && {
      sasl: { mechanism: kafka.sasl.mechanism.toUpperCase() as SASLMechanismValue, username: kafka.sasl.username, password: kafka.sasl.password },
    }),
    connectTimeout: 3000,
    requestTimeout: 3000,
    retries,
    retryDelay: 200,
  };
}

/**
 * Producers use the Java client's murmur2 partitioner, so a conversation id lands on the
 * same partition number in chat.requests and chat.memory, whoever writes it.
 */
export function createProducer(kafka: Kafka, extra: Partial<ProducerConfig> = {}): Producer {
  return kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    idempotent: true,
    maxInFlightRequests: 1,
    ...extra,
  });
}

/** The worker group's consumer: KIP-848 (or classic cooperative-sticky), see group-consumer.ts. */
export function createGroupConsumer(config: KafkaConfig, options: Omit<GroupConsumerOptions, "kafka">): GroupConsumer {
  return new GroupConsumer({ kafka: config, ...options });
}

/**
 * Consumer settings of a worker's reader that is the only member of its own group (the
 * memory reader and the cancel reader): nobody else
 * rebalances it, so a short session lets it rejoin quickly after a broker restart instead
 * of waiting out its old session, and a short fetch wait keeps it close behind the topic.
 */
export const SOLE_READER: Readonly<Omit<import("kafkajs").ConsumerConfig, "groupId">> = Object.freeze({
  allowAutoTopicCreation: false,
  maxWaitTimeInMs: 100,
  sessionTimeout: 10_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 1000,
});

/** kafkajs errors carry their protocol error name in `type` (e.g. "UNKNOWN_MEMBER_ID"). */
export function kafkaErrorType(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && typeof (err as { type?: unknown }).type === "string" ? (err as { type: string }).type : undefined;
}

/**
 * The one crash handler of the kafkajs consumers. A crash kafkajs restarts from is a
 * warning. One it gives up on (it deems "Failed to find group coordinator" during a broker
 * restart non-retriable, for one) leaves a consumer that reads nothing, silently: with
 * `restart` (connect, subscribe, run) the consumer is run again here, with a back-off,
 * until it is back; without, the failure is remembered and returned (the gateway's
 * /healthz fails on it, so the pod is restarted).
 */
export function handleConsumerCrash(
  consumer: import("kafkajs").Consumer,
  options: { name: string; logger: Logger; restart?: () => Promise<void> },
): () => string | null {
  let failure: string | null = null;
  let stopped = false;
  consumer.on(consumer.events.STOP, () => {
    stopped = true;
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs disconnects a crashed consumer before it emits CRASH, and that disconnect
    // emits STOP: only a STOP after this point (our own disconnect) means "stay stopped".
    // Without this reset a consumer kafkajs gave up on (a broker restart: "Failed to find
    // group coordinator") was never started again; the memory reader's restores then
    // stalled until its partitions moved (a 30 s recovery in the chaos run).
    stopped = false;
    const err = payload.error;
    if (payload.restart) {
      options.logger.warn({ err }, `${options.name} stopped; kafkajs restarts it`);
      return;
    }
    const restart = options.restart;
    if (!restart) {
      failure = `the ${options.name} stopped: ${err?.message ?? "unknown error"}`;
      options.logger.error({ err }, `${options.name} stopped for good`);
      return;
    }
    options.logger.warn({ err }, `${options.name} stopped and kafkajs gave up; starting it again`);
    const again = (attempt: number) => {
      if (stopped) return;
      restart().then(
        () => options.logger.info({ attempt }, `${options.name} reading again`),
        (e: unknown) => {
          options.logger.warn({ err: e, attempt }, `${options.name} could not start again; retrying`);
          setTimeout(() => again(attempt + 1), Math.min(5000, 500 * 2 ** attempt));
        },
      );
    };
    setTimeout(() => again(1), 500);
  });
  return () => failure;
}
