/**
 * The real services for a scenario: workers and a gateway as child processes against one
 * broker and one topic prefix, configured as in production except where a scenario says:
 * on a secured broker (KAFKA_CREDENTIALS_FILE, set by bench/run.ts for its own broker) each
 * logs in as its component's principal, with the install's ACLs, and the bench's own
 * clients as the administrator. Every model context gets exactly one CPU thread (llama.cpp
 * spins its threads; on a 2-core machine more threads than cores would measure contention,
 * not the system).
 */
import { randomBytes } from "node:crypto";
import { loadKafkaConfig } from "../../contracts/config/shared.js";
import { topicNames, topicSpecs, type TopicNames } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { createLogger } from "../../platform/logger.js";
import { ensureTopics } from "../../platform/topic-admin.js";
import { llamaSettings } from "./llama-settings.js";
import { provisionInstall } from "../../scripts/kafka/provision.js";
import { kafkaLoginEnv, readCredentials } from "../../scripts/kafka/security.js";
import { loggedIn } from "../../testkit/stack.js";
import { freePort, startService, type Service } from "../../testkit/services.js";

export interface StackSpec {
  brokers: string;
  /** The broker's principals (KAFKA_CREDENTIALS_FILE), when it is secured. */
  credentialsFile: string | null;
  prefix: string;
  partitions: number;
  topics: TopicNames;
  /** Env every service of the scenario shares. */
  common: Record<string, string>;
}

export function uniquePrefix(name: string): string {
  return `bench-${name}-${randomBytes(3).toString("hex")}.`;
}

/**
 * A scenario's install on `brokers`. `connection`: a broker of the scenario's own (its
 * principals, and env every client needs, e.g. KAFKA_TLS); default: the run's broker.
 */
export function stackSpec(
  brokers: string,
  name: string,
  partitions: number,
  connection: { credentialsFile?: string | null; env?: Record<string, string> } = {},
): StackSpec {
  const prefix = uniquePrefix(name);
  const file = connection.credentialsFile === undefined ? runCredentialsFile() : connection.credentialsFile;
  return {
    brokers,
    credentialsFile: file,
    prefix,
    partitions,
    topics: topicNames(prefix),
    common: {
      KAFKA_BROKERS: brokers,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_REQUEST_PARTITIONS: String(partitions),
      KAFKA_REPLICATION_FACTOR: "1",
      ...(file && { KAFKA_CREDENTIALS_FILE: file }),
      ...connection.env,
    },
  };
}

/** Where the run's broker keeps its principals, when it is secured (bench/run.ts sets it). */
function runCredentialsFile(): string | null {
  return process.env.KAFKA_CREDENTIALS_FILE?.trim() || null;
}

/**
 * Creates the scenario's topics up front, so no service races another to create them; on a
 * secured broker as an operator would (scripts/kafka/provision.ts: the topics and every
 * component's ACLs).
 */
export async function createTopics(spec: StackSpec): Promise<void> {
  const settings = {
    requestPartitions: spec.partitions,
    eventPartitions: spec.partitions,
    replicationFactor: 1,
    conversationTtlMs: 7 * 24 * 3_600_000,
    history: { retentionMs: 7 * 24 * 3_600_000, partitions: spec.partitions, replicationFactor: 1 },
  };
  const file = spec.credentialsFile;
  if (file) {
    const names = { topics: spec.topics, workerGroup: `${spec.prefix}workers`, gatewayGroup: `${spec.prefix}kafka-llm-gateways` };
    const tls = loadKafkaConfig(spec.common).tls;
    await provisionInstall({ brokers: spec.brokers, credentials: readCredentials(file), names, settings, tls });
    return;
  }
  const logger = createLogger("bench", "fatal");
  const admin = new KafkaAdmin(benchKafkaConfig(spec.brokers, "bench-admin", spec.common, null));
  try {
    await ensureTopics(admin, topicSpecs(spec.topics, settings), logger);
  } finally {
    admin.close();
  }
}

/** A worker on stories260K, one CPU thread, in the scenario's group. `entry` may be a bench variant. */
export async function startWorker(spec: StackSpec, model: string, name: string, env: Record<string, string> = {}, entry = "worker/main.ts"): Promise<Service> {
  const port = await freePort();
  return startService({
    name,
    entry,
    port,
    readyPath: "/readyz",
    timeoutMs: 120_000,
    env: await loggedIn(
      {
        ...spec.common,
        WORKER_GROUP_ID: `${spec.prefix}workers`,
        WORKER_ID: name,
        WORKER_HTTP_HOST: "127.0.0.1",
        WORKER_HTTP_PORT: String(port),
        MODEL: model,
        LLAMA_GPU: llamaSettings().gpu,
        LLAMA_THREADS: String(llamaSettings().threads),
        ...env,
      },
      "worker",
    ),
  });
}

/** A gateway without auth (GATEWAY_AUTH=none: everything runs as tenant "local"). `entry` may be another tree's. */
export async function startGateway(spec: StackSpec, env: Record<string, string> = {}, entry = "gateway/main.ts", timeoutMs = 120_000): Promise<Service> {
  const port = await freePort();
  return startService({
    name: "gateway",
    entry,
    port,
    readyPath: "/readyz",
    timeoutMs,
    env: await loggedIn(
      {
        ...spec.common,
        GATEWAY_HOST: "127.0.0.1",
        GATEWAY_PORT: String(port),
        GATEWAY_AUTH: "none",
        WORKER_GROUP_ID: `${spec.prefix}workers`,
        // As the gateway's image sets it (Dockerfile.gateway): a libuv thread for each Kafka reader.
        UV_THREADPOOL_SIZE: "16",
        ...env,
      },
      "gateway",
    ),
  });
}

/** The partitions a worker holds, from its latest "partitions assigned" or "partitions released" log line. */
export function assignedPartitions(worker: Service): number[] | null {
  for (let i = worker.logs.length - 1; i >= 0; i--) {
    const r = worker.logs[i]!.record;
    if (r.msg === "partitions assigned" || r.msg === "partitions released") return (r.partitions as number[]) ?? [];
  }
  return null;
}

/**
 * The project's Kafka config for a bench client, parsed like a service's (so new settings get
 * their defaults), logged in as the administrator on a secured broker (the bench observes
 * and drives everything).
 */
export function benchKafkaConfig(brokers: string, clientId: string, extra: Record<string, string> = {}, credentialsFile = runCredentialsFile()) {
  const login = credentialsFile ? kafkaLoginEnv(readCredentials(credentialsFile), "admin") : {};
  const { KAFKA_CREDENTIALS_FILE: _file, ...env } = extra;
  return loadKafkaConfig({ KAFKA_BROKERS: brokers, KAFKA_CLIENT_ID: clientId, KAFKA_REPLICATION_FACTOR: "1", ...login, ...env });
}
