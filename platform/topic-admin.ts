/**
 * Creates the project's topics, idempotently, and reports existing topics whose
 * partitions or cleanup policy differ from what the design needs.
 */
import kafkajs, { type Admin } from "kafkajs";
import { topicsOf, type KafkaComponent } from "../contracts/kafka-acls.js";
import { topicSpecs, type TopicNames, type TopicSettings, type TopicSpec } from "../contracts/topics.js";
import { KafkaLlmError } from "../contracts/errors.js";
import type { Logger } from "./logger.js";

// kafkajs is CommonJS; Node cannot see this export by name.
const { ConfigResourceTypes } = kafkajs;

export class TopicMismatchError extends KafkaLlmError {
  readonly mismatches: readonly string[];
  constructor(mismatches: string[]) {
    super("config_invalid", `existing topics do not match the configuration:\n  - ${mismatches.join("\n  - ")}`);
    this.name = "TopicMismatchError";
    this.mismatches = mismatches;
  }
}

export interface EnsureTopicsResult {
  created: string[];
  existing: string[];
}

/**
 * The topics a service uses and checks at start: only those (its principal may describe no
 * others; contracts/kafka-acls.ts). The topics Job checks them all (topicSpecs).
 */
export function componentTopicSpecs(component: KafkaComponent, topics: TopicNames, settings: TopicSettings): TopicSpec[] {
  const used = new Set(topicsOf(topics, component));
  return topicSpecs(topics, settings).filter((s) => used.has(s.name));
}

/**
 * Creates missing topics; throws TopicMismatchError listing every difference found, and a
 * config_invalid error that says who may create them when Kafka refuses.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[], logger: Logger): Promise<EnsureTopicsResult> {
  const present = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !present.has(s.name));
  const existing = specs.filter((s) => present.has(s.name));

  if (missing.length > 0) {
    // createTopics answers false (not an error) when a concurrent creator won the race.
    await withAuthorizationHint(
      missing,
      admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({
          topic: s.name,
          numPartitions: s.partitions,
          replicationFactor: s.replicationFactor,
          configEntries: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
        })),
      }),
    );
    logger.info({ topics: missing.map((s) => s.name) }, "created topics");
  }
  // Every topic, not only those this process created: a replica starting beside the one
  // that created them lists them before their leaders serve them.
  await waitUntilServed(
    admin,
    specs.map((s) => s.name),
  );

  const mismatches = await findMismatches(admin, existing);
  if (mismatches.length > 0) throw new TopicMismatchError(mismatches);
  return { created: missing.map((s) => s.name), existing: existing.map((s) => s.name) };
}

/** A refused creation says what to do: the topics are created by a principal that may (the chart's topics Job). */
async function withAuthorizationHint<T>(missing: readonly TopicSpec[], creating: Promise<T>): Promise<T> {
  try {
    return await creating;
  } catch (err) {
    // kafkajs reports per-topic failures in an aggregate error, each with its own type.
    const e = err as { type?: string; errors?: Array<{ type?: string }> };
    const type = [e.type, ...(e.errors ?? []).map((x) => x.type)].find((t) => t && /AUTHORIZATION_FAILED/.test(t));
    if (!type) throw err;
    throw new KafkaLlmError(
      "config_invalid",
      `topics ${missing.map((s) => s.name).join(", ")} do not exist, and Kafka refused to create them (${type}): this principal may not create topics; run the topics Job (scripts/deploy/create-topics.ts, the chart does) or create them as docs/security.md says`,
      { cause: err },
    );
  }
}

/**
 * New partitions are in the metadata before their leader serves them (KRaft propagates
 * leadership asynchronously): until then ListOffsets answers NOT_LEADER. Wait until every
 * topic answers, so callers can read offsets straight after ensureTopics.
 */
async function waitUntilServed(admin: Admin, topics: readonly string[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const topic of topics) {
    for (;;) {
      try {
        await admin.fetchTopicOffsets(topic);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

async function findMismatches(admin: Admin, specs: readonly TopicSpec[]): Promise<string[]> {
  if (specs.length === 0) return [];
  const problems: string[] = [];
  const { topics } = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.name) });
  const configs = await admin.describeConfigs({
    includeSynonyms: false,
    resources: specs.map((s) => ({
      type: ConfigResourceTypes.TOPIC,
      name: s.name,
      configNames: Object.keys(s.configs),
    })),
  });
  for (const spec of specs) {
    const meta = topics.find((t) => t.name === spec.name);
    const partitions = meta?.partitions.length ?? 0;
    if (partitions !== spec.partitions) {
      problems.push(`${spec.name}: has ${partitions} partitions, configuration says ${spec.partitions}`);
    }
    const resource = configs.resources.find((r) => r.resourceName === spec.name);
    for (const [name, want] of Object.entries(spec.configs)) {
      const have = resource?.configEntries.find((c) => c.configName === name)?.configValue;
      if (have !== want) problems.push(`${spec.name}: ${name} is ${JSON.stringify(have)}, configuration says ${JSON.stringify(want)}`);
    }
  }
  return problems;
}
