/**
 * The worker's configuration: the model and how it generates, the conversation memory's
 * budget, the consumer group and how a worker leaves it (drain, shutdown, handover), and
 * the ops server that answers conversation reads. Parsed once by worker/main.ts and handed
 * down frozen; benches and tests load it the same way.
 */
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { isLoopbackHost } from "../internal-token.js";
import { DEFAULT_POOL, modelNameSchema, poolGroup, poolNameSchema } from "../pools.js";
import { ConfigError, bool, deepFreeze, groupProtocol, int, parseEnv, str, type Env } from "./env.js";
import { hasInternalToken, internalToken, kafkaConfig, kafkaFields, type InternalTokenConfig, type KafkaConfig } from "./shared.js";

/** `name=source,name=source`: LoRA adapters of the model, each a GGUF path or hf: URI, served as a model name of its own. */
const adapterList = z
  .string()
  .default("")
  .transform((s, ctx) => {
    const adapters: Array<{ name: string; source: string }> = [];
    for (const item of s
      .split(",")
      .map((i) => i.trim())
      .filter((i) => i !== "")) {
      const at = item.indexOf("=");
      const name = item.slice(0, at);
      const source = item.slice(at + 1);
      if (at <= 0 || source === "" || !modelNameSchema.safeParse(name).success) {
        ctx.addIssue({
          code: "custom",
          message: `${JSON.stringify(item)}: each adapter is NAME=GGUF (a file path or hf: URI), e.g. support=/models/support-lora.gguf`,
        });
        return z.NEVER;
      }
      if (adapters.some((a) => a.name === name)) {
        ctx.addIssue({ code: "custom", message: `names adapter ${name} twice` });
        return z.NEVER;
      }
      adapters.push({ name, source });
    }
    return adapters;
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
/** Tenants the worker's per-tenant metrics name (METRICS_MAX_TENANTS); later ones share one label value. */
export const DEFAULT_METRICS_MAX_TENANTS = 100;

const penalty = z.coerce.number({ error: "must be a number" }).min(0, "must be >= 0").max(2, "must be <= 2");

/**
 * Every variable the worker reads, with its zod schema (and so its default): what
 * docs/configuration.md's worker table is checked against (test/unit/contracts/readme-config.test.ts).
 */
export const workerFields = {
  ...kafkaFields,
  WORKER_GROUP_ID: str("kafka-llm-workers"),
  WORKER_ID: str(os.hostname()),
  WORKER_HTTP_HOST: str("0.0.0.0"),
  WORKER_HTTP_PORT: int(9090, 0, 65535),
  WORKER_QUERY_ADDRESS: z
    .string()
    .regex(/^https?:\/\/[^\s/@]+$/, "must be http://HOST:PORT (no path), e.g. http://10.1.2.3:9090")
    .optional(),
  WORKER_POOL: poolNameSchema.default(DEFAULT_POOL),
  MODEL_ADAPTERS: adapterList,
  ADAPTER_SLOTS: int(1, 1, 64),
  MODEL_NAME: modelNameSchema.optional(),
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
  KAFKA_GROUP_PROTOCOL: groupProtocol(),
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
  MAX_REQUEST_ATTEMPTS: int(3, 1, 100),
  METRICS_MAX_TENANTS: int(DEFAULT_METRICS_MAX_TENANTS, 0, 100_000),
};

export interface WorkerConfig {
  readonly kafka: KafkaConfig;
  readonly logLevel: string;
  /** The workers' group (WORKER_GROUP_ID, the gateways' name for it too): the default pool's consumer group, and the prefix of every group and transactional id a worker names. */
  readonly workerGroupId: string;
  /**
   * The pool this worker serves (contracts/pools.ts): its name, its consumer group on its
   * request topic, and the model name requests ask for it by.
   */
  readonly pool: {
    readonly name: string;
    readonly group: string;
    readonly modelName: string | undefined;
    /** LoRA adapters of the model (MODEL_ADAPTERS), each served under its own name with ADAPTER_SLOTS slots of its own. */
    readonly adapters: readonly { readonly name: string; readonly source: string }[];
    readonly adapterSlots: number;
  };
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
  /** Attempts at one request (counted across owners, worker/attempts.ts) before it is dead-lettered. */
  readonly maxRequestAttempts: number;
  /** How long SIGTERM lets running turns finish before they are handed over, ms. */
  readonly shutdownGraceMs: number;
  /** How often the pod's deletion cost follows the running generations; 0 = never. */
  readonly podDeletionCostIntervalMs: number;
  readonly metrics: {
    /**
     * Tenants that get their own `tenant` label value on the per-tenant token counter, the
     * first ones seen; the others count as "_other", so the series stay bounded (0: all of them).
     */
    readonly maxTenants: number;
  };
}

export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const e = parseEnv(workerFields, env);
  const problems: string[] = [];
  if (env.KAFKA_GROUP_ID !== undefined) {
    problems.push("KAFKA_GROUP_ID: renamed WORKER_GROUP_ID, the name the gateways use for the same group; set WORKER_GROUP_ID instead");
  }
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
  if (e.MODEL_ADAPTERS.length > 0 && e.MODEL_NAME === undefined)
    problems.push("MODEL_NAME: required with MODEL_ADAPTERS (adapters are declared as models of the base model, named by MODEL_NAME)");
  if (e.MODEL_ADAPTERS.some((a) => a.name === e.MODEL_NAME))
    problems.push(`MODEL_ADAPTERS: an adapter may not be named ${e.MODEL_NAME}, the base model's MODEL_NAME`);
  if (e.WORKER_POOL !== DEFAULT_POOL && e.MODEL_NAME === undefined)
    problems.push(
      `MODEL_NAME: required for WORKER_POOL=${e.WORKER_POOL} (the name requests ask this pool's model by); only the default pool may leave it to the gateways' MODEL_NAME`,
    );
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze({
    kafka: kafkaConfig(e),
    logLevel: e.LOG_LEVEL,
    workerGroupId: e.WORKER_GROUP_ID,
    pool: {
      name: e.WORKER_POOL,
      group: poolGroup(e.WORKER_GROUP_ID, e.WORKER_POOL),
      modelName: e.MODEL_NAME,
      adapters: e.MODEL_ADAPTERS,
      adapterSlots: e.ADAPTER_SLOTS,
    },
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
    maxRequestAttempts: e.MAX_REQUEST_ATTEMPTS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    podDeletionCostIntervalMs: e.POD_DELETION_COST_INTERVAL_MS,
    metrics: { maxTenants: e.METRICS_MAX_TENANTS },
  });
}
