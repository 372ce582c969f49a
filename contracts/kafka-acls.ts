/**
 * What each component of an install may do on Kafka, and nothing more: the ACLs its
 * principal needs on the install's topics and consumer groups. The broker enforces them
 * (StandardAuthorizer, deny by default): a compromised gateway cannot rewrite a
 * conversation's memory, and nothing but a worker can join the workers' group, so nothing
 * else can claim partitions or advertise itself to the gateways as an owner.
 *
 * One table, three uses: the local and test brokers are provisioned from it
 * (scripts/kafka/provision.ts), the chart renders Strimzi KafkaUser resources that a test
 * checks against it, and docs/kubernetes.md lists it as kafka-acls.sh commands for other
 * clusters (a test holds them to it; docs/security.md says what it means).
 *
 * Group names follow one rule, so that one prefixed ACL covers a component's private groups:
 * the workers' group, and `<workers' group>.` before every group only a worker uses (its
 * memory and cancel readers); the gateways' group on chat.events, and `<gateways' group>.`
 * before every group only a gateway uses (its request-id reader, named history readers'
 * positions, its offset readers).
 */
import { POOL_TOPIC_PREFIXES, poolGroupPrefix } from "./pools.js";
import { TOPIC_BASE_NAMES, type TopicNames } from "./topics.js";

export const KAFKA_COMPONENTS = ["gateway", "worker", "topics", "autoscaler"] as const;
/** gateway: the HTTP front; worker: the model pods; topics: the chart's topics Job; autoscaler: KEDA's Kafka scaler. */
export type KafkaComponent = (typeof KAFKA_COMPONENTS)[number];

/** Kafka's ACL operations, spelled as Kafka and Strimzi spell them. */
export type AclOperation = "Read" | "Write" | "Create" | "Describe" | "DescribeConfigs";
export type AclResourceType = "topic" | "group" | "transactionalId";
export type AclPatternType = "literal" | "prefixed";

/** One allow rule: the operations a component may do on the resources a name or prefix matches. */
export interface AclRule {
  readonly resource: { readonly type: AclResourceType; readonly name: string; readonly patternType: AclPatternType };
  readonly operations: readonly AclOperation[];
}

/** The names of one install that its ACLs talk about. */
export interface InstallNames {
  readonly topics: TopicNames;
  /** The workers' consumer group (the workers' WORKER_GROUP_ID, the gateways' WORKER_GROUP_ID). */
  readonly workerGroup: string;
  /** The gateways' consumer group on chat.events (GATEWAY_EVENTS_GROUP_ID). */
  readonly gatewayGroup: string;
}

/**
 * A worker's transactional id (WORKER_TRANSACTIONS): under the workers' group, so one
 * prefixed ACL covers every worker's, and stable for a worker id (a pod restarted under its
 * name aborts what its previous run left open).
 */
export function transactionalId(workerGroup: string, workerId: string): string {
  return `${workerGroup}.tx.${workerId}`;
}

/** A private group of a component: its group, a dot, and what it is for. */
export function privateGroup(componentGroup: string, purpose: string): string {
  return `${componentGroup}.${purpose}`;
}

const topic = (name: string, ...operations: AclOperation[]): AclRule => ({ resource: { type: "topic", name, patternType: "literal" }, operations });
const group = (name: string, patternType: AclPatternType, ...operations: AclOperation[]): AclRule => ({
  resource: { type: "group", name, patternType },
  operations,
});
/** The workers' transactional ids (WORKER_TRANSACTIONS): every id under `<group>.tx.`. */
const transactionalIds = (workerGroup: string): AclRule => ({
  resource: { type: "transactionalId", name: transactionalId(workerGroup, ""), patternType: "prefixed" },
  operations: ["Write", "Describe"],
});
/** A component's group and every group named `<group>.…`: Read (which lets it join, commit and describe). */
const ownGroups = (name: string): AclRule[] => [group(name, "literal", "Read"), group(`${name}.`, "prefixed", "Read")];

/**
 * The ACLs of every component of an install. Throws when the two groups' names would let
 * one component's prefixed rule reach the other's groups.
 *
 * - gateway: writes requests and cancels; reads chat.requests (request ids, for status on
 *   any replica), chat.events (its group) and chat.history (exact offsets, named readers'
 *   positions); describes the workers' group (who owns a partition, queued notices, lag).
 *   Nothing on chat.memory: conversation reads go to the owning worker.
 * - worker: reads requests (the workers' group) and cancels; writes events, memory,
 *   history and dead letters; reads memory (restores), events and history (replays); with
 *   WORKER_TRANSACTIONS, writes them in transactions under its transactional ids.
 * - topics: creates the topics and checks their settings; reads and writes no record.
 * - autoscaler: the workers' lag: the request topic's offsets and the group's committed
 *   offsets (Describe); reads no record and joins no group.
 */
export function componentAcls(names: InstallNames): Record<KafkaComponent, AclRule[]> {
  const { workerGroup, gatewayGroup } = names;
  if (workerGroup === gatewayGroup || workerGroup.startsWith(`${gatewayGroup}.`) || gatewayGroup.startsWith(`${workerGroup}.`)) {
    throw new Error(`the workers' group (${workerGroup}) and the gateways' group (${gatewayGroup}) must not be one another or start with the other and a dot`);
  }
  const topics = topicRules(names.topics);
  return {
    gateway: [...topics.gateway, ...ownGroups(gatewayGroup), ...workerGroups(workerGroup, "Describe")],
    worker: [...topics.worker, ...ownGroups(workerGroup), transactionalIds(workerGroup)],
    topics: topics.topics,
    autoscaler: [...topics.autoscaler, ...workerGroups(workerGroup, "Describe")],
  };
}

/** The workers' group of the default pool and every other pool's (`<group>.pool.…`, contracts/pools.ts). */
const workerGroups = (workerGroup: string, ...operations: AclOperation[]): AclRule[] => [
  group(workerGroup, "literal", ...operations),
  group(poolGroupPrefix(workerGroup), "prefixed", ...operations),
];

/**
 * The topic part of componentAcls. A role of the default pool's (chat.requests, chat.memory)
 * comes with the same rule on the prefix every other pool's topic of that role starts with,
 * so a pool added later needs no ACL of its own.
 */
function topicRules(t: TopicNames): Record<KafkaComponent, AclRule[]> {
  const prefix = t.events.slice(0, t.events.length - TOPIC_BASE_NAMES.events.length);
  const pools = (role: keyof typeof POOL_TOPIC_PREFIXES, ...operations: AclOperation[]): AclRule => ({
    resource: { type: "topic", name: `${prefix}${POOL_TOPIC_PREFIXES[role]}`, patternType: "prefixed" },
    operations,
  });
  const both = (role: keyof typeof POOL_TOPIC_PREFIXES, ...operations: AclOperation[]): AclRule[] => [
    topic(t[role], ...operations),
    pools(role, ...operations),
  ];
  return {
    gateway: [
      ...both("requests", "Write", "Read", "DescribeConfigs"),
      topic(t.control, "Write", "DescribeConfigs"),
      topic(t.events, "Read", "DescribeConfigs"),
      topic(t.history, "Read", "DescribeConfigs"),
      topic(t.models, "Read", "DescribeConfigs"),
    ],
    worker: [
      // Write: a conversation moving to another pool is passed on to that pool's topic by its owner (worker/move.ts).
      ...both("requests", "Read", "Write", "DescribeConfigs"),
      topic(t.control, "Read", "DescribeConfigs"),
      topic(t.events, "Write", "Read", "DescribeConfigs"),
      ...both("memory", "Write", "Read", "DescribeConfigs"),
      topic(t.history, "Write", "Read", "DescribeConfigs"),
      topic(t.deadLetter, "Write", "DescribeConfigs"),
      topic(t.models, "Write", "DescribeConfigs"),
    ],
    topics: [
      ...[t.requests, t.events, t.memory, t.history, t.control, t.deadLetter].map((name) => topic(name, "Create", "Describe", "DescribeConfigs")),
      pools("requests", "Create", "Describe", "DescribeConfigs"),
      pools("memory", "Create", "Describe", "DescribeConfigs"),
      // The Job declares the release's pools and removes those it no longer has.
      topic(t.models, "Create", "Describe", "DescribeConfigs", "Write", "Read"),
    ],
    autoscaler: [...both("requests", "Describe")],
  };
}

/** The topics a component uses, which it checks at start (KAFKA_ENSURE_TOPICS): those its ACLs name literally. */
export function topicsOf(topics: TopicNames, component: KafkaComponent): string[] {
  const rules = topicRules(topics)[component];
  return rules.filter((r) => r.resource.patternType === "literal").map((r) => r.resource.name);
}
