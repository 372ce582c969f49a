/**
 * The real services of a test, bench or chaos run: a gateway and workers as real processes
 * against one broker and one topic prefix, each logged in as its own principal on a secured
 * broker (the install's topics and ACLs made first, as an operator would).
 */
import { loadKafkaConfig } from "../contracts/config/shared.js";
import { DEFAULT_POOL } from "../contracts/pools.js";
import { topicNames } from "../contracts/topics.js";
import { provisionInstall } from "../scripts/kafka/provision.js";
import { kafkaLoginEnv, readCredentials, type BrokerRole } from "../scripts/kafka/security.js";
import { ensureTestModel } from "../scripts/models.js";
import type { TestKafka } from "./kafka.js";
import { freePort, startService, type Service } from "./services.js";

export interface Stack {
  readonly prefix: string;
  readonly common: Record<string, string>;
}

/**
 * Env every service of a test file shares: one broker, one topic prefix, two partitions;
 * on a secured broker, where its principals' passwords are (KAFKA_CREDENTIALS_FILE, read by
 * the helpers below, never by a service).
 */
export function stackEnv(kafka: TestKafka, prefix: string, partitions = 2): Record<string, string> {
  return {
    KAFKA_BROKERS: kafka.brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_REQUEST_PARTITIONS: String(partitions),
    KAFKA_REPLICATION_FACTOR: "1",
    ...(kafka.credentialsFile && { KAFKA_CREDENTIALS_FILE: kafka.credentialsFile }),
  };
}

const provisioned = new Map<string, Promise<void>>();

/**
 * A service's env on its broker: on a secured one (KAFKA_CREDENTIALS_FILE in `env`), the
 * install's topics and ACLs are made first (once per install), and the service logs in as
 * its component's principal. The groups are the ones the service names: the workers'
 * (WORKER_GROUP_ID) and the gateways' (GATEWAY_EVENTS_GROUP_ID, or its
 * default). On a plaintext broker the env is left as it is.
 */
export async function loggedIn(env: Record<string, string>, role: BrokerRole): Promise<Record<string, string>> {
  const { KAFKA_CREDENTIALS_FILE: file, ...rest } = env;
  if (!file) return rest;
  const credentials = readCredentials(file);
  const prefix = env.KAFKA_TOPIC_PREFIX ?? "";
  // A pool's worker (WORKER_POOL) needs its pool's topics too; the ACLs cover every pool by prefix.
  const names = {
    topics: topicNames(prefix, env.WORKER_POOL ?? DEFAULT_POOL),
    workerGroup: env.WORKER_GROUP_ID ?? "kafka-llm-workers",
    gatewayGroup: env.GATEWAY_EVENTS_GROUP_ID || `${prefix}kafka-llm-gateways`,
  };
  const settings = loadKafkaConfig(rest);
  const id = JSON.stringify([env.KAFKA_BROKERS, file, names]);
  if (!provisioned.has(id)) provisioned.set(id, provisionInstall({ brokers: env.KAFKA_BROKERS!, credentials, names, settings, tls: settings.tls }));
  await provisioned.get(id);
  return { ...rest, ...kafkaLoginEnv(credentials, role) };
}

/** Starts a gateway and waits until it is ready (it has read its look-back and chat.memory). */
export async function startGateway(common: Record<string, string>, env: Record<string, string> = {}, name = "gateway"): Promise<Service> {
  const port = await freePort();
  return startService({
    name,
    entry: "gateway/main.ts",
    port,
    readyPath: "/readyz",
    env: await loggedIn(
      {
        ...common,
        GATEWAY_HOST: "127.0.0.1",
        GATEWAY_PORT: String(port),
        // As the gateway's image sets it (Dockerfile.gateway): a thread for each Kafka reader.
        UV_THREADPOOL_SIZE: "16",
        WORKER_GROUP_ID: `${common.KAFKA_TOPIC_PREFIX ?? ""}workers`,
        ...env,
      },
      "gateway",
    ),
  });
}

/** Starts a worker on stories260K with one thread, in the group the gateway watches. */
export async function startWorker(common: Record<string, string>, env: Record<string, string> = {}, name = "worker"): Promise<Service> {
  const port = await freePort();
  return startService({
    name,
    entry: "worker/main.ts",
    port,
    readyPath: "/readyz",
    timeoutMs: 120_000,
    env: await loggedIn(
      {
        ...common,
        WORKER_GROUP_ID: `${common.KAFKA_TOPIC_PREFIX ?? ""}workers`,
        WORKER_ID: name,
        WORKER_HTTP_HOST: "127.0.0.1",
        WORKER_HTTP_PORT: String(port),
        MODEL: await ensureTestModel(),
        LLAMA_THREADS: "1",
        DEFAULT_MAX_TOKENS: "64",
        ...env,
      },
      "worker",
    ),
  });
}
