/**
 * The project's one Kafka module: every client (producer, consumer, admin) is made here,
 * so connection settings, logging and the partitioner are the same everywhere.
 */
import { Kafka, logLevel, Partitioners, type LogEntry, type Producer, type ProducerConfig, type SASLOptions } from "kafkajs";
import type { KafkaConfig } from "../contracts/config.js";
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
