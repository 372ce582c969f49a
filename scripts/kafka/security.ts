/**
 * The local broker's security: clients authenticate with SASL/SCRAM-SHA-512, and Kafka's
 * StandardAuthorizer allows each principal only what an ACL grants (deny by default), as a
 * production cluster should. One principal per component (contracts/kafka-acls.ts) plus an
 * administrator, each with a random password made when the broker's data dir is formatted
 * and kept in `credentials.json` there (mode 0600), so a broker restarted on the same data
 * dir keeps them. The controller listener (broker-to-controller, in the same JVM) uses SASL
 * PLAIN with a user of its own: SCRAM credentials live in the metadata log, which the
 * controller must be able to read before anyone logs in.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { KAFKA_COMPONENTS, type KafkaComponent } from "../../contracts/kafka-acls.js";

/** The administrator (a super user: creates ACLs, and reads anything, as tests' observers do), then one principal per component. */
export type BrokerRole = "admin" | KafkaComponent;
export const BROKER_ROLES: readonly BrokerRole[] = ["admin", ...KAFKA_COMPONENTS];

export interface Principal {
  readonly username: string;
  readonly password: string;
}

/** The principals of a secured broker; what KAFKA_CREDENTIALS_FILE holds. */
export interface BrokerCredentials {
  readonly mechanism: "scram-sha-512";
  readonly users: Readonly<Record<BrokerRole, Principal>>;
  /** The controller listener's own user (SASL PLAIN, inside the broker's JVM only). */
  readonly controller: Principal;
}

export const CREDENTIALS_FILE = "credentials.json";

const secret = () => randomBytes(24).toString("hex");

export function newCredentials(): BrokerCredentials {
  const users = Object.fromEntries(BROKER_ROLES.map((role) => [role, { username: role === "admin" ? "admin" : `kafka-llm-${role}`, password: secret() }]));
  return { mechanism: "scram-sha-512", users: users as Record<BrokerRole, Principal>, controller: { username: "controller", password: secret() } };
}

/** The credentials kept in a data dir, or new ones written there (mode 0600). */
export function credentialsIn(dataDir: string): BrokerCredentials {
  const file = path.join(dataDir, CREDENTIALS_FILE);
  if (fs.existsSync(file)) return readCredentials(file);
  const creds = newCredentials();
  fs.writeFileSync(file, JSON.stringify(creds, null, 2), { mode: 0o600 });
  return creds;
}

export function readCredentials(file: string): BrokerCredentials {
  const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as BrokerCredentials;
  for (const role of BROKER_ROLES) {
    if (!parsed.users?.[role]?.username || !parsed.users[role].password) throw new Error(`${file}: no credentials for ${role}`);
  }
  return parsed;
}

const jaas = (module: "scram.ScramLoginModule" | "plain.PlainLoginModule", p: Principal, extra = "") =>
  `org.apache.kafka.common.security.${module} required username="${p.username}" password="${p.password}"${extra};`;

/** A TLS client listener's PEM files (kafka/certificates.ts makes them). */
export interface BrokerTls {
  /** The broker's private key and certificate chain, one PEM file. */
  readonly keystore: string;
  /** The CA that signed it (clients trust it too). */
  readonly ca: string;
}

/**
 * server.properties entries for SCRAM on the client listener (SASL_PLAINTEXT, or SASL_SSL
 * with `tls`), PLAIN on the controller's, and the StandardAuthorizer denying what no ACL
 * allows. `${port}` and `${controllerPort}` are filled in by serverProperties.
 */
export function securedServerProperties(creds: BrokerCredentials, tls?: BrokerTls): Record<string, string> {
  const admin = creds.users.admin;
  const controller = creds.controller;
  const client = tls ? "SASL_SSL" : "SASL_PLAINTEXT";
  return {
    listeners: `${client}://127.0.0.1:\${port},CONTROLLER://127.0.0.1:\${controllerPort}`,
    "advertised.listeners": `${client}://127.0.0.1:\${port}`,
    "listener.security.protocol.map": `${client}:${client},CONTROLLER:SASL_PLAINTEXT`,
    "inter.broker.listener.name": client,
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
    [`listener.name.${client.toLowerCase()}.scram-sha-512.sasl.jaas.config`]: jaas("scram.ScramLoginModule", admin),
    ...(tls && {
      "ssl.keystore.type": "PEM",
      "ssl.keystore.location": tls.keystore,
      "ssl.truststore.type": "PEM",
      "ssl.truststore.location": tls.ca,
    }),
    "sasl.mechanism.controller.protocol": "PLAIN",
    "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
    "listener.name.controller.plain.sasl.jaas.config": jaas("plain.PlainLoginModule", controller, ` user_${controller.username}="${controller.password}"`),
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "false",
    "super.users": `User:${admin.username};User:${controller.username}`,
  };
}

/** The storage tool's arguments that create the SCRAM users when the data dir is formatted. */
export function scramFormatArgs(creds: BrokerCredentials): string[] {
  return BROKER_ROLES.flatMap((role) => ["--add-scram", `SCRAM-SHA-512=[name=${creds.users[role].username},password=${creds.users[role].password}]`]);
}

/** A service's Kafka login as environment variables (contracts/config/shared.ts). */
export function kafkaLoginEnv(creds: BrokerCredentials | null, role: BrokerRole): Record<string, string> {
  if (creds === null) return {};
  const p = creds.users[role];
  return { KAFKA_SASL_MECHANISM: creds.mechanism, KAFKA_SASL_USERNAME: p.username, KAFKA_SASL_PASSWORD: p.password };
}
