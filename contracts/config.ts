/**
 * Configuration from environment variables: parsed and validated once, every problem
 * reported at once with the variable's name, then frozen. Durations are milliseconds.
 * README.md lists every variable with its default; a unit test keeps the two in step.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { KafkaLlmError } from "./errors.js";
import { MAX_CONTENT_CHARS } from "./records.js";
import { isLoopbackHost, parseTokens, tokensProblem } from "./internal-token.js";

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends KafkaLlmError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super("config_invalid", `invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

// Field builders. Env values are strings; an empty string counts as unset.
const str = (def: string) => z.string().default(def);
const int = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number({ error: "must be an integer" }).int("must be an integer").min(min, `must be >= ${min}`).max(max, `must be <= ${max}`).default(def);
const bool = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"], { error: "must be true or false" })
    .transform((v) => v === "true" || v === "1" || v === "yes")
    .default(def);
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

/** A JSON array of non-empty strings, e.g. ["\nUser:"]; unset = none. */
const stringList = z
  .string()
  .default("[]")
  .transform((s, ctx) => {
    let value: unknown;
    try {
      value = JSON.parse(s);
    } catch {
      value = undefined;
    }
    if (!Array.isArray(value) || !value.every((v): v is string => typeof v === "string" && v !== "")) {
      ctx.addIssue({ code: "custom", message: 'must be a JSON array of non-empty strings, e.g. ["\\nUser:"]' });
      return z.NEVER;
    }
    return value;
  });
const penalty = z.coerce.number({ error: "must be a number" }).min(0, "must be >= 0").max(2, "must be <= 2");

const kafkaFields = {
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

const workerFields = {
  ...kafkaFields,
  KAFKA_GROUP_ID: str("kafka-llm-workers"),
  WORKER_ID: str(os.hostname()),
  WORKER_HTTP_HOST: str("0.0.0.0"),
  WORKER_HTTP_PORT: int(9090, 0, 65535),
  WORKER_QUERY_ADDRESS: z
    .string()
    .regex(/^https?:\/\/[^\s/@]+$/, "must be http://HOST:PORT (no path), e.g. http://10.1.2.3:9090")
    .optional(),
  MODEL: z.string({ error: "required: a GGUF file path or an hf: URI" }).min(1, "required: a GGUF file path or an hf: URI"),
  MODEL_DIR: str(".cache/models"),
  LLAMA_GPU: z.enum(["auto", "cuda", "vulkan", "metal", "false"]).default("auto"),
  LLAMA_THREADS: int(0, 0, 1024),
  CONTEXT_SIZE: int(2048, 64, 1_048_576),
  DEFAULT_MAX_TOKENS: int(256, 1, 8192),
  DEFAULT_REPEAT_PENALTY: penalty.optional(),
  STOP_TRIGGERS: stringList,
  DELTA_FLUSH_MS: int(50, 1, 10_000),
  DELTA_MAX_CHARS: int(2048, 1, 1_000_000),
  KAFKA_GROUP_PROTOCOL: z
    .enum(["consumer", "classic"], { error: 'must be "consumer" (KIP-848, Kafka 4.0+) or "classic" (older clusters)' })
    .default("consumer"),
  HEARTBEAT_INTERVAL_MS: int(1000, 100, 60_000),
  SESSION_TIMEOUT_MS: int(30_000, 1000, 3_600_000),
  REBALANCE_TIMEOUT_MS: int(120_000, 1000, 3_600_000),
  DRAIN_TIMEOUT_MS: int(60_000, 0, 3_600_000),
  SHUTDOWN_GRACE_MS: int(25_000, 0, 3_600_000),
  WORKER_SLOTS: int(4, 1, 64),
  POD_DELETION_COST_INTERVAL_MS: int(5000, 0, 3_600_000),
  MEMORY_MAX_TOKENS: int(300, 16, 1_000_000),
  MEMORY_TRIM_TO_PERCENT: int(50, 1, 100),
  SYSTEM_PROMPT: str("You are Kafka, a friendly and concise assistant. Answer in a few sentences."),
  GREETING: str("Hello! I'm Kafka, your assistant. What would you like to talk about?"),
  WORKER_STATE_DIR: z.string().min(1, "must be a directory path").optional(),
  WORKER_TRANSACTIONS: bool(false),
  WORKER_TRANSACTION_TIMEOUT_MS: int(15_000, 1000, 900_000),
};

const gatewayFields = {
  ...kafkaFields,
  GATEWAY_HOST: str("0.0.0.0"),
  GATEWAY_PORT: int(8080, 0, 65535),
  GATEWAY_BODY_LIMIT_BYTES: int(256 * 1024, 1024, 64 * 1024 * 1024),
  REQUEST_STATE_TTL_MS: int(15 * 60_000, 1000, 7 * 24 * 3_600_000),
  MAX_TRACKED_REQUESTS: int(10_000, 1, 10_000_000),
  SSE_KEEPALIVE_MS: int(15_000, 100, 600_000),
  GATEWAY_AUTH: z.enum(["keys", "none"], { error: 'must be "keys" (API keys required) or "none" (no auth, local runs only)' }).default("keys"),
  // Secrets: never refined by zod, whose messages would echo the value; see parseApiKeyList.
  GATEWAY_API_KEYS: z.string().default(""),
  GATEWAY_API_KEYS_FILE: str(""),
  GATEWAY_MAX_CONTENT_CHARS: int(MAX_CONTENT_CHARS, 1, MAX_CONTENT_CHARS),
  KAFKA_SEND_TIMEOUT_MS: int(3000, 100, 120_000),
  GATEWAY_APPLY_WAIT_MS: int(10_000, 0, 600_000),
  UNKNOWN_REQUEST_WAIT_MS: int(2000, 0, 60_000),
  LAG_REFRESH_MS: int(5000, 500, 3_600_000),
  QUEUE_NOTICE_MS: int(3000, 500, 600_000),
  WORKER_GROUP_ID: str("kafka-llm-workers"),
  GATEWAY_EVENTS_GROUP_ID: str(""),
  GATEWAY_EVENTS_GROUP_PROTOCOL: z
    .enum(["consumer", "classic"], { error: 'must be "consumer" (KIP-848, Kafka 4.0+) or "classic" (older clusters)' })
    .default("consumer"),
  TURN_STATS_WINDOW_MS: int(5 * 60_000, 1000, 24 * 3_600_000),
  CONVERSATION_LOOKUP_TIMEOUT_MS: int(5000, 100, 600_000),
  MODEL_NAME: z
    .string()
    .regex(/^[\x21-\x7e]{1,256}$/, "must be 1-256 printable characters without spaces")
    .default("kafka-llm"),
};

/**
 * Every variable each service reads, with its zod schema (and so its default): what
 * README.md's configuration tables are checked against (test/unit/contracts/readme-config.test.ts).
 */
export const CONFIG_FIELDS = { kafka: kafkaFields, worker: workerFields, gateway: gatewayFields } as const;

/** Variables whose values never appear in an error message or a log line. */
const SECRET = /PASSWORD|API_KEYS|SECRET|TOKEN/;

function parseEnv<S extends z.core.$ZodShape>(shape: S, env: Env): z.infer<z.ZodObject<S>> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") input[key] = value.trim();
  }
  const parsed = z.object(shape).safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? "(env)");
      const value = input[name];
      const shown = value === undefined || SECRET.test(name) ? "" : ` (got ${JSON.stringify(value)})`;
      return `${name}: ${i.message}${shown}`;
    });
    throw new ConfigError(problems);
  }
  return parsed.data;
}

export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topicPrefix: string;
  readonly requestPartitions: number;
  readonly eventPartitions: number;
  readonly replicationFactor: number;
  readonly ensureTopics: boolean;
  /** retention.ms of chat.memory: a conversation untouched this long is forgotten. */
  readonly conversationTtlMs: number;
  /** chat.history's own settings: retention.ms (its TTL), partitions and replication factor. */
  readonly history: { readonly retentionMs: number; readonly partitions: number; readonly replicationFactor: number };
  readonly sasl: { readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; readonly username: string; readonly password: string } | null;
  /** null: plaintext. Files are read at start; their contents are PEM. */
  readonly tls: { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly rejectUnauthorized: boolean } | null;
}

/** Reads a secret or certificate file named by `variable`; a problem is reported by name. */
function readConfigFile(variable: string, path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    problems.push(`${variable}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    return undefined;
  }
}

function kafkaSecurity(e: z.infer<z.ZodObject<typeof kafkaFields>>): Pick<KafkaConfig, "sasl" | "tls"> {
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

/**
 * The shared secret of conversation reads (gateway -> worker, platform/internal-auth.ts): one
 * token, or a file of tokens (one per line: the first signs, every one is accepted), which
 * the services read again while they run; checked here once, at start.
 */
function internalToken(e: z.infer<z.ZodObject<typeof kafkaFields>>): InternalTokenConfig {
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

/** The internal token as configured: one token ("" = none), or a file of tokens. */
export interface InternalTokenConfig {
  readonly token: string;
  readonly file: string | null;
}

/** True when a token is set (a token or a file). */
export function hasInternalToken(c: InternalTokenConfig): boolean {
  return c.token !== "" || c.file !== null;
}

function kafkaConfig(e: z.infer<z.ZodObject<typeof kafkaFields>>): KafkaConfig {
  return {
    brokers: e.KAFKA_BROKERS,
    clientId: e.KAFKA_CLIENT_ID,
    topicPrefix: e.KAFKA_TOPIC_PREFIX,
    requestPartitions: e.KAFKA_REQUEST_PARTITIONS,
    eventPartitions: e.KAFKA_EVENT_PARTITIONS || e.KAFKA_REQUEST_PARTITIONS,
    replicationFactor: e.KAFKA_REPLICATION_FACTOR,
    ensureTopics: e.KAFKA_ENSURE_TOPICS,
    conversationTtlMs: e.CONVERSATION_TTL_MS,
    history: {
      retentionMs: e.HISTORY_RETENTION_MS || e.CONVERSATION_TTL_MS,
      partitions: e.HISTORY_PARTITIONS || e.KAFKA_REQUEST_PARTITIONS,
      replicationFactor: e.HISTORY_REPLICATION_FACTOR || e.KAFKA_REPLICATION_FACTOR,
    },
    ...kafkaSecurity(e),
  };
}

export interface WorkerConfig {
  readonly kafka: KafkaConfig;
  readonly logLevel: string;
  readonly groupId: string;
  readonly workerId: string;
  readonly http: { readonly host: string; readonly port: number };
  /**
   * Conversation reads the gateways send to the owner of a partition: the base URL this
   * worker advertises in its group member's client.id (null: from the pod IP, the HTTP host
   * or the host name, and the ops server's port), and the shared token reads are signed with
   * (required unless the ops server listens on loopback only).
   */
  readonly query: { readonly address: string | null; readonly token: InternalTokenConfig };
  readonly model: {
    /** A GGUF file path or an hf: URI. */
    readonly source: string;
    /** Where hf: downloads are cached. */
    readonly directory: string;
    readonly gpu: "auto" | "cuda" | "vulkan" | "metal" | false;
    /** 0 = size from the CPU quota. */
    readonly threads: number;
    readonly contextSize: number;
  };
  readonly generation: {
    readonly defaultMaxTokens: number;
    readonly slots: number;
    /** Repeat penalty when the request gives none; undefined = node-llama-cpp's. */
    readonly defaultRepeatPenalty?: number;
    /** Plain-text stop triggers besides the chat template's turn markers. */
    readonly stopTriggers: readonly string[];
  };
  readonly memory: {
    /** Most tokens of remembered messages a prompt carries (MEMORY_MAX_TOKENS). */
    readonly maxTokens: number;
    /** Past maxTokens, the oldest messages are dropped down to this many tokens (MEMORY_TRIM_TO_PERCENT of maxTokens). */
    readonly trimToTokens: number;
    readonly systemPrompt: string;
    readonly greeting: string;
    /** Where the disk-backed state store lives (WORKER_STATE_DIR; default under the OS temp dir, named for the worker). */
    readonly stateDir: string;
  };
  readonly stream: { readonly flushMs: number; readonly maxChars: number };
  readonly consumer: {
    /** `consumer`: KIP-848, the broker assigns and moves only what changes; `classic`: cooperative-sticky. */
    readonly groupProtocol: "consumer" | "classic";
    /** Classic protocol only (the broker's group.consumer.* settings rule the consumer protocol). */
    readonly heartbeatIntervalMs: number;
    /** Classic protocol only. */
    readonly sessionTimeoutMs: number;
    /** How long a revocation may take before the broker removes the member (max.poll.interval.ms). */
    readonly rebalanceTimeoutMs: number;
  };
  /**
   * How a turn's writes are fenced: null, by the memory log (the owner checks that nobody
   * wrote its partition since, then writes); otherwise in one Kafka transaction with the
   * request's offset, which the broker refuses from a worker the group has replaced.
   */
  readonly transactions: { readonly timeoutMs: number } | null;
  /** How long a revoked partition's running turn may go on before it is handed over, ms. */
  readonly drainTimeoutMs: number;
  /** How long SIGTERM lets running turns finish before they are handed over, ms. */
  readonly shutdownGraceMs: number;
  /** How often the pod's deletion cost follows the running generations; 0 = never. */
  readonly podDeletionCostIntervalMs: number;
}

export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const e = parseEnv(workerFields, env);
  const problems: string[] = [];
  if (e.HEARTBEAT_INTERVAL_MS * 3 > e.SESSION_TIMEOUT_MS) {
    problems.push(`HEARTBEAT_INTERVAL_MS: must be at most a third of SESSION_TIMEOUT_MS (${e.SESSION_TIMEOUT_MS})`);
  }
  if (e.DRAIN_TIMEOUT_MS >= e.REBALANCE_TIMEOUT_MS) {
    problems.push(`DRAIN_TIMEOUT_MS: must be below REBALANCE_TIMEOUT_MS (${e.REBALANCE_TIMEOUT_MS}), or the group removes a worker that is still draining`);
  }
  const token = internalToken(e);
  if (!hasInternalToken(token) && !isLoopbackHost(e.WORKER_HTTP_HOST)) {
    problems.push(
      `KAFKA_LLM_INTERNAL_TOKEN: required when the worker's ops port, which answers conversation reads, listens beyond loopback (WORKER_HTTP_HOST=${e.WORKER_HTTP_HOST}): set KAFKA_LLM_INTERNAL_TOKEN or KAFKA_LLM_INTERNAL_TOKEN_FILE (at least 32 characters, the same as the gateways'), or WORKER_HTTP_HOST=127.0.0.1`,
    );
  }
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze({
    kafka: kafkaConfig(e),
    logLevel: e.LOG_LEVEL,
    groupId: e.KAFKA_GROUP_ID,
    workerId: e.WORKER_ID,
    http: { host: e.WORKER_HTTP_HOST, port: e.WORKER_HTTP_PORT },
    query: { address: e.WORKER_QUERY_ADDRESS ?? null, token },
    model: {
      source: e.MODEL,
      directory: e.MODEL_DIR,
      gpu: e.LLAMA_GPU === "false" ? false : e.LLAMA_GPU,
      threads: e.LLAMA_THREADS,
      contextSize: e.CONTEXT_SIZE,
    },
    generation: {
      defaultMaxTokens: e.DEFAULT_MAX_TOKENS,
      slots: e.WORKER_SLOTS,
      ...(e.DEFAULT_REPEAT_PENALTY === undefined ? {} : { defaultRepeatPenalty: e.DEFAULT_REPEAT_PENALTY }),
      stopTriggers: e.STOP_TRIGGERS,
    },
    memory: {
      maxTokens: e.MEMORY_MAX_TOKENS,
      trimToTokens: Math.floor((e.MEMORY_MAX_TOKENS * e.MEMORY_TRIM_TO_PERCENT) / 100),
      systemPrompt: e.SYSTEM_PROMPT,
      greeting: e.GREETING,
      stateDir: e.WORKER_STATE_DIR ?? path.join(os.tmpdir(), `kafka-llm-state-${e.WORKER_ID.replace(/[^A-Za-z0-9._-]/g, "_")}`),
    },
    stream: { flushMs: e.DELTA_FLUSH_MS, maxChars: e.DELTA_MAX_CHARS },
    consumer: {
      groupProtocol: e.KAFKA_GROUP_PROTOCOL,
      heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
      sessionTimeoutMs: e.SESSION_TIMEOUT_MS,
      rebalanceTimeoutMs: e.REBALANCE_TIMEOUT_MS,
    },
    transactions: e.WORKER_TRANSACTIONS ? { timeoutMs: e.WORKER_TRANSACTION_TIMEOUT_MS } : null,
    drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    podDeletionCostIntervalMs: e.POD_DELETION_COST_INTERVAL_MS,
  });
}

export interface GatewayConfig {
  readonly kafka: KafkaConfig;
  readonly logLevel: string;
  readonly http: { readonly host: string; readonly port: number; readonly bodyLimitBytes: number };
  readonly requests: {
    readonly stateTtlMs: number;
    readonly maxTracked: number;
    /** How long a lookup of an unknown (well-formed) request id waits for it to show up, ms. */
    readonly unknownWaitMs: number;
  };
  readonly sseKeepaliveMs: number;
  readonly auth: {
    /** "keys": every /v1 call needs a Bearer key; "none": everything runs as tenant "local". */
    readonly mode: "keys" | "none";
    /** GATEWAY_API_KEYS as given ("tenant:key,..."): parsed, with the file's, by gateway/auth.ts at start. Secret. */
    readonly keysText: string;
    readonly keysFile: string | null;
  };
  /** Longest message content accepted, characters (at most the record schema's bound). */
  readonly maxContentChars: number;
  /** Budget for one produce to Kafka before the caller gets 503, ms. */
  readonly kafkaSendTimeoutMs: number;
  /** How long DELETE waits for a worker to apply the deletion before answering 202, ms. */
  readonly applyWaitMs: number;
  readonly lag: { readonly refreshMs: number; readonly workerGroupId: string };
  /** The gateway replicas' consumer group on chat.events (each replica reads the partitions it is given). */
  readonly events: { readonly groupId: string; readonly groupProtocol: "consumer" | "classic" };
  /** How often a waiting request's event stream gets a `queued` notice, ms. */
  readonly queueNoticeMs: number;
  /** Window of the recent mean turn duration, ms. */
  readonly turnStatsWindowMs: number;
  /**
   * Conversation reads, answered by the worker owning the conversation's partition: how
   * long one may wait for an owner (a rebalance, a restore) before 503, ms, and the shared
   * token reads are signed with (none: only owners on loopback are asked).
   */
  readonly conversations: { readonly lookupTimeoutMs: number; readonly internalToken: InternalTokenConfig };
  /** The model id /v1/models lists and OpenAI responses carry. */
  readonly modelName: string;
}

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const e = parseEnv(gatewayFields, env);
  // The keys themselves are parsed by gateway/auth.ts at start (entries named by position).
  const keysText = e.GATEWAY_API_KEYS.trim();
  const problems: string[] = [];
  if (e.GATEWAY_AUTH === "keys" && keysText === "" && !e.GATEWAY_API_KEYS_FILE) {
    problems.push(
      "GATEWAY_AUTH: API keys are required but none are set: set GATEWAY_API_KEYS (tenant:key,...) or GATEWAY_API_KEYS_FILE, or GATEWAY_AUTH=none for a local run without auth",
    );
  }
  if (e.GATEWAY_AUTH === "none" && (keysText !== "" || e.GATEWAY_API_KEYS_FILE)) {
    problems.push("GATEWAY_AUTH: is none, yet API keys are set: remove the keys or set GATEWAY_AUTH=keys");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze({
    kafka: kafkaConfig(e),
    logLevel: e.LOG_LEVEL,
    http: { host: e.GATEWAY_HOST, port: e.GATEWAY_PORT, bodyLimitBytes: e.GATEWAY_BODY_LIMIT_BYTES },
    requests: {
      stateTtlMs: e.REQUEST_STATE_TTL_MS,
      maxTracked: e.MAX_TRACKED_REQUESTS,
      unknownWaitMs: e.UNKNOWN_REQUEST_WAIT_MS,
    },
    sseKeepaliveMs: e.SSE_KEEPALIVE_MS,
    auth: { mode: e.GATEWAY_AUTH, keysText, keysFile: e.GATEWAY_API_KEYS_FILE || null },
    maxContentChars: e.GATEWAY_MAX_CONTENT_CHARS,
    kafkaSendTimeoutMs: e.KAFKA_SEND_TIMEOUT_MS,
    applyWaitMs: e.GATEWAY_APPLY_WAIT_MS,
    lag: { refreshMs: e.LAG_REFRESH_MS, workerGroupId: e.WORKER_GROUP_ID },
    events: { groupId: e.GATEWAY_EVENTS_GROUP_ID || `${e.KAFKA_TOPIC_PREFIX}kafka-llm-gateways`, groupProtocol: e.GATEWAY_EVENTS_GROUP_PROTOCOL },
    queueNoticeMs: e.QUEUE_NOTICE_MS,
    turnStatsWindowMs: e.TURN_STATS_WINDOW_MS,
    conversations: { lookupTimeoutMs: e.CONVERSATION_LOOKUP_TIMEOUT_MS, internalToken: internalToken(e) },
    modelName: e.MODEL_NAME,
  });
}

/** The Kafka part alone, for tools such as the topic creator. */
export function loadKafkaConfig(env: Env = process.env): KafkaConfig & { readonly logLevel: string } {
  const e = parseEnv(kafkaFields, env);
  return deepFreeze({ ...kafkaConfig(e), logLevel: e.LOG_LEVEL });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
