/** The broker for a test file: KAFKA_BROKERS when set (start nothing), else a fresh local one. */
import { randomBytes } from "node:crypto";
import { startBroker } from "../../scripts/kafka-broker.js";

export interface TestKafka {
  brokers: string;
  stop(): Promise<void>;
}

export async function useKafka(): Promise<TestKafka> {
  const external = process.env.KAFKA_BROKERS?.trim();
  if (external) return { brokers: external, stop: async () => {} };
  const broker = await startBroker();
  return { brokers: broker.brokers, stop: () => broker.stop() };
}

/** A topic prefix of its own, so tests sharing one broker never see each other's records. */
export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(4).toString("hex")}.`;
}
