/**
 * The chart's topics Job: creates kafka-llm's topics with the configured partitions,
 * replication and cleanup policies (chat.memory compacted), and checks the partition counts
 * of existing ones (not their configs: librdkafka's binding cannot read them, see
 * platform/topic-admin.ts).
 * Uses the same Kafka settings (KAFKA_*) and the same code as the services' own
 * KAFKA_ENSURE_TOPICS, so a Job and a service never disagree about what a topic must be.
 *
 * Model pools (contracts/pools.ts): KAFKA_POOLS, rendered by the chart, is the release's
 * pools as a JSON array of {pool, models, adapters?}. Each pool's request and memory topics
 * are created beside the shared ones; then chat.models is read whole and made to say what
 * the release has: a PoolRecord per pool (key = pool name), unless its record says so
 * already, and a tombstone for each pool it lists that the release no longer declares
 * (pool-declarations.ts decides which). Without KAFKA_POOLS only the default pool's topics
 * are made and chat.models is left as it is.
 *
 *   KAFKA_BROKERS=... KAFKA_REQUEST_PARTITIONS=12 node dist/scripts/deploy/create-topics.js
 *
 * Exit codes: 0 topics ready (and the pools declared), 1 Kafka failed or existing topics'
 * partitions differ, 2 bad configuration.
 */
import { ConfigError } from "../../contracts/config/env.js";
import { loadKafkaConfig, type KafkaConfig } from "../../contracts/config/shared.js";
import { decodeRecord, encodeRecord, loggableReason } from "../../contracts/records/codec.js";
import { poolRecordSchema } from "../../contracts/records/models.js";
import { topicNames } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { AssignedReader } from "../../platform/kafka/assigned-reader.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger, type Logger } from "../../platform/logger.js";
import { ensureTopics } from "../../platform/topic-admin.js";
import { declarationPlan, parsePools, poolTopicSpecs, type CurrentPool, type PoolDeclaration } from "./pool-declarations.js";

/** How long reading chat.models whole may take, ms. */
const READ_TIMEOUT_MS = 60_000;

async function main(): Promise<number> {
  let config;
  let pools: PoolDeclaration[] | null;
  try {
    config = loadKafkaConfig();
    pools = parsePools(process.env.KAFKA_POOLS);
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
    const specs = poolTopicSpecs(config.topicPrefix, pools, config);
    const result = await ensureTopics(admin, specs, logger);
    logger.info({ ...result, brokers: config.brokers }, "topics ready");
    if (pools) await declarePools(config, admin, topicNames(config.topicPrefix).models, pools, logger);
    return 0;
  } finally {
    admin.close();
  }
}

/** Makes chat.models say what the release declares (pool-declarations.ts). */
async function declarePools(config: KafkaConfig, admin: KafkaAdmin, topic: string, pools: readonly PoolDeclaration[], logger: Logger): Promise<void> {
  const current = await readModels(config, admin, topic, logger);
  const plan = declarationPlan(pools, current, Date.now());
  if (plan.records.length > 0) {
    const producer = await KafkaProducer.connect(config, { logger, clientId: `${config.clientId}-topics-job` });
    try {
      await producer.send({ topic, messages: plan.records.map((r) => ({ key: r.key, value: r.value === null ? null : encodeRecord(r.value) })) });
    } finally {
      await producer.disconnect();
    }
  }
  logger.info(
    {
      topic,
      declared: plan.records.filter((r) => r.value !== null).map((r) => r.key),
      unchanged: plan.unchanged,
      removed: plan.removed,
    },
    "pools declared",
  );
}

/**
 * chat.models' latest record per key, read whole (from each partition's log start to its end
 * now) by assignment: no group is joined and nothing is committed.
 */
async function readModels(config: KafkaConfig, admin: KafkaAdmin, topic: string, logger: Logger): Promise<Map<string, CurrentPool>> {
  const current = new Map<string, CurrentPool>();
  const wanted = (await admin.offsets(topic)).filter((o) => o.high > o.low);
  if (wanted.length === 0) return current;
  const end = new Map(wanted.map((o) => [o.partition, o.high]));
  const reader = new AssignedReader({
    kafka: config,
    topic,
    name: "models-reader",
    // A group id the binding wants; never joined, nothing committed under it.
    groupId: `${config.clientId}-topics-job`,
    logger,
    onRecords: (records) => {
      for (const r of records) {
        if (r.offset >= (end.get(r.partition) ?? 0) || r.key === null) continue;
        const key = r.key.toString("utf8");
        if (r.value === null) {
          current.set(key, null);
          continue;
        }
        const decoded = decodeRecord(poolRecordSchema, r.value);
        if (!decoded.ok) logger.warn({ key, offset: r.offset, reason: loggableReason(decoded.reason) }, "a chat.models record is not a pool record");
        current.set(key, decoded.ok ? decoded.value : "invalid");
      }
    },
  });
  await reader.start();
  try {
    for (const o of wanted) reader.add(o.partition, o.low);
    const deadline = Date.now() + READ_TIMEOUT_MS;
    for (const o of wanted) {
      if (!(await reader.waitFor(o.partition, o.high, Math.max(1, deadline - Date.now())))) {
        throw new Error(`reading ${topic} did not reach its end (partition ${o.partition}, offset ${o.high}) within ${READ_TIMEOUT_MS} ms`);
      }
    }
  } finally {
    await reader.stop();
  }
  return current;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`create-topics: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  },
);
