/**
 * The gateway's configuration: its HTTP server and API keys, how long it keeps and waits
 * for requests' state, its consumer group on chat.events, and how it asks workers for
 * conversations. Parsed once by gateway/main.ts and handed down frozen.
 */
import { z } from "zod";
import { MAX_CONTENT_CHARS } from "../limits.js";
import { ConfigError, deepFreeze, groupProtocol, int, parseEnv, str, type Env } from "./env.js";
import { internalToken, kafkaConfig, kafkaFields, type InternalTokenConfig, type KafkaConfig } from "./shared.js";

/**
 * Every variable the gateway reads, with its zod schema (and so its default): what
 * docs/configuration.md's gateway table is checked against (test/unit/contracts/readme-config.test.ts).
 */
export const gatewayFields = {
  ...kafkaFields,
  GATEWAY_HOST: str("0.0.0.0"),
  GATEWAY_PORT: int(8080, 0, 65535),
  GATEWAY_BODY_LIMIT_BYTES: int(256 * 1024, 1024, 64 * 1024 * 1024),
  GATEWAY_HEADERS_TIMEOUT_MS: int(10_000, 100, 600_000),
  GATEWAY_REQUEST_TIMEOUT_MS: int(30_000, 100, 3_600_000),
  GATEWAY_KEEP_ALIVE_TIMEOUT_MS: int(65_000, 100, 3_600_000),
  GATEWAY_MAX_CONNECTIONS: int(10_000, 1, 1_000_000),
  REQUEST_STATE_TTL_MS: int(15 * 60_000, 1000, 7 * 24 * 3_600_000),
  MAX_TRACKED_REQUESTS: int(10_000, 1, 10_000_000),
  // 0: a quarter of MAX_TRACKED_REQUESTS.
  MAX_TRACKED_REQUESTS_PER_TENANT: int(0, 0, 10_000_000),
  GATEWAY_REQUEST_DEADLINE_MS: int(10 * 60_000, 100, 24 * 3_600_000),
  TENANT_REQUESTS_PER_MINUTE: int(0, 0, 1_000_000_000),
  TENANT_TOKENS_PER_MINUTE: int(0, 0, 1_000_000_000),
  TENANT_MAX_IN_FLIGHT: int(1000, 0, 10_000_000),
  TENANT_MAX_STREAMS: int(2000, 0, 10_000_000),
  TENANT_MAX_NAMED_READERS: int(1000, 0, 10_000_000),
  GATEWAY_REPLICAS: int(1, 1, 1000),
  GATEWAY_SHUTDOWN_GRACE_MS: int(20_000, 0, 3_600_000),
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
  GATEWAY_EVENTS_GROUP_PROTOCOL: groupProtocol(),
  TURN_STATS_WINDOW_MS: int(5 * 60_000, 1000, 24 * 3_600_000),
  CONVERSATION_LOOKUP_TIMEOUT_MS: int(5000, 100, 600_000),
  MODEL_NAME: z
    .string()
    .regex(/^[\x21-\x7e]{1,256}$/, "must be 1-256 printable characters without spaces")
    .default("kafka-llm"),
};

/** One tenant's quotas (gateway/quotas.ts); 0 is no limit. */
export interface TenantLimits {
  /** Calls that create work (a turn, a completion, a conversation, an append) per minute. */
  readonly requestsPerMinute: number;
  /** Tokens (prompt and completion, from the usage of finished requests) per minute. */
  readonly tokensPerMinute: number;
  /** Requests accepted and not yet ended (waiting or generating). */
  readonly concurrentRequests: number;
  /** Event streams (SSE) open at once. */
  readonly openStreams: number;
  /** Named history readers (each a Kafka consumer group holding its position) kept at once. */
  readonly namedReaders: number;
}

export interface GatewayConfig {
  readonly kafka: KafkaConfig;
  readonly logLevel: string;
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimitBytes: number;
    /** How long a client may take to send a request's headers, ms. */
    readonly headersTimeoutMs: number;
    /** How long a client may take to send a whole request, headers and body, ms (a response, an SSE stream included, is not bounded by it). */
    readonly requestTimeoutMs: number;
    /** How long an idle keep-alive connection is kept open, ms. */
    readonly keepAliveTimeoutMs: number;
    /** Most connections open at once; past it new connections are closed on arrival. */
    readonly maxConnections: number;
  };
  readonly requests: {
    readonly stateTtlMs: number;
    readonly maxTracked: number;
    /** Most requests of one tenant held at once; a new one past it that no finished one can make room for gets 429. */
    readonly maxTrackedPerTenant: number;
    /**
     * How long any wait for a request's end may last (an event stream, a call awaiting its
     * reply), ms: then the stream ends with an error event and the call answers 504, both
     * naming the request to look up. A request accepted here and not ended is kept as long.
     */
    readonly deadlineMs: number;
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
  /** The workers' consumer group (WORKER_GROUP_ID): described for owners and queued notices, its lag exported. */
  readonly workerGroupId: string;
  readonly lag: { readonly refreshMs: number };
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
  /**
   * Every tenant's quotas where the keys file gives it none (gateway/quotas.ts; 0: no
   * limit), and the gateway replicas that share them (each enforces its share).
   */
  readonly quotas: { readonly defaults: TenantLimits; readonly replicas: number };
  /**
   * On SIGTERM, how long open streams and calls awaiting a reply may go on before they are
   * ended with a word on where to resume, ms (below the pod's termination grace period).
   */
  readonly shutdownGraceMs: number;
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
  if (e.GATEWAY_HEADERS_TIMEOUT_MS > e.GATEWAY_REQUEST_TIMEOUT_MS) {
    problems.push("GATEWAY_HEADERS_TIMEOUT_MS: must not be above GATEWAY_REQUEST_TIMEOUT_MS (the headers are part of the request)");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze({
    kafka: kafkaConfig(e),
    logLevel: e.LOG_LEVEL,
    http: {
      host: e.GATEWAY_HOST,
      port: e.GATEWAY_PORT,
      bodyLimitBytes: e.GATEWAY_BODY_LIMIT_BYTES,
      headersTimeoutMs: e.GATEWAY_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.GATEWAY_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.GATEWAY_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.GATEWAY_MAX_CONNECTIONS,
    },
    requests: {
      stateTtlMs: e.REQUEST_STATE_TTL_MS,
      maxTracked: e.MAX_TRACKED_REQUESTS,
      maxTrackedPerTenant: Math.min(e.MAX_TRACKED_REQUESTS_PER_TENANT || Math.ceil(e.MAX_TRACKED_REQUESTS / 4), e.MAX_TRACKED_REQUESTS),
      deadlineMs: e.GATEWAY_REQUEST_DEADLINE_MS,
      unknownWaitMs: e.UNKNOWN_REQUEST_WAIT_MS,
    },
    sseKeepaliveMs: e.SSE_KEEPALIVE_MS,
    auth: { mode: e.GATEWAY_AUTH, keysText, keysFile: e.GATEWAY_API_KEYS_FILE || null },
    maxContentChars: e.GATEWAY_MAX_CONTENT_CHARS,
    kafkaSendTimeoutMs: e.KAFKA_SEND_TIMEOUT_MS,
    applyWaitMs: e.GATEWAY_APPLY_WAIT_MS,
    workerGroupId: e.WORKER_GROUP_ID,
    lag: { refreshMs: e.LAG_REFRESH_MS },
    events: { groupId: e.GATEWAY_EVENTS_GROUP_ID || `${e.KAFKA_TOPIC_PREFIX}kafka-llm-gateways`, groupProtocol: e.GATEWAY_EVENTS_GROUP_PROTOCOL },
    queueNoticeMs: e.QUEUE_NOTICE_MS,
    turnStatsWindowMs: e.TURN_STATS_WINDOW_MS,
    conversations: { lookupTimeoutMs: e.CONVERSATION_LOOKUP_TIMEOUT_MS, internalToken: internalToken(e) },
    modelName: e.MODEL_NAME,
    quotas: {
      defaults: {
        requestsPerMinute: e.TENANT_REQUESTS_PER_MINUTE,
        tokensPerMinute: e.TENANT_TOKENS_PER_MINUTE,
        concurrentRequests: e.TENANT_MAX_IN_FLIGHT,
        openStreams: e.TENANT_MAX_STREAMS,
        namedReaders: e.TENANT_MAX_NAMED_READERS,
      },
      replicas: e.GATEWAY_REPLICAS,
    },
    shutdownGraceMs: e.GATEWAY_SHUTDOWN_GRACE_MS,
  });
}
