/** The gateway's Prometheus metrics, on a registry of its own. */
import { DEFAULT_POOL } from "../contracts/pools.js";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

/** Values read at scrape time. Fields may be replaced once their source exists. */
export interface MetricSources {
  trackedRequests(): number;
  /** Listeners the hub holds (each open event stream has one). */
  eventListeners?(): number;
  /** Partitions whose owner the conversation lookup has cached. */
  conversationOwners?(): number;
  /** Per pool (one value without a pool: the default pool's). */
  recentTurns(): TurnMean | readonly (TurnMean & { pool: string })[];
  /** chat.events partitions this replica reads: given it by the gateways' group, and read for a follower only. */
  eventPartitions?(): { owned: number; followed: number };
}

interface TurnMean {
  meanSeconds: number;
  count: number;
}

/** recentTurns by pool. */
function turnsByPool(sources: MetricSources): readonly (TurnMean & { pool: string })[] {
  const turns = sources.recentTurns();
  return "pool" in turns || Array.isArray(turns) ? (turns as readonly (TurnMean & { pool: string })[]) : [{ pool: DEFAULT_POOL, ...(turns as TurnMean) }];
}

export function createGatewayMetrics(sources: MetricSources) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "kafka_llm_gateway_" });
  const registers = [registry];
  return {
    registry,
    requestsAccepted: new Counter({
      name: "kafka_llm_gateway_requests_accepted_total",
      help: "Requests put on chat.requests, by type (turn, open, delete)",
      labelNames: ["type"] as const,
      registers,
    }),
    httpResponses: new Counter({
      name: "kafka_llm_gateway_http_responses_total",
      help: "HTTP responses, by route pattern and status code",
      labelNames: ["route", "status"] as const,
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: "kafka_llm_gateway_http_request_duration_seconds",
      help: 'HTTP calls from their headers to the response\'s end, by method, route template (route="unmatched" when no route took the call) and status code (499: the client left before a response began); a streamed response (SSE) counts until the stream ends or its client leaves (gateway/http-metrics.ts)',
      labelNames: ["method", "route", "status_code"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    kafkaSendFailures: new Counter({
      name: "kafka_llm_gateway_kafka_send_failures_total",
      help: "Records Kafka did not take within KAFKA_SEND_TIMEOUT_MS (answered 503)",
      registers,
    }),
    rateLimited: new Counter({
      name: "kafka_llm_gateway_rate_limited_total",
      help: "Calls refused with 429 for a tenant's quota, by tenant (only tenants with a key) and limit (requestsPerMinute, tokensPerMinute, concurrentRequests, openStreams, namedReaders)",
      labelNames: ["tenant", "limit"] as const,
      registers,
    }),
    cancels: new Counter({
      name: "kafka_llm_gateway_cancels_total",
      help: "Cancels written to chat.control, by origin (api: the cancel endpoint, disconnect: an OpenAI client left mid-reply)",
      labelNames: ["origin"] as const,
      registers,
    }),
    trackedRequests: new Gauge({
      name: "kafka_llm_gateway_tracked_requests",
      help: "Requests whose events this gateway holds",
      registers,
      collect() {
        this.set(sources.trackedRequests());
      },
    }),
    eventListeners: new Gauge({
      name: "kafka_llm_gateway_event_listeners",
      help: "Listeners following requests' events (one per open event stream or call awaiting a final); returns to 0 when clients leave",
      registers,
      collect() {
        this.set(sources.eventListeners?.() ?? 0);
      },
    }),
    conversationLookups: new Counter({
      name: "kafka_llm_gateway_conversation_lookups_total",
      help: "Conversation reads asked of the worker owning the conversation's partition, by outcome (found, not_found, unavailable: no owner answered in time)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    conversationLookupSeconds: new Histogram({
      name: "kafka_llm_gateway_conversation_lookup_seconds",
      help: "Time to get a conversation from its partition's owner, including waits for an owner during a rebalance",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    conversationOwners: new Gauge({
      name: "kafka_llm_gateway_conversation_owners",
      help: "Partitions whose owning worker this gateway has cached (at most the partition count: the gateway keeps no per-conversation state)",
      registers,
      collect() {
        this.set(sources.conversationOwners?.() ?? 0);
      },
    }),
    consumerGroupLag: new Gauge({
      name: "kafka_llm_consumer_group_lag",
      help: "Requests waiting for the worker group: end offset minus committed offset, per partition of chat.requests",
      labelNames: ["topic", "partition", "pool"] as const,
      registers,
    }),
    consumerGroupTotalLag: new Gauge({
      name: "kafka_llm_consumer_group_total_lag",
      help: "Requests waiting for a pool's workers, all partitions of its request topic (the autoscaling signal; same on every gateway replica)",
      labelNames: ["pool"] as const,
      registers,
    }),
    lagRefreshedAt: new Gauge({
      name: "kafka_llm_consumer_group_lag_refresh_timestamp_seconds",
      help: "When the lag was last read from Kafka (Unix seconds)",
      registers,
    }),
    lagRefreshErrors: new Counter({
      name: "kafka_llm_gateway_lag_refresh_errors_total",
      help: "Lag refreshes that failed (the last values were kept)",
      registers,
    }),
    recentTurnDuration: new Gauge({
      name: "kafka_llm_recent_turn_duration_seconds",
      help: "Mean generation time of the turns that ended within TURN_STATS_WINDOW_MS (kept when none did); backlog_seconds = total_lag * this / slots",
      labelNames: ["pool"] as const,
      registers,
      collect() {
        for (const t of turnsByPool(sources)) this.set({ pool: t.pool }, t.meanSeconds);
      },
    }),
    historyReadHops: new Histogram({
      name: "kafka_llm_gateway_history_read_fetches",
      help: "Records of chat.history fetched at exact offsets per history read (grows with what the read returns, plus O(log n) to find it)",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    }),
    recentTurns: new Gauge({
      name: "kafka_llm_recent_turns",
      help: "Turns that ended within TURN_STATS_WINDOW_MS, as seen on chat.events",
      labelNames: ["pool"] as const,
      registers,
      collect() {
        for (const t of turnsByPool(sources)) this.set({ pool: t.pool }, t.count);
      },
    }),
    eventsRead: new Counter({
      name: "kafka_llm_gateway_events_read_total",
      help: "Records this replica read from chat.events (its own partitions, and those it reads for a follower)",
      registers,
    }),
    eventsReaderRestarts: new Counter({
      name: "kafka_llm_gateway_events_reader_restarts_total",
      help: "Times the chat.events reader's consumer was replaced because it had stopped fetching while records waited (a broker restart can leave it so)",
      registers,
    }),
    eventPartitions: new Gauge({
      name: "kafka_llm_gateway_events_partitions",
      help: "chat.events partitions this replica reads, by role (owned: given it by the gateways' group; followed: read only while a client here follows one of its requests)",
      labelNames: ["role"] as const,
      registers,
      collect() {
        const p = sources.eventPartitions?.() ?? { owned: 0, followed: 0 };
        this.set({ role: "owned" }, p.owned);
        this.set({ role: "followed" }, p.followed);
      },
    }),
  };
}
