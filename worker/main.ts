/** Worker entry point: wires config, logger, model, Kafka and signals. */
import { ConfigError, loadWorkerConfig } from "../contracts/config.js";
import { topicNames, topicSpecs } from "../contracts/topics.js";
import { createKafka, createProducer } from "../platform/kafka.js";
import { createLogger } from "../platform/logger.js";
import { startOpsServer } from "../platform/ops-server.js";
import { ensureTopics } from "../platform/topic-admin.js";
import { SequenceGenerator } from "./generator.js";
import { loadLlm } from "./llm.js";
import { createWorkerMetrics } from "./metrics.js";
import { startRequestConsumer, type RequestConsumer } from "./request-consumer.js";

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger("worker", config.logLevel).child({ worker_id: config.workerId });
  const metrics = createWorkerMetrics(config.workerId);
  let modelLoaded = false;
  let requests: RequestConsumer | null = null;
  const ops = await startOpsServer({
    ...config.http,
    registry: metrics.registry,
    ready: () => modelLoaded && (requests?.joined() ?? false),
  });
  logger.info({ port: ops.port }, "ops server listening (/healthz, /readyz, /metrics)");

  const llm = await loadLlm(config.model, logger);
  modelLoaded = true;
  const generator = new SequenceGenerator(llm.context.getSequence());

  const topics = topicNames(config.kafka.topicPrefix);
  const kafka = createKafka(config.kafka, logger);
  if (config.kafka.ensureTopics) {
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, topicSpecs(topics, config.kafka), logger);
    } finally {
      await admin.disconnect();
    }
  }
  const producer = createProducer(kafka);
  await producer.connect();
  requests = await startRequestConsumer(kafka, config, topics, { config, topics, producer, generator, metrics, logger }, logger);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: finishing the current turn, then leaving the group");
    try {
      await requests?.stop();
      await producer.disconnect();
      generator.dispose();
      await llm.dispose();
      await ops.close();
      logger.info("stopped");
      process.exit(0);
    } catch (err) {
      logger.error({ err: (err as Error).message }, "unclean shutdown");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`kafka-llm worker: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`kafka-llm worker: fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
