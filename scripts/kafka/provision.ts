/**
 * Makes an install ready on a secured broker (kafka/security.ts), as an operator would on a
 * production cluster: the topics, created by the topics principal with the chart's topics
 * Job code, and every component's ACLs (contracts/kafka-acls.ts), created by the
 * administrator. Idempotent: run again, it creates nothing twice. Used by run-local, the
 * tests, the bench and the chaos run.
 */
import kafkajs, { type AclEntry } from "kafkajs";
import type { KafkaConfig } from "../../contracts/config.js";
import { componentAcls, KAFKA_COMPONENTS, type AclOperation, type InstallNames } from "../../contracts/kafka-acls.js";
import { topicSpecs, type TopicSettings } from "../../contracts/topics.js";
import { createKafka } from "../../platform/kafka.js";
import { createLogger } from "../../platform/logger.js";
import { ensureTopics } from "../../platform/topic-admin.js";
import type { BrokerCredentials, BrokerRole } from "./security.js";

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const OPERATIONS: Record<AclOperation, number> = {
  Read: AclOperationTypes.READ,
  Write: AclOperationTypes.WRITE,
  Create: AclOperationTypes.CREATE,
  Describe: AclOperationTypes.DESCRIBE,
  DescribeConfigs: AclOperationTypes.DESCRIBE_CONFIGS,
};

/** The Kafka principal of a role's user. */
export function principalOf(credentials: BrokerCredentials, role: BrokerRole): string {
  return `User:${credentials.users[role].username}`;
}

/** Every component's ACLs for an install, as Kafka ACL bindings (one per operation). */
export function aclBindings(credentials: BrokerCredentials, names: InstallNames): AclEntry[] {
  const acls = componentAcls(names);
  return KAFKA_COMPONENTS.flatMap((component) =>
    acls[component].flatMap((rule) =>
      rule.operations.map((operation) => ({
        principal: principalOf(credentials, component),
        host: "*",
        operation: OPERATIONS[operation],
        permissionType: AclPermissionTypes.ALLOW,
        resourceType: rule.resource.type === "topic" ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
        resourceName: rule.resource.name,
        resourcePatternType: rule.resource.patternType === "literal" ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
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
  // kafkajs logs the retries of a topic not yet served as errors; what matters throws.
  const logger = createLogger("provision", "fatal");
  const admin = createKafka(loginConfig(options.brokers, options.credentials, "admin", options.tls), logger).admin();
  await admin.connect();
  try {
    await admin.createAcls({ acl: aclBindings(options.credentials, options.names) });
  } finally {
    await admin.disconnect();
  }
  const topics = createKafka(loginConfig(options.brokers, options.credentials, "topics", options.tls), logger).admin();
  await topics.connect();
  try {
    await ensureTopics(topics, topicSpecs(options.names.topics, options.settings), logger);
  } finally {
    await topics.disconnect();
  }
}
