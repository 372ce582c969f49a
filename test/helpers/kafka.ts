/**
 * The broker for a test file: KAFKA_BROKERS when set (start nothing; its principals from
 * KAFKA_CREDENTIALS_FILE when it is secured), else a fresh local one, secured as production
 * should be (SASL/SCRAM, one principal per component, deny by default: scripts/kafka/security.ts).
 */
import { randomBytes } from "node:crypto";
import type { KafkaConfig } from "kafkajs";
import { startBroker } from "../../scripts/kafka-broker.js";
import type { KafkaConfig as KafkaLlmConfig } from "../../contracts/config.js";
import { loginConfig } from "../../scripts/kafka/provision.js";
import { kafkajsLogin, newCredentials, readCredentials, type BrokerCredentials, type BrokerRole } from "../../scripts/kafka/security.js";

export interface TestKafka {
  brokers: string;
  /** The broker's principals; null on a plaintext broker (KAFKA_BROKERS without KAFKA_CREDENTIALS_FILE). */
  credentials: BrokerCredentials | null;
  /** Where they are kept, passed to the services' helpers (test/helpers/gateway.ts). */
  credentialsFile: string | null;
  stop(): Promise<void>;
}

export async function useKafka(): Promise<TestKafka> {
  const external = process.env.KAFKA_BROKERS?.trim();
  if (external) {
    const file = process.env.KAFKA_CREDENTIALS_FILE?.trim() || null;
    return { brokers: external, credentials: file ? readCredentials(file) : null, credentialsFile: file, stop: async () => {} };
  }
  const broker = await startBroker();
  return { brokers: broker.brokers, credentials: broker.credentials, credentialsFile: broker.credentialsFile, stop: () => broker.stop() };
}

/** kafkajs settings for a test's own client, logged in as `role` (tests observe as the administrator). */
export function kafkajsClient(kafka: Pick<TestKafka, "brokers" | "credentials">, role: BrokerRole = "admin"): Pick<KafkaConfig, "brokers" | "sasl"> {
  return { brokers: kafka.brokers.split(","), ...kafkajsLogin(kafka.credentials, role) };
}

/** The project's KafkaConfig for a test's own client (platform/kafka.ts), logged in as `role` on a secured broker. */
export function kafkaConfigFor(kafka: Pick<TestKafka, "brokers" | "credentials">, role: BrokerRole = "admin"): KafkaLlmConfig {
  const config = loginConfig(kafka.brokers, kafka.credentials ?? newCredentials(), role);
  return kafka.credentials ? config : { ...config, sasl: null };
}

/** A topic prefix of its own, so tests sharing one broker never see each other's records. */
export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(4).toString("hex")}.`;
}
