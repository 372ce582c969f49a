/**
 * The chart's topics Job: creates kafka-llm's topics with the configured partitions,
 * replication and cleanup policies (chat.memory compacted), and checks the partition counts
 * of existing ones (not their configs: librdkafka's binding cannot read them, see
 * platform/topic-admin.ts).
 * Uses the same Kafka settings (KAFKA_*) and the same code as the services' own
 * KAFKA_ENSURE_TOPICS, so a Job and a service never disagree about what a topic must be.
 *
 *   KAFKA_BROKERS=... KAFKA_REQUEST_PARTITIONS=12 node dist/scripts/deploy/create-topics.js
 *
 * Exit codes: 0 topics ready, 1 Kafka failed or existing topics' partitions differ, 2 bad configuration.
 */
import { ConfigError } from "../../contracts/config/env.js";
import { loadKafkaConfig } from "../../contracts/config/shared.js";
import { topicNames, topicSpecs } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { createLogger } from "../../platform/logger.js";
import { ensureTopics } from "../../platform/topic-admin.js";

async function main(): Promise<number> {
  let config;
  try {
    config = loadKafkaConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`create-topics: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger("create-topics", config.logLevel);
  const admin = new KafkaAdmin(config);
  try {
    const specs = topicSpecs(topicNames(config.topicPrefix), config);
    const result = await ensureTopics(admin, specs, logger);
    logger.info({ ...result, brokers: config.brokers }, "topics ready");
    return 0;
  } finally {
    admin.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`create-topics: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  },
);
