/**
 * Makes an install ready on a secured broker (kafka/security.ts), as an operator would on a
 * production cluster: the topics, created by the topics principal with the chart's topics
 * Job code, and every component's ACLs (contracts/kafka-acls.ts), created by the
 * administrator. Idempotent: run again, it creates nothing twice. Used by run-local, the
 * tests, the bench and the chaos run.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { componentAcls, KAFKA_COMPONENTS, type AclOperation, type AclResourceType, type InstallNames } from "../../contracts/kafka-acls.js";
import { topicSpecs, type TopicSettings } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { createLogger } from "../../platform/logger.js";
import { ensureTopics } from "../../platform/topic-admin.js";
import { createAcls, type AclBinding } from "./admin-tool.js";
import type { BrokerCredentials, BrokerRole } from "./security.js";

/** contracts/kafka-acls.ts's operations in Kafka's enum names. */
const OPERATIONS: Record<AclOperation, string> = {
  Read: "READ",
  Write: "WRITE",
  Create: "CREATE",
  Describe: "DESCRIBE",
  DescribeConfigs: "DESCRIBE_CONFIGS",
};

/** The Kafka principal of a role's user. */
export function principalOf(credentials: BrokerCredentials, role: BrokerRole): string {
  return `User:${credentials.users[role].username}`;
}

/** Kafka's ResourceType names. */
const RESOURCE_TYPES: Record<AclResourceType, AclBinding["resourceType"]> = { topic: "TOPIC", group: "GROUP", transactionalId: "TRANSACTIONAL_ID" };

/** Every component's ACLs for an install, as Kafka ACL bindings (one per operation). */
export function aclBindings(credentials: BrokerCredentials, names: InstallNames): AclBinding[] {
  const acls = componentAcls(names);
  return KAFKA_COMPONENTS.flatMap((component) =>
    acls[component].flatMap((rule) =>
      rule.operations.map((operation) => ({
        resourceType: RESOURCE_TYPES[rule.resource.type],
        resourceName: rule.resource.name,
        patternType: rule.resource.patternType === "literal" ? "LITERAL" : "PREFIXED",
        principal: principalOf(credentials, component),
        host: "*",
        operation: OPERATIONS[operation],
        permission: "ALLOW",
      })),
    ),
  );
}

/** A KafkaConfig that logs in as `role` (over TLS with `tls`, a KafkaConfig's). */
export function loginConfig(brokers: string, credentials: BrokerCredentials, role: BrokerRole, tls: KafkaConfig["tls"] = null): KafkaConfig {
  const p = credentials.users[role];
  return {
    brokers: brokers.split(","),
    clientId: `kafka-llm-provision-${role}`,
    topicPrefix: "",
    requestPartitions: 1,
    eventPartitions: 1,
    replicationFactor: -1,
    minInsyncReplicas: 0,
    ensureTopics: false,
    conversationTtlMs: 0,
    history: { retentionMs: 0, partitions: 1, replicationFactor: -1 },
    sasl: { mechanism: credentials.mechanism, username: p.username, password: p.password },
    tls,
  };
}

/**
 * Creates the install's topics (as the topics principal, with the topics Job's code: missing
 * ones created, existing ones checked) and its components' ACLs (as the administrator).
 */
export async function provisionInstall(options: {
  brokers: string;
  credentials: BrokerCredentials;
  names: InstallNames;
  settings: TopicSettings;
  /** A TLS listener's settings (KafkaConfig's tls); none: SASL_PLAINTEXT. */
  tls?: KafkaConfig["tls"];
}): Promise<void> {
  // The ACLs first (Kafka's Java AdminClient: librdkafka's binding has no ACL calls), so the
  // topics principal may create the topics.
  await createAcls(loginConfig(options.brokers, options.credentials, "admin", options.tls), aclBindings(options.credentials, options.names));
  // What matters throws; the retries of a topic not yet served are noise here.
  const logger = createLogger("provision", "fatal");
  const topics = new KafkaAdmin(loginConfig(options.brokers, options.credentials, "topics", options.tls));
  try {
    await ensureTopics(topics, topicSpecs(options.names.topics, options.settings), logger);
  } finally {
    topics.close();
  }
}
