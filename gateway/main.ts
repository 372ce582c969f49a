/** Gateway entry point: wires config, logger, Kafka, the hub and the HTTP server. */
import { ConfigError, loadGatewayConfig } from "../contracts/config.js";
import { encodeRecord } from "../contracts/records.js";
import { topicNames, topicSpecs } from "../contracts/topics.js";
import { createKafka, createProducer } from "../platform/kafka.js";
import { createLogger } from "../platform/logger.js";
import { ensureTopics } from "../platform/topic-admin.js";
import { buildGateway } from "./app.js";
import { startEventConsumer } from "./event-consumer.js";
import { EventHub } from "./event-hub.js";
import { createGatewayMetrics } from "./metrics.js";

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  const logger = createLogger("gateway", config.logLevel);
  const metrics = createGatewayMetrics();
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

  const hub = new EventHub({ ttlMs: config.requests.stateTtlMs, maxTracked: config.requests.maxTracked });
  const sweeper = setInterval(() => {
    hub.sweep();
    metrics.trackedRequests.set(hub.size);
  }, Math.min(60_000, config.requests.stateTtlMs));
  sweeper.unref();

  const producer = createProducer(kafka);
  await producer.connect();
  const events = await startEventConsumer(kafka, topics.events, hub, logger);

  const app = buildGateway({
    config,
    logger,
    hub,
    registry: metrics.registry,
    publishRequest: async (request) => {
      await producer.send({
        topic: topics.requests,
        acks: -1,
        messages: [{ key: request.conversation_id, value: encodeRecord(request) }],
      });
      metrics.requestsAccepted.inc();
    },
  });
  await app.listen({ host: config.http.host, port: config.http.port });
  logger.info({ host: config.http.host, port: config.http.port }, "gateway listening");

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    try {
      await app.close();
      await events.disconnect();
      await producer.disconnect();
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
    process.stderr.write(`kafka-llm gateway: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`kafka-llm gateway: fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
