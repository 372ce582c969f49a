/**
 * Worker entry point: wires config, logger, model, Kafka and signals. Every Kafka client is
 * librdkafka's, made through platform/kafka/: one idempotent producer for everything the
 * worker writes (events, memory, history, dead letters), with WORKER_TRANSACTIONS a
 * transactional one for a turn's writes and its offset, one admin for offsets, the worker
 * group's consumer (request-loop.ts) and readers that join no group (memory, cancels,
 * replays).
 */
import { loadTracingConfig } from "../contracts/config/tracing.js";
import { loadWorkerConfig } from "../contracts/config/worker.js";
import { privateGroup, transactionalId } from "../contracts/kafka-acls.js";
import { topicNames } from "../contracts/topics.js";
import { declarePool } from "../platform/kafka/pool-registry.js";
import { HistoryWriter } from "./history-writer.js";
import { KafkaAdmin } from "../platform/kafka/admin.js";
import { KafkaProducer } from "../platform/kafka/producer.js";
import { runService } from "../platform/entrypoint.js";
import { InternalKeys } from "../platform/internal-auth.js";
import { createLogger, type Logger } from "../platform/logger.js";
import { startTracing } from "../platform/tracing.js";
import { modelNameOf } from "./turn-trace.js";
import { startOffsetReader } from "../platform/kafka/offset-reader.js";
import { startOpsServer } from "../platform/ops-server.js";
import { componentTopicSpecs, ensureTopics } from "../platform/topic-admin.js";
import { Cancellations } from "./cancellations.js";
import { startControlConsumer } from "./control-consumer.js";
import { SequenceGenerator, type SlotGenerator } from "./generator.js";
import { loadLlm } from "./llm.js";
import { MemoryStore } from "./memory-store.js";
import { Lifecycle, WORKER_STATES } from "./lifecycle.js";
import { createWorkerMetrics, type WorkerMetrics } from "./metrics.js";
import { inClusterPod, startPodDeletionCost } from "./pod-deletion-cost.js";
import { FinalPositions } from "./replay.js";
import { advertisedClientId, queryAddress, queryRoute } from "./query-server.js";
import { startRequestLoop, type RequestLoop } from "./request-loop.js";
import { shutdown, type ShutdownSteps } from "./shutdown.js";
import { SlotPool } from "./slot-pool.js";

/**
 * How long the request consumer's poll loop may go without an answer before the worker counts
 * as hung (its liveness fails): each poll waits at most 100 ms, so this is never a busy worker.
 */
const POLL_STUCK_MS = 60_000;

/** The lifecycle drives readiness, the state metric and a log line at every change. */
function observeLifecycle(lifecycle: Lifecycle, metrics: WorkerMetrics, logger: Logger): void {
  lifecycle.onChange((state, previous, detail) => {
    for (const s of WORKER_STATES) metrics.state.set({ state: s }, s === state ? 1 : 0);
    if (state !== previous) logger.info({ state, previous, ...detail }, `worker ${state}`);
  });
}

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger("worker", config.logLevel).child({ worker_id: config.workerId });
  const metrics = createWorkerMetrics(config.workerId, {
    model: modelNameOf(config.model.source),
    maxTenants: config.metrics.maxTenants,
    pool: config.pool.name,
  });
  const tracing = startTracing(loadTracingConfig("kafka-llm-worker"), { instanceId: config.workerId, logger });
  const lifecycle = new Lifecycle();
  observeLifecycle(lifecycle, metrics, logger);
  let loop: RequestLoop | null = null;
  const ops = await startOpsServer({
    ...config.http,
    registry: metrics.registry,
    ready: () => lifecycle.ready,
    // The startup probe waits for the model (minutes for a large one on a cold node); the
    // liveness probe starts only then.
    started: () => lifecycle.state !== "starting" && lifecycle.state !== "loading_model",
    live: () => {
      if (lifecycle.state === "failed") return "the worker failed";
      const polled = loop?.polledAt();
      if (polled !== undefined && lifecycle.state === "running" && Date.now() - polled > POLL_STUCK_MS)
        return `the request consumer's poll loop has not returned for ${Math.round((Date.now() - polled) / 1000)} s`;
      return null;
    },
  });
  logger.info({ port: ops.port }, "ops server listening (/startupz, /healthz, /readyz, /metrics)");

  // What has been started so far, for a SIGTERM at any point of the start-up.
  // Released last to first: the spans of turns that drain are sent before the process ends.
  const release: Array<() => Promise<void> | void> = [() => tracing.shutdown(), () => ops.close()];
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "signal received");
    const steps: ShutdownSteps = {
      ...(loop && { drainAndLeave: (graceMs: number) => loop!.drainAndLeave(graceMs) }),
      release: async () => {
        for (const step of release.reverse()) await step();
      },
    };
    shutdown(steps, config.shutdownGraceMs, lifecycle, logger).then(
      () => process.exit(0),
      (err: unknown) => {
        lifecycle.to("failed", { reason: "unclean shutdown" });
        logger.error({ err }, "unclean shutdown");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));

  lifecycle.to("loading_model");
  const slotsWanted = config.generation.slots;
  const llm = await loadLlm(config.model, logger, slotsWanted, { list: config.pool.adapters, sequences: config.pool.adapterSlots });
  // The base model's slots, then each adapter's (worker/slot-pool.ts).
  const slotContexts = [
    ...Array.from({ length: slotsWanted }, () => ({ context: llm.context, adapter: null })),
    ...[...llm.adapterContexts].flatMap(([adapter, context]) => Array.from({ length: config.pool.adapterSlots }, () => ({ context, adapter }))),
  ];
  const generators = slotContexts.map(({ context }) => new SequenceGenerator(context.getSequence(), config.generation));
  release.push(async () => {
    for (const g of generators) g.dispose();
    await llm.dispose();
  });
  const slots = new SlotPool<SlotGenerator>(generators, {
    adapters: slotContexts.map((s) => s.adapter),
    clear: async (g) => {
      await g.clearCache();
      metrics.slotTenantClears.inc();
    },
  });
  metrics.slots.set(slots.size);
  if (stopping) return;

  lifecycle.to("joining");
  const topics = topicNames(config.kafka.topicPrefix, config.pool.name);
  const admin = new KafkaAdmin(config.kafka);
  release.push(() => admin.close());
  if (config.kafka.ensureTopics) await ensureTopics(admin, componentTopicSpecs("worker", topics, config.kafka), logger);
  // A producer that hit a fatal error (its idempotence state lost) fails every write from
  // then on: every turn would retry forever, so the worker exits and its partitions move.
  const producer = await KafkaProducer.connect(config.kafka, {
    logger,
    onFatal: (error) => {
      lifecycle.to("failed", { reason: error.message });
      logger.fatal({ err: error }, "the producer stopped for good; exiting so the partitions move");
      process.exit(1);
    },
  });
  release.push(() => producer.disconnect());
  // The gateways learn this pool, and the model names it serves, from chat.models.
  // A pool's adapters are further model names of it, each with its base (the default pool
  // without MODEL_NAME answers to the gateways' MODEL_NAME, and has no adapters: see config).
  const base = config.pool.modelName;
  await declarePool(producer, topics.models, {
    pool: config.pool.name,
    models: base === undefined ? [] : [base, ...config.pool.adapters.map((a) => a.name)],
    ...(base !== undefined && { adapters: Object.fromEntries(config.pool.adapters.map((a) => [a.name, base])) }),
    by: config.workerId,
  });
  logger.info({ pool: config.pool.name, model: config.pool.modelName, topic: topics.requests, group: config.pool.group }, "serving the pool");
  // The worker's own groups are named under the workers' group (contracts/kafka-acls.ts).
  const groupPrefix = privateGroup(config.workerGroupId, config.workerId);
  // WORKER_TRANSACTIONS: a turn's writes and its offset in one transaction (worker/turn.ts
  // writeTurn). Its id is the worker's, stable across a restart of the same pod, so a
  // restarted worker aborts a transaction its previous run left open at once.
  const transactional = config.transactions
    ? await KafkaProducer.connect(config.kafka, {
        logger,
        transactionalId: transactionalId(config.workerGroupId, config.workerId),
        transactionTimeoutMs: config.transactions.timeoutMs,
        onFatal: (error) => {
          lifecycle.to("failed", { reason: error.message });
          logger.fatal({ err: error }, "the transactional producer stopped for good; exiting so the partitions move");
          process.exit(1);
        },
      })
    : null;
  if (transactional) release.push(() => transactional.disconnect());
  const offsetsGroup = privateGroup(groupPrefix, "offsets");
  // A replayed request's terminal event is read back from chat.events (its reply, for the newest, from chat.history).
  const replay = {
    events: await startOffsetReader({ kafka: config.kafka, topic: topics.events, size: 2, groupId: offsetsGroup, logger }),
    history: await startOffsetReader({ kafka: config.kafka, topic: topics.history, size: 1, groupId: offsetsGroup, logger }),
  };
  release.push(() => replay.events.stop());
  release.push(() => replay.history.stop());

  const memory = new MemoryStore({
    kafka: config.kafka,
    admin,
    producer,
    topic: topics.memory,
    groupPrefix,
    logger,
    metrics: { restoreSeconds: metrics.memoryRestore, restoredRecords: metrics.memoryRestoredRecords, conversations: metrics.memoryConversations },
    stateDir: config.memory.stateDir,
    conversationTtlMs: config.kafka.conversationTtlMs,
    partitions: config.kafka.requestPartitions,
  });
  await memory.start();
  release.push(() => memory.stop());
  // Gateways read conversations from their partition's owner, here (worker/query-server.ts), signed with the internal token.
  const keys = InternalKeys.fromConfig(config.query.token, logger);
  release.push(() => keys.stop());
  const address = queryAddress(config.query.address, config.http.host, ops.port);
  ops.setRoute(queryRoute({ memory, keys, address, registry: metrics.registry, logger }));
  logger.info({ address, signed: keys.enabled }, "answering conversation reads for the owned partitions");
  const cancellations = new Cancellations();
  const control = await startControlConsumer({
    kafka: config.kafka,
    admin,
    topic: topics.control,
    groupId: privateGroup(groupPrefix, "control"),
    cancellations,
    logger,
  });
  release.push(() => control.stop());
  if (stopping) return;

  loop = await startRequestLoop({
    config,
    topics,
    memory,
    metrics,
    logger,
    clientId: advertisedClientId(config.kafka.clientId, address),
    transactional,
    onFatal: (error) => {
      lifecycle.to("failed", { reason: error.message });
      logger.fatal({ err: error }, "the request consumer stopped for good; exiting so the partitions move");
      process.exit(1);
    },
    turn: {
      config,
      topics,
      producer,
      memory,
      history: new HistoryWriter(producer, topics.history),
      slots,
      cancellations,
      metrics,
      logger,
      countTokens: (text) => llm.model.tokenize(text).length,
      replay,
      finals: new FinalPositions(),
      trace: { topic: topics.requests, group: config.pool.group, workerId: config.workerId, model: modelNameOf(config.model.source) },
    },
  });

  // Scale-down removes idle workers first: the pod's deletion cost follows its running generations.
  if (config.podDeletionCostIntervalMs > 0) {
    const pod = inClusterPod(logger);
    if (pod) {
      const deletionCost = startPodDeletionCost(pod, { logger, activeGenerations: () => slots.busyCount, intervalMs: config.podDeletionCostIntervalMs });
      release.push(() => deletionCost.stop());
    }
  }

  // Ready once the group has assigned this worker its partitions (possibly none).
  const joined = setInterval(() => {
    if (!loop?.joined()) return;
    clearInterval(joined);
    lifecycle.to("running");
  }, 50);
  release.push(() => clearInterval(joined));
}

runService("worker", main);
