/**
 * The variables both services read: the Kafka connection (brokers, SASL, TLS), the topics'
 * names and settings, the log level, and the token that signs conversation reads between
 * gateways and workers. Tools that only talk to Kafka (the topic creator, the local runner,
 * the tests' helpers) load this part alone with loadKafkaConfig.
 */
import { z } from "zod";
import { parseTokens, tokensProblem } from "../internal-token.js";
import { ConfigError, bool, deepFreeze, int, parseEnv, readConfigFile, str, type Env } from "./env.js";

const brokerList = z
  .string()
  .default("127.0.0.1:9092")
  .transform((s) =>
    s
      .split(",")
      .map((b) => b.trim())
      .filter(Boolean),
  )
  .refine((list) => list.length > 0 && list.every((b) => /^[^\s:]+:\d{1,5}$/.test(b)), {
    message: "must be a comma-separated list of host:port",
  });

/**
 * Every variable both services read, with its zod schema (and so its default): what
 * docs/configuration.md's "Both services" table is checked against
 * (test/unit/contracts/readme-config.test.ts).
 */
export const kafkaFields = {
  KAFKA_BROKERS: brokerList,
  KAFKA_CLIENT_ID: str("kafka-llm"),
  KAFKA_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, "may contain only letters, digits, '.', '_' and '-'")
    .default(""),
  KAFKA_REQUEST_PARTITIONS: int(6, 1, 10_000),
  KAFKA_EVENT_PARTITIONS: int(0, 0, 10_000),
  KAFKA_REPLICATION_FACTOR: int(-1, -1, 32).refine((n) => n !== 0, "must be -1 (broker default) or >= 1"),
  KAFKA_ENSURE_TOPICS: bool(true),
  CONVERSATION_TTL_MS: int(7 * 24 * 3_600_000, 60_000),
  HISTORY_RETENTION_MS: int(0, 0).refine((n) => n === 0 || n >= 60_000, "must be 0 (CONVERSATION_TTL_MS) or >= 60000"),
  HISTORY_PARTITIONS: int(0, 0, 10_000),
  HISTORY_REPLICATION_FACTOR: int(0, -1, 32),
  KAFKA_MIN_INSYNC_REPLICAS: int(0, 0, 32),
  KAFKA_SASL_MECHANISM: z.enum(["none", "plain", "scram-sha-256", "scram-sha-512"]).default("none"),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().max(4096, "must be at most 4096 characters").optional(),
  KAFKA_SASL_PASSWORD_FILE: z.string().optional(),
  KAFKA_TLS: bool(false),
  KAFKA_TLS_CA_FILE: z.string().optional(),
  KAFKA_TLS_CERT_FILE: z.string().optional(),
  KAFKA_TLS_KEY_FILE: z.string().optional(),
  KAFKA_TLS_REJECT_UNAUTHORIZED: bool(true),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  // Secret: the Bearer token of the workers' /internal routes (gateway -> worker conversation reads).
  KAFKA_LLM_INTERNAL_TOKEN: z.string().default(""),
  KAFKA_LLM_INTERNAL_TOKEN_FILE: str(""),
};

/** The variables of kafkaFields as parsed. */
export type SharedEnv = z.infer<z.ZodObject<typeof kafkaFields>>;

export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topicPrefix: string;
  readonly requestPartitions: number;
  readonly eventPartitions: number;
  readonly replicationFactor: number;
  /**
   * min.insync.replicas of the topics this project creates: 0 derives it per topic (2 where
   * the replication factor is 3 or more, else the broker's default; topicSpecs), so an
   * acknowledged write (acks=all) is on two brokers and one broker lost loses nothing.
   */
  readonly minInsyncReplicas: number;
  readonly ensureTopics: boolean;
  /** retention.ms of chat.memory: a conversation untouched this long is forgotten. */
  readonly conversationTtlMs: number;
  /** chat.history's own settings: retention.ms (its TTL), partitions and replication factor. */
  readonly history: { readonly retentionMs: number; readonly partitions: number; readonly replicationFactor: number };
  readonly sasl: { readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; readonly username: string; readonly password: string } | null;
  /** null: plaintext. Files are read at start; their contents are PEM. */
  readonly tls: { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly rejectUnauthorized: boolean } | null;
}

function kafkaSecurity(e: SharedEnv): Pick<KafkaConfig, "sasl" | "tls"> {
  const problems: string[] = [];
  let sasl: KafkaConfig["sasl"] = null;
  if (e.KAFKA_SASL_MECHANISM !== "none") {
    const password = e.KAFKA_SASL_PASSWORD_FILE
      ? readConfigFile("KAFKA_SASL_PASSWORD_FILE", e.KAFKA_SASL_PASSWORD_FILE, problems)?.trim()
      : e.KAFKA_SASL_PASSWORD;
    if (!e.KAFKA_SASL_USERNAME) problems.push(`KAFKA_SASL_USERNAME: required when KAFKA_SASL_MECHANISM is ${e.KAFKA_SASL_MECHANISM}`);
    if (!password && !e.KAFKA_SASL_PASSWORD_FILE) {
      problems.push(`KAFKA_SASL_PASSWORD: set it or KAFKA_SASL_PASSWORD_FILE when KAFKA_SASL_MECHANISM is ${e.KAFKA_SASL_MECHANISM}`);
    }
    sasl = { mechanism: e.KAFKA_SASL_MECHANISM, username: e.KAFKA_SASL_USERNAME ?? "", password: password ?? "" };
  }
  let tls: KafkaConfig["tls"] = null;
  if (e.KAFKA_TLS) {
    const file = (variable: string, path: string | undefined) => (path ? readConfigFile(variable, path, problems) : undefined);
    const ca = file("KAFKA_TLS_CA_FILE", e.KAFKA_TLS_CA_FILE);
    const cert = file("KAFKA_TLS_CERT_FILE", e.KAFKA_TLS_CERT_FILE);
    const key = file("KAFKA_TLS_KEY_FILE", e.KAFKA_TLS_KEY_FILE);
    if ((cert === undefined) !== (key === undefined))
      problems.push("KAFKA_TLS_CERT_FILE: a client certificate needs KAFKA_TLS_KEY_FILE too (and the other way round)");
    tls = { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }), rejectUnauthorized: e.KAFKA_TLS_REJECT_UNAUTHORIZED };
  } else if (e.KAFKA_TLS_CA_FILE || e.KAFKA_TLS_CERT_FILE) {
    problems.push("KAFKA_TLS: TLS files are set but KAFKA_TLS is false; set KAFKA_TLS=true");
  }
  if (problems.length) throw new ConfigError(problems);
  return { sasl, tls };
}

/** The internal token as configured: one token ("" = none), or a file of tokens. */
export interface InternalTokenConfig {
  readonly token: string;
  readonly file: string | null;
}

/** True when a token is set (a token or a file). */
export function hasInternalToken(c: InternalTokenConfig): boolean {
  return c.token !== "" || c.file !== null;
}

/**
 * The shared secret of conversation reads (gateway -> worker, platform/internal-auth.ts): one
 * token, or a file of tokens (one per line: the first signs, every one is accepted), which
 * the services read again while they run; checked here once, at start.
 */
export function internalToken(e: SharedEnv): InternalTokenConfig {
  const problems: string[] = [];
  let config: InternalTokenConfig;
  if (e.KAFKA_LLM_INTERNAL_TOKEN_FILE) {
    if (e.KAFKA_LLM_INTERNAL_TOKEN) problems.push("KAFKA_LLM_INTERNAL_TOKEN_FILE: set it or KAFKA_LLM_INTERNAL_TOKEN, not both");
    const text = readConfigFile("KAFKA_LLM_INTERNAL_TOKEN_FILE", e.KAFKA_LLM_INTERNAL_TOKEN_FILE, problems);
    const problem = text === undefined ? null : tokensProblem(parseTokens(text));
    if (problem) problems.push(`KAFKA_LLM_INTERNAL_TOKEN_FILE: ${e.KAFKA_LLM_INTERNAL_TOKEN_FILE} ${problem}`);
    config = { token: "", file: e.KAFKA_LLM_INTERNAL_TOKEN_FILE };
  } else {
    const token = e.KAFKA_LLM_INTERNAL_TOKEN.trim();
    const problem = token === "" ? null : tokensProblem([token]);
    if (problem) problems.push(`KAFKA_LLM_INTERNAL_TOKEN: ${problem.replace(/^token 1 /, "")}`);
    config = { token, file: null };
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** The Kafka connection and topic settings of parsed shared variables. */
export function kafkaConfig(e: SharedEnv): KafkaConfig {
  const historyReplicas = e.HISTORY_REPLICATION_FACTOR || e.KAFKA_REPLICATION_FACTOR;
  const fewest = Math.min(...[e.KAFKA_REPLICATION_FACTOR, historyReplicas].filter((n) => n > 0));
  if (e.KAFKA_MIN_INSYNC_REPLICAS > fewest) {
    throw new ConfigError([
      `KAFKA_MIN_INSYNC_REPLICAS: is ${e.KAFKA_MIN_INSYNC_REPLICAS}, more than a topic's replication factor (${fewest}): Kafka would refuse every write to it; set at most ${fewest}, or 0 to derive it`,
    ]);
  }
  return {
    brokers: e.KAFKA_BROKERS,
    clientId: e.KAFKA_CLIENT_ID,
    topicPrefix: e.KAFKA_TOPIC_PREFIX,
    requestPartitions: e.KAFKA_REQUEST_PARTITIONS,
    eventPartitions: e.KAFKA_EVENT_PARTITIONS || e.KAFKA_REQUEST_PARTITIONS,
    replicationFactor: e.KAFKA_REPLICATION_FACTOR,
    minInsyncReplicas: e.KAFKA_MIN_INSYNC_REPLICAS,
    ensureTopics: e.KAFKA_ENSURE_TOPICS,
    conversationTtlMs: e.CONVERSATION_TTL_MS,
    history: {
      retentionMs: e.HISTORY_RETENTION_MS || e.CONVERSATION_TTL_MS,
      partitions: e.HISTORY_PARTITIONS || e.KAFKA_REQUEST_PARTITIONS,
      replicationFactor: historyReplicas,
    },
    ...kafkaSecurity(e),
  };
}

/** The Kafka part alone, for tools such as the topic creator. */
export function loadKafkaConfig(env: Env = process.env): KafkaConfig & { readonly logLevel: string } {
  const e = parseEnv(kafkaFields, env);
  return deepFreeze({ ...kafkaConfig(e), logLevel: e.LOG_LEVEL });
}
