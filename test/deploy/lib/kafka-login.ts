/**
 * The deploy checks on the secured test broker (scripts/kafka/security.ts: SASL/SCRAM, one
 * principal per component, deny by default): the chart's kafka.sasl values for its
 * principals, and ACLs granted or read back as an operator would (contracts/kafka-acls.ts).
 */
import type { InstallNames, KafkaComponent } from "../../../contracts/kafka-acls.js";
import { createAcls, describeAcls, type AclBinding } from "../../../scripts/kafka/admin-tool.js";
import { aclBindings, principalOf } from "../../../scripts/kafka/provision.js";
import type { BrokerCredentials } from "../../../scripts/kafka/security.js";
import { kafkaConfigFor, type TestKafka } from "../../helpers/kafka.js";

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

/** The administrator's login (ACLs are made and read with Kafka's Java AdminClient: scripts/kafka/admin-tool.ts). */
function adminConfig(kafka: Pick<TestKafka, "brokers" | "credentials">) {
  return { ...kafkaConfigFor(kafka), clientId: "deploy-checks-acls" };
}

/** As the administrator, grants `components` their ACLs of the install (contracts/kafka-acls.ts), and no one else's. */
export async function grantAcls(
  kafka: Pick<TestKafka, "brokers" | "credentials">,
  names: InstallNames,
  components: readonly KafkaComponent[],
): Promise<AclBinding[]> {
  if (!kafka.credentials) throw new Error("grantAcls needs a secured broker (KAFKA_CREDENTIALS_FILE)");
  const principals = new Set(components.map((c) => principalOf(kafka.credentials!, c)));
  const acl = aclBindings(kafka.credentials, names).filter((b) => principals.has(b.principal));
  await createAcls(adminConfig(kafka), acl);
  return acl;
}

/** One ACL as the broker holds it, in words: `topic:literal:t-x.chat.requests Describe`. */
export type AclText = string;

/** Kafka's enum names as contracts/kafka-acls.ts spells them: TOPIC is topic, DESCRIBE_CONFIGS is DescribeConfigs. */
const lower = (name: string) => name.toLowerCase();
const operationName = (name: string) => name.toLowerCase().replace(/(^|_)([a-z])/g, (_, _sep: string, c: string) => c.toUpperCase());

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
  const held = await describeAcls(adminConfig(kafka), { principal });
  const out: AclText[] = [];
  for (const b of held) {
    const type = lower(b.resourceType);
    const pattern = lower(b.patternType);
    // A cluster-wide rule reaches everything.
    const reaches =
      type === "cluster" ||
      resources.some(
        (x) => type === x.type && (b.resourceName === "*" || b.resourceName === x.name || (pattern === "prefixed" && x.name.startsWith(b.resourceName))),
      );
    if (b.permission !== "ALLOW") throw new Error(`${principal} has a rule that is not ALLOW on ${type}:${b.resourceName}`);
    if (reaches) out.push(`${type}:${pattern}:${b.resourceName} ${operationName(b.operation)}`);
  }
  return out.sort();
}
