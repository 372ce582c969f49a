/** Gateway entry point: wires config, logger, Kafka clients, the hub, the conversation lookup and the HTTP server. */
import os from "node:os";
import { loadGatewayConfig } from "../contracts/config/gateway.js";
import { loadTracingConfig } from "../contracts/config/tracing.js";
import { privateGroup } from "../contracts/kafka-acls.js";
import { topicNames } from "../contracts/topics.js";
import { KafkaAdmin } from "../platform/kafka/admin.js";
import { GroupDescriber } from "../platform/kafka/group-describer.js";
import { runService } from "../platform/entrypoint.js";
import { InternalKeys } from "../platform/internal-auth.js";
import { createLogger } from "../platform/logger.js";
import { startTracing, tracingOn } from "../platform/tracing.js";
import { componentTopicSpecs, ensureTopics } from "../platform/topic-admin.js";
import { buildGateway } from "./app.js";
import type { GatewayDeps } from "./deps.js";
import { createAuthenticator } from "./auth.js";
import { EventHub } from "./event-hub.js";
import { EventPartitions } from "./kafka/event-partitions.js";
import { LagExporter } from "./kafka/lag-exporter.js";
import { startOffsetReader } from "../platform/kafka/offset-reader.js";
import { withDeadline } from "./kafka/deadline.js";
import { OwnerLookup, describeWorkers } from "./kafka/owners.js";
import { startRequestsReader } from "./kafka/requests-reader.js";
import { PoolLanes } from "./kafka/pool-lanes.js";
import { ConversationPools, PoolRouter } from "./pools.js";
import { startPoolRegistry } from "../platform/kafka/pool-registry.js";
import { kafkaReaderPositions } from "./kafka/reader-positions.js";

/** History reads served at once (each holds one exact-offset consumer for its few ms of hops). */
const HISTORY_FETCHERS = 4;
import { QueueWatch } from "./kafka/queue-watch.js";
import { KafkaPublisher } from "./kafka/publisher.js";
import { createGatewayMetrics } from "./metrics.js";
import { TenantQuotas } from "./quotas.js";
import { openStreams, shutDownStreams } from "./sse.js";
import { TurnStats } from "./turn-stats.js";
import { RequestTraces } from "./tracing.js";

/**
 * Each Kafka reader waits for records in a consume call that holds one of libuv's threads:
 * the gateway's own three (chat.events' reader and group consumer, chat.models) and one per
 * pool. With fewer threads than readers, chat.events waits its turn and every stream is late
 * (bench/scenarios/pools.ts). libuv reads UV_THREADPOOL_SIZE at start: the image sets 16.
 */
let threadsWarned = false;
function warnIfThreadsShort(pools: number, logger: ReturnType<typeof createLogger>): void {
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (threadsWarned || 3 + pools <= threads) return;
  threadsWarned = true;
  logger.warn(
    { pools, readers: 3 + pools, uv_threadpool_size: threads },
    "more Kafka readers than libuv threads: streams will lag; set UV_THREADPOOL_SIZE to at least the readers",
  );
}

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  const logger = createLogger("gateway", config.logLevel);
  const tracing = startTracing(loadTracingConfig("kafka-llm-gateway"), { instanceId: process.env.HOSTNAME ?? os.hostname(), logger });
  const auth = createAuthenticator(config.auth, logger);
  const topics = topicNames(config.kafka.topicPrefix);

  let stopping = false;
  const hub = new EventHub({
    ttlMs: config.requests.stateTtlMs,
    maxTracked: config.requests.maxTracked,
    maxPerTenant: config.requests.maxTrackedPerTenant,
    pinMs: config.requests.deadlineMs,
  });
  const turnStats = new TurnStats({ windowMs: config.turnStatsWindowMs });
  const publisher = await KafkaPublisher.connect(config.kafka, topics, { timeoutMs: config.kafkaSendTimeoutMs, logger });
  const deps: GatewayDeps = {
    config,
    logger,
    hub,
    metrics: createGatewayMetrics({
      trackedRequests: () => hub.size,
      eventListeners: () => hub.listenerCount,
      conversationOwners: () => deps.conversations?.cachedOwners ?? 0,
      recentTurns: () => ({ meanSeconds: turnStats.meanSeconds(), count: turnStats.count() }),
      eventPartitions: () => eventPartitions.counts(),
    }),
    publisher,
    conversations: null,
    history: null,
    authenticate: auth.authenticate,
    quotas: new TenantQuotas({
      defaults: config.quotas.defaults,
      perTenant: auth.limitsOf,
      replicas: () => config.quotas.replicas,
      onRejected: (tenant, limit) => deps.metrics.rateLimited.inc({ tenant, limit }),
    }),
    ...(tracingOn() && { traces: new RequestTraces(topics, config.requests.maxTracked, config.requests.stateTtlMs) }),
    draining: () => stopping,
    ready: () => !stopping && registry.caughtUp() && lanes.caughtUp() && eventPartitions.caughtUp(),
    failure: () => publisher.failure() ?? eventPartitions.failure() ?? null,
  };

  // One admin client for topic checks, look-back offsets, partitions, positions and the lag;
  // one describer of the worker group for owner lookups and queued notices.
  const admin = new KafkaAdmin(config.kafka, { timeoutMs: 3000 });
  const describer = new GroupDescriber(config.kafka, { logger });
  if (config.kafka.ensureTopics) await ensureTopics(admin, componentTopicSpecs("gateway", topics, config.kafka), logger);

  const sweeper = setInterval(() => hub.sweep(), Math.min(60_000, config.requests.stateTtlMs));
  sweeper.unref();

  // The pools (chat.models), and for each its request reader, queued notices, lag and conversation lookups.
  const router = new PoolRouter({ topicPrefix: config.kafka.topicPrefix, workerGroup: config.workerGroupId, defaultModel: config.modelName });
  const conversationPools = new ConversationPools({ maxPerTenant: config.requests.maxTrackedPerTenant, ttlMs: config.requests.stateTtlMs });
  deps.pools = router;
  deps.conversationPools = conversationPools;
  const internalKeys = InternalKeys.fromConfig(config.conversations.internalToken, logger);
  const lanes = new PoolLanes({
    maxRequests: config.requests.maxTracked,
    onError: (pool, err) => logger.error({ pool, err }, "could not start reading a pool's topic; tried again at the next change of chat.models"),
    start: async (lane) => {
      const queueWatch = new QueueWatch({
        admin,
        describer,
        topic: lane.topic,
        groupId: lane.group,
        intervalMs: config.queueNoticeMs,
        maxPositions: config.requests.maxTracked,
        logger,
      });
      const requests = await startRequestsReader({
        kafka: config.kafka,
        admin,
        topic: lane.topic,
        hub,
        gatewayGroup: config.events.groupId,
        lookBackMs: config.requests.stateTtlMs,
        logger,
        onRequestRead: (id, partition, offset) => {
          queueWatch.place(id, partition, offset);
          lanes.requestRead(id, lane.pool);
        },
        onConversation: (tenant, conversationId, change) =>
          change.deleted ? conversationPools.forget(tenant, conversationId) : conversationPools.note(tenant, conversationId, change.moveTo ?? lane.pool),
        onRestart: () => deps.metrics.eventsReaderRestarts.inc(),
      });
      const conversations = new OwnerLookup({
        describe: describeWorkers(describer, lane.group, lane.topic),
        partitions: async () => (await withDeadline(admin.partitions([lane.topic]), 3000, `${lane.topic} partitions`)).get(lane.topic)?.length ?? 0,
        groupId: lane.group,
        timeoutMs: config.conversations.lookupTimeoutMs,
        keys: internalKeys,
        metrics: { lookups: deps.metrics.conversationLookups, lookupSeconds: deps.metrics.conversationLookupSeconds },
        logger,
      });
      const lag = new LagExporter({
        admin,
        topic: lane.topic,
        groupId: lane.group,
        pool: lane.pool,
        metrics: deps.metrics,
        refreshMs: config.lag.refreshMs,
        logger,
      });
      logger.info({ pool: lane.pool, topic: lane.topic, group: lane.group, models: lane.models }, "routing to a pool");
      return {
        queueWatch,
        conversations,
        startLag: () => lag.start(),
        caughtUp: () => requests.caughtUp(),
        stop: async () => {
          lag.stop();
          queueWatch.stop();
          await Promise.all([requests.stop(), conversations.stop()]);
        },
      };
    },
  });
  deps.queueWatch = lanes.queueWatch;
  // The default pool's parts start at once (the only pool of a single-model install); others as chat.models declares them.
  await lanes.ensure(router.lanes());
  const registry = await startPoolRegistry({
    kafka: config.kafka,
    admin,
    topic: topics.models,
    groupId: privateGroup(config.events.groupId, "offsets"),
    logger,
    onChange: (declared) => {
      void lanes.ensure(router.update(declared));
      warnIfThreadsShort(router.lanes().length, logger);
    },
  });
  // chat.events: this replica's share (the gateways' group) and what its followers need.
  const eventPartitions = new EventPartitions({
    kafka: config.kafka,
    admin,
    topic: topics.events,
    hub,
    groupId: config.events.groupId,
    protocol: config.events.groupProtocol,
    lookBackMs: config.requests.stateTtlMs,
    logger,
    onRecord: () => deps.metrics.eventsRead.inc(),
    onReaderRestart: () => deps.metrics.eventsReaderRestarts.inc(),
    onEvent: (event, headers) => {
      deps.traces?.event(event, headers);
      turnStats.record(event);
      // Tokens per minute are counted from what finished requests used.
      if (event.type === "final") deps.quotas?.spend(event.tenant, event.usage.prompt_tokens + event.usage.completion_tokens);
    },
  });
  hub.onFollow = (_requestId, snapshot) => eventPartitions.follow(snapshot);
  await eventPartitions.start();
  // The lag exporters start once the gateways' group has its coordinator: librdkafka's
  // offset fetch for a group can crash the process when the broker answers NOT_COORDINATOR
  // (confluentinc/confluent-kafka-javascript#374), as a fresh cluster does while it creates
  // __consumer_offsets. Pools declared later start theirs at once.
  lanes.startLag();
  deps.events = eventPartitions;
  const lookups = lanes.conversationLookup(router, conversationPools);
  deps.conversations = {
    get: (ref, options) => lookups.get(ref, options),
    get cachedOwners() {
      return lookups.cachedOwners;
    },
    stop: async () => {
      await lookups.stop();
      internalKeys.stop();
      describer.close();
    },
  };
  const historyReader = await startOffsetReader({
    kafka: config.kafka,
    topic: topics.history,
    size: HISTORY_FETCHERS,
    groupId: privateGroup(config.events.groupId, "offsets"),
    logger,
  });
  const readerPositions = kafkaReaderPositions(admin, topics.history, config.events.groupId);
  deps.history = { reader: historyReader, positions: readerPositions };

  const app = buildGateway(deps);
  await app.listen({ host: config.http.host, port: config.http.port });
  logger.info({ host: config.http.host, port: config.http.port, auth: config.auth.mode }, "gateway listening");

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Not ready (the Service stops sending new clients), and no new work (admission.ts);
    // what clients follow now may finish within the grace period.
    const graceEnds = Date.now() + config.shutdownGraceMs;
    logger.info({ signal, open_streams: openStreams(), listeners: hub.listenerCount, grace_ms: config.shutdownGraceMs }, "shutting down: draining");
    while ((openStreams() > 0 || hub.listenerCount > 0) && Date.now() < graceEnds) await new Promise((r) => setTimeout(r, 100));
    // Streams still open are told where to resume, then ended.
    const ended = shutDownStreams();
    logger.info({ ended_streams: ended, waiting_calls: hub.listenerCount }, "drained");
    try {
      auth.stop();
      // Calls still awaiting a reply are cut; the openai SDK retries them (idempotently) elsewhere.
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
      await Promise.all([registry.stop(), eventPartitions.stop(), deps.conversations?.stop(), historyReader.stop(), publisher.disconnect()]);
      admin.close();
      deps.traces?.close();
      await tracing.shutdown();
      process.exit(0);
    } catch (err) {
      logger.error({ err }, "unclean shutdown");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

runService("gateway", main);
