/**
 * Creates the project's topics, idempotently, waits until their leaders serve them, and
 * reports existing topics whose partition count differs from what the design needs.
 *
 * Existing topics' configs (cleanup policy, retention) are not checked: librdkafka's Node
 * binding cannot read a topic's configuration (confluentinc/confluent-kafka-javascript#444).
 * A topic this code creates gets the configs of contracts/topics.ts; one made beforehand by
 * someone else is taken as it is, and its cleanup policy and retention are the operator's
 * to keep right (docs/kubernetes.md, "Topics").
 */
import { topicsOf, type KafkaComponent } from "../contracts/kafka-acls.js";
import { topicSpecs, type TopicNames, type TopicSettings, type TopicSpec } from "../contracts/topics.js";
import { KafkaLlmError } from "../contracts/errors.js";
import type { KafkaAdmin } from "./kafka/admin.js";
import { authorizationFailure } from "./kafka/native.js";
import type { Logger } from "./logger.js";

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
 * Creates missing topics; throws TopicMismatchError listing every existing topic whose
 * partition count differs, and a config_invalid error that says who may create them when
 * Kafka refuses.
 */
export async function ensureTopics(admin: KafkaAdmin, specs: readonly TopicSpec[], logger: Logger): Promise<EnsureTopicsResult> {
  const present = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !present.has(s.name));
  const existing = specs.filter((s) => present.has(s.name));

  if (missing.length > 0) {
    // A topic a concurrent creator made first is no error (KafkaAdmin.createTopics).
    try {
      await admin.createTopics(missing.map((s) => ({ name: s.name, partitions: s.partitions, replicationFactor: s.replicationFactor, configs: s.configs })));
    } catch (err) {
      throw authorizationHint(missing, err) ?? err;
    }
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
function authorizationHint(missing: readonly TopicSpec[], err: unknown): KafkaLlmError | null {
  const refusal = authorizationFailure(err);
  if (!refusal) return null;
  return new KafkaLlmError(
    "config_invalid",
    `topics ${missing.map((s) => s.name).join(", ")} do not exist, and Kafka refused to create them (${refusal}): this principal may not create topics; run the topics Job (scripts/deploy/create-topics.ts, the chart does) or create them as docs/security.md says`,
    { cause: err },
  );
}

/**
 * New partitions are in the metadata before their leader serves them (KRaft propagates
 * leadership asynchronously): until then ListOffsets fails. Wait until every topic answers,
 * so callers can read offsets straight after ensureTopics.
 */
async function waitUntilServed(admin: KafkaAdmin, topics: readonly string[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const topic of topics) {
    for (;;) {
      try {
        const offsets = await admin.offsets(topic);
        if (offsets.length > 0) break;
        if (Date.now() > deadline) throw new Error(`topic ${topic} has no partitions yet`);
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Existing topics whose partition count is not the configured one. */
async function findMismatches(admin: KafkaAdmin, specs: readonly TopicSpec[]): Promise<string[]> {
  if (specs.length === 0) return [];
  const partitions = await admin.partitions(specs.map((s) => s.name));
  const problems: string[] = [];
  for (const spec of specs) {
    const count = partitions.get(spec.name)?.length ?? 0;
    if (count !== spec.partitions) problems.push(`${spec.name}: has ${count} partitions, configuration says ${spec.partitions}`);
  }
  return problems;
}
