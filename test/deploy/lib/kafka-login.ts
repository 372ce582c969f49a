/**
 * The deploy checks on the secured test broker (scripts/kafka/security.ts: SASL/SCRAM, one
 * principal per component, deny by default): the chart's kafka.sasl values for its
 * principals, and ACLs granted or read back as an operator would (contracts/kafka-acls.ts).
 */
import kafkajs, { Kafka, logLevel, type AclEntry } from "kafkajs";
import type { InstallNames, KafkaComponent } from "../../../contracts/kafka-acls.js";
import { aclBindings, principalOf } from "../../../scripts/kafka/provision.js";
import type { BrokerCredentials } from "../../../scripts/kafka/security.js";
import { kafkajsClient, type TestKafka } from "../../helpers/kafka.js";

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

/**
 * kafka.sasl values that log each of `components` in as its principal on the broker: its
 * username and password, the password going into the chart's Secret (local and CI only).
 * Empty on a plaintext broker (no credentials).
 */
export function saslValues(credentials: BrokerCredentials | null, components: readonly KafkaComponent[]): Record<string, string | boolean> {
  if (!credentials) return {};
  const values: Record<string, string | boolean> = { "kafka.sasl.enabled": true, "kafka.sasl.mechanism": credentials.mechanism };
  for (const c of components) {
    values[`kafka.sasl.${c}.username`] = credentials.users[c].username;
    values[`kafka.sasl.${c}.password`] = credentials.users[c].password;
  }
  return values;
}

/** The same values as helm install/upgrade arguments. */
export function setArgs(values: Readonly<Record<string, string | boolean>>): string[] {
  return Object.entries(values).flatMap(([k, v]) => (typeof v === "string" ? ["--set", `${k}=${v}`] : ["--set-json", `${k}=${JSON.stringify(v)}`]));
}

function adminClient(kafka: Pick<TestKafka, "brokers" | "credentials">) {
  return new Kafka({ ...kafkajsClient(kafka), clientId: "deploy-checks-acls", logLevel: logLevel.NOTHING }).admin();
}

/** As the administrator, grants `components` their ACLs of the install (contracts/kafka-acls.ts), and no one else's. */
export async function grantAcls(
  kafka: Pick<TestKafka, "brokers" | "credentials">,
  names: InstallNames,
  components: readonly KafkaComponent[],
): Promise<AclEntry[]> {
  if (!kafka.credentials) throw new Error("grantAcls needs a secured broker (KAFKA_CREDENTIALS_FILE)");
  const principals = new Set(components.map((c) => principalOf(kafka.credentials!, c)));
  const acl = aclBindings(kafka.credentials, names).filter((b) => principals.has(b.principal));
  const admin = adminClient(kafka);
  await admin.connect();
  try {
    await admin.createAcls({ acl });
  } finally {
    await admin.disconnect();
  }
  return acl;
}

/** One ACL as the broker holds it, in words: `topic:literal:t-x.chat.requests Describe`. */
export type AclText = string;

const TYPE_NAMES: Record<number, string> = { [AclResourceTypes.TOPIC]: "topic", [AclResourceTypes.GROUP]: "group", [AclResourceTypes.CLUSTER]: "cluster" };
const PATTERN_NAMES: Record<number, string> = { [ResourcePatternTypes.LITERAL]: "literal", [ResourcePatternTypes.PREFIXED]: "prefixed" };
/** Operations as Kafka and contracts/kafka-acls.ts spell them: DESCRIBE_CONFIGS is DescribeConfigs. */
const OPERATION_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(AclOperationTypes).map(([k, v]) => [v, k.toLowerCase().replace(/(^|_)([a-z])/g, (_, _sep: string, c: string) => c.toUpperCase())]),
);

/**
 * Every ALLOW ACL the broker holds for a component's principal that reaches a resource of
 * `resources` (by its literal name, a prefix of it, or the wildcard), as AclText, sorted;
 * any DENY rule for the principal throws (the checks grant allows only).
 */
export async function aclsReaching(
  kafka: Pick<TestKafka, "brokers" | "credentials">,
  component: KafkaComponent,
  resources: ReadonlyArray<{ type: "topic" | "group"; name: string }>,
): Promise<AclText[]> {
  if (!kafka.credentials) throw new Error("aclsReaching needs a secured broker (KAFKA_CREDENTIALS_FILE)");
  const principal = principalOf(kafka.credentials, component);
  const admin = adminClient(kafka);
  await admin.connect();
  try {
    const { resources: held } = await admin.describeAcls({
      resourceType: AclResourceTypes.ANY,
      resourcePatternType: ResourcePatternTypes.ANY,
      principal,
      host: "*",
      operation: AclOperationTypes.ANY,
      permissionType: AclPermissionTypes.ANY,
    });
    const out: AclText[] = [];
    for (const r of held) {
      const type = TYPE_NAMES[r.resourceType] ?? `type-${r.resourceType}`;
      const pattern = PATTERN_NAMES[r.resourcePatternType] ?? `pattern-${r.resourcePatternType}`;
      // A cluster-wide rule reaches everything.
      const reaches =
        type === "cluster" ||
        resources.some(
          (x) => type === x.type && (r.resourceName === "*" || r.resourceName === x.name || (pattern === "prefixed" && x.name.startsWith(r.resourceName))),
        );
      for (const a of r.acls) {
        if (a.permissionType !== AclPermissionTypes.ALLOW) throw new Error(`${principal} has a rule that is not ALLOW on ${type}:${r.resourceName}`);
        if (reaches) out.push(`${type}:${pattern}:${r.resourceName} ${OPERATION_NAMES[a.operation] ?? a.operation}`);
      }
    }
    return out.sort();
  } finally {
    await admin.disconnect();
  }
}
