/** Worker entry point: wires config, logger, model, Kafka and signals. */
import { loadWorkerConfig } from "../contracts/config.js";
import { topicNames, topicSpecs } from "../contracts/topics.js";
import { createKafka, createProducer } from "../platform/kafka.js";
import { runService } from "../platform/entrypoint.js";
import { createLogger } from "../platform/logger.js";
import { startOpsServer } from "../platform/ops-server.js";
import { ensureTopics } from "../platform/topic-admin.js";
import { Cancellations } from "./cancellations.js";
import { startControlConsumer } from "./control-consumer.js";
import { SequenceGenerator } from "./generator.js";
import { loadLlm } from "./llm.js";
import { MemoryStore } from "./memory-store.js";
import { createWorkerMetrics } from "./metrics.js";
import { startPodDeletionCost } from "./pod-deletion-cost.js";
import { startRequestConsumer, type RequestConsumer } from "./request-consumer.js";
import { shutdown } from "./shutdown.js";
import { SlotPool } from "./slot-pool.js";

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

  const slotsWanted = config.generation.slots;
  const llm = await loadLlm(config.model, logger, slotsWanted);
  const generators = Array.from({ length: slotsWanted }, () => new SequenceGenerator(llm.context.getSequence()));
  const slots = new SlotPool(generators);
  metrics.slots.set(slots.size);
  modelLoaded = true;

  const topics = topicNames(config.kafka.topicPrefix);
  const kafka = createKafka(config.kafka, logger);
  const admin = kafka.admin();
  await admin.connect();
  if (config.kafka.ensureTopics) await ensureTopics(admin, topicSpecs(topics, config.kafka), logger);
  const producer = createProducer(kafka);
  await producer.connect();

  const groupPrefix = `${config.groupId}.${config.workerId}`;
  const memory = new MemoryStore({
    kafka,
    admin,
    producer,
    topic: topics.memory,
    groupPrefix,
    logger,
    metrics: { restoreSeconds: metrics.memoryRestore, conversations: metrics.memoryConversations },
  });
  await memory.start();
  const cancellations = new Cancellations();
  const control = await startControlConsumer({ kafka, topic: topics.control, groupPrefix, cancellations, logger });

  requests = await startRequestConsumer({
    kafka,
    config,
    topics,
    memory,
    metrics,
    logger,
    onFatal: (error) => {
      logger.fatal({ err: error?.message }, "the request consumer stopped for good; exiting so the partitions move");
      process.exit(1);
    },
    turn: {
      config,
      topics,
      producer,
      memory,
      slots,
      cancellations,
      metrics,
      logger,
      countTokens: (text) => llm.model.tokenize(text).length,
    },
  });

  // Scale-down removes idle workers first: the pod's deletion cost follows its running generations.
  const deletionCost =
    config.podDeletionCostIntervalMs > 0
      ? startPodDeletionCost({ logger, activeGenerations: () => slots.busyCount, intervalMs: config.podDeletionCostIntervalMs })
      : null;

  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "signal received");
    const consumer = requests!;
    shutdown(
      {
        stopConsuming: () => consumer.stopFetching(),
        abortRunning: () => cancellations.abortAll(),
        release: async () => {
          await deletionCost?.stop();
          await consumer.leave();
          await control.disconnect();
          await memory.stop();
          await admin.disconnect();
          await producer.disconnect();
          for (const g of generators) g.dispose();
          await llm.dispose();
          await ops.close();
        },
      },
      config.shutdownGraceMs,
      logger,
    ).then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: err.message }, "unclean shutdown");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
}

runService("worker", main);
