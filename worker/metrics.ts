/**
 * The worker's Prometheus metrics, on a registry of its own (no globals), served as
 * OpenMetrics so that latency buckets carry the trace id of a turn that fell in them
 * (an exemplar: Grafana links the bucket to the trace).
 *
 * Beside the project's own kafka_llm_* names (dashboards, the HPA and alerts read them), the
 * OpenTelemetry GenAI server metrics under their Prometheus names (gen_ai.server.* in
 * seconds), labelled as the semantic conventions ask, so that GenAI dashboards work as they are.
 */
import { DEFAULT_POOL } from "../contracts/pools.js";
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type HistogramConfiguration,
  type ObserveDataWithExemplar,
  type RegistryContentType,
} from "prom-client";
import { DEFAULT_METRICS_MAX_TENANTS } from "../contracts/config/worker.js";
import type { DeadLetterReason } from "./attempts.js";
import type { GenerateResult, SlotGenerator } from "./generator.js";
import type { SlotPool } from "./slot-pool.js";
import type { TurnScheduler } from "./turn-scheduler.js";

/** Seconds, from 10 ms to 60 s: LLM latencies span that range. */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];

/** The GenAI semantic conventions' bucket boundaries for each server metric (seconds). */
const GEN_AI_BUCKETS = {
  timeToFirstToken: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0],
  timePerOutputToken: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5],
  requestDuration: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92],
};

/** gen_ai.provider.name: this service, as its spans name it (worker/turn-trace.ts). */
const GEN_AI_PROVIDER = "kafka-llm";
const GEN_AI_LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"] as const;

/** Every reason a request is dead-lettered for (worker/attempts.ts's DeadLetterReason). */
const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = ["invalid_record", "attempts_exhausted", "record_too_large"];

/** The `tenant` label value of every tenant past METRICS_MAX_TENANTS. */
export const OTHER_TENANT = "_other";

type Labels<L extends string> = Partial<Record<L, string | number>>;

/**
 * A labelled counter with each of its label values at 0 from the start: a dashboard's
 * rate() over it returns 0, not "no data", until the first increment.
 */
function zeroed<L extends string>(counter: Counter<L>, label: L, values: readonly string[]): Counter<L> {
  for (const value of values) counter.inc({ [label]: value } as Partial<Record<L, string>>, 0);
  return counter;
}

/**
 * A histogram whose buckets keep an exemplar: the trace id of the latest observation that fell
 * in each (observeWithTrace). prom-client's exemplar histograms take only
 * observe({ value, labels, exemplarLabels }) and throw at run time on observe(value) and
 * observe(labels, value), which their type allows; this one takes all three.
 */
class ExemplarHistogram<L extends string> extends Histogram<L> {
  constructor(config: HistogramConfiguration<L>) {
    super({ ...config, enableExemplars: true });
    const withExemplar = this.observe.bind(this) as (data: ObserveDataWithExemplar<L>) => void;
    this.observe = ((a: number | Labels<L> | ObserveDataWithExemplar<L>, b?: number) => {
      if (typeof a === "number") withExemplar({ value: a });
      else if (b !== undefined) withExemplar({ labels: a as Labels<L>, value: b });
      else withExemplar(a as ObserveDataWithExemplar<L>);
    }) as Histogram<L>["observe"];
  }
}

/** A W3C trace id of a real trace: 32 hex digits, not all zeros (OpenTelemetry's invalid id). */
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;

/**
 * Observes `seconds` on `histogram`, with `traceId` as the bucket's exemplar (label trace_id)
 * when it is a valid trace id; without one (tracing off, a trace not sampled), or on a
 * histogram made without exemplars, a plain observation. `labels`: the histogram's own
 * labels, if it has any.
 */
export function observeWithTrace<L extends string>(histogram: Histogram<L>, seconds: number, traceId: string | undefined, labels?: Labels<L>): void {
  const exemplar = traceId !== undefined && TRACE_ID.test(traceId) && (histogram as { enableExemplars?: boolean }).enableExemplars === true;
  if (!exemplar) {
    if (labels) histogram.observe(labels, seconds);
    else histogram.observe(seconds);
    return;
  }
  // Exemplar labels are not the histogram's labels; prom-client's type says they are.
  const exemplarLabels = { trace_id: traceId } as Labels<string> as Labels<L>;
  histogram.observe({ value: seconds, exemplarLabels, ...(labels && { labels }) });
}

/**
 * Label values for tenants, at most `max` of them: the first `max` tenants seen keep their
 * own value, every later one is OTHER_TENANT, so a flood of tenants cannot grow a metric's
 * series without bound. Per process: a restarted worker starts over.
 */
export class TenantLabels {
  readonly #named = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  of(tenant: string): string {
    if (this.#named.has(tenant)) return tenant;
    if (this.#named.size >= this.#max) return OTHER_TENANT;
    this.#named.add(tenant);
    return tenant;
  }
}

/** What a finished generation used and took (a GenerateResult's counts and times). */
export type GenerationUsage = Pick<GenerateResult, "promptTokens" | "cachedPromptTokens" | "completionTokens" | "timeToFirstTokenMs" | "generationMs">;

/** What the engine gauges read at scrape time (worker/request-loop.ts hands them over once they exist). */
export interface EngineSources {
  readonly slots: Pick<SlotPool<SlotGenerator>, "size" | "busyCount" | "waitingCount" | "generators">;
  readonly scheduler: Pick<TurnScheduler, "waiting">;
}

export interface WorkerMetricsOptions {
  /** The gen_ai_request_model label: the model's name (its GGUF file's, without .gguf). Default "unknown". */
  readonly model?: string;
  /** METRICS_MAX_TENANTS (TenantLabels). Default DEFAULT_METRICS_MAX_TENANTS. */
  readonly maxTenants?: number;
  /** The worker's pool (contracts/pools.ts), a label of every series. Default "default". */
  readonly pool?: string;
}

export function createWorkerMetrics(workerId: string, options: WorkerMetricsOptions = {}) {
  // Set before any metric is made: prom-client refuses an exemplar histogram on a registry
  // of the Prometheus text format. Its types bind a registry to one format, and the ops
  // server's parameter names the default one (it sends whatever contentType the registry has).
  const registry = new Registry<RegistryContentType>();
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  registry.setDefaultLabels({ worker_id: workerId, pool: options.pool ?? DEFAULT_POOL });
  collectDefaultMetrics({ register: registry, prefix: "kafka_llm_worker_" });
  const registers = [registry];
  const genAi = { gen_ai_operation_name: "chat", gen_ai_provider_name: GEN_AI_PROVIDER, gen_ai_request_model: options.model ?? "unknown" };
  const tenants = new TenantLabels(options.maxTenants ?? DEFAULT_METRICS_MAX_TENANTS);
  let engine: EngineSources | null = null;

  const promptTokens = new Counter({
    name: "kafka_llm_prompt_tokens_total",
    help: "Prompt tokens evaluated (tokens reused from the KV cache are not counted)",
    registers,
  });
  const generatedTokens = new Counter({
    name: "kafka_llm_generated_tokens_total",
    help: "Tokens generated",
    registers,
  });
  const tenantTokens = new Counter({
    name: "kafka_llm_tenant_tokens_total",
    help: `Tokens per tenant, for chargeback: gen_ai_token_type="input" with cached="false" (prompt tokens evaluated) or cached="true" (reused from the KV cache), and "output" (generated). Tenants past METRICS_MAX_TENANTS count as tenant="${OTHER_TENANT}"`,
    labelNames: ["tenant", "gen_ai_token_type", "cached"] as const,
    registers,
  });
  const timeToFirstToken = new ExemplarHistogram({
    name: "kafka_llm_time_to_first_token_seconds",
    help: "From the worker starting a generation to its first generated token; exemplars: the turn's trace_id",
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const turnDuration = new ExemplarHistogram({
    name: "kafka_llm_turn_duration_seconds",
    help: "From the worker starting a request to its final event being written; exemplars: the request's trace_id",
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const genAiTimeToFirstToken = new ExemplarHistogram({
    name: "gen_ai_server_time_to_first_token_seconds",
    help: "OpenTelemetry gen_ai.server.time_to_first_token: from the worker starting a chat generation to its first token (kafka_llm_queue_wait_seconds has the time before); exemplars: trace_id",
    labelNames: GEN_AI_LABELS,
    buckets: GEN_AI_BUCKETS.timeToFirstToken,
    registers,
  });
  const genAiTimePerOutputToken = new ExemplarHistogram({
    name: "gen_ai_server_time_per_output_token_seconds",
    help: "OpenTelemetry gen_ai.server.time_per_output_token: a generation's time after its first token over the tokens after the first (generations of 2 tokens or more); exemplars: trace_id",
    labelNames: GEN_AI_LABELS,
    buckets: GEN_AI_BUCKETS.timePerOutputToken,
    registers,
  });
  const genAiRequestDuration = new ExemplarHistogram({
    name: "gen_ai_server_request_duration_seconds",
    help: "OpenTelemetry gen_ai.server.request.duration: a chat turn from the worker starting it to its final event; error_type is the outcome when it did not complete (cancelled, failed, dead_lettered); exemplars: trace_id",
    labelNames: [...GEN_AI_LABELS, "error_type"] as const,
    buckets: GEN_AI_BUCKETS.requestDuration,
    registers,
  });

  return {
    // The ops server and the query route take prom-client's default Registry type: they only
    // register metrics on it and send its contentType, which says OpenMetrics.
    registry: registry as unknown as Registry,
    promptTokens,
    generatedTokens,
    tenantTokens,
    timeToFirstToken,
    turnDuration,
    genAiTimeToFirstToken,
    genAiTimePerOutputToken,
    genAiRequestDuration,

    /**
     * A finished generation (or a request's n choices, each generated on its own): its tokens
     * (kafka_llm_prompt_tokens_total, kafka_llm_generated_tokens_total and, per tenant,
     * kafka_llm_tenant_tokens_total), the first choice's time to first token (kafka_llm_ and
     * gen_ai_ histograms) and each choice's time per output token, with `traceId` as exemplar.
     */
    generationDone(tenant: string, usage: GenerationUsage | readonly GenerationUsage[], traceId: string | undefined): void {
      const all: readonly GenerationUsage[] = "promptTokens" in usage ? [usage] : usage;
      let evaluated = 0;
      let cached = 0;
      let output = 0;
      for (const u of all) {
        evaluated += u.promptTokens - u.cachedPromptTokens;
        cached += u.cachedPromptTokens;
        output += u.completionTokens;
      }
      promptTokens.inc(evaluated);
      generatedTokens.inc(output);
      const t = tenants.of(tenant);
      tenantTokens.inc({ tenant: t, gen_ai_token_type: "input", cached: "false" }, evaluated);
      tenantTokens.inc({ tenant: t, gen_ai_token_type: "input", cached: "true" }, cached);
      tenantTokens.inc({ tenant: t, gen_ai_token_type: "output" }, output);
      const first = all[0];
      if (!first) return;
      observeWithTrace(timeToFirstToken, first.timeToFirstTokenMs / 1000, traceId);
      observeWithTrace(genAiTimeToFirstToken, first.timeToFirstTokenMs / 1000, traceId, genAi);
      for (const u of all) {
        if (u.completionTokens < 2) continue;
        const seconds = Math.max(0, u.generationMs - u.timeToFirstTokenMs) / 1000 / (u.completionTokens - 1);
        observeWithTrace(genAiTimePerOutputToken, seconds, traceId, genAi);
      }
    },

    /**
     * A request's end, `seconds` after the worker started it: kafka_llm_turn_duration_seconds
     * for every request; a chat turn (`turnOutcome` given) also
     * gen_ai_server_request_duration_seconds, with error_type unless it completed.
     */
    requestDone(seconds: number, traceId: string | undefined, turnOutcome?: string): void {
      observeWithTrace(turnDuration, seconds, traceId);
      if (turnOutcome === undefined) return;
      observeWithTrace(genAiRequestDuration, seconds, traceId, turnOutcome === "completed" ? genAi : { ...genAi, error_type: turnOutcome });
    },

    /** The slot pool and the scheduler, once they exist: the engine gauges read them at each scrape. */
    watchEngine(sources: EngineSources): void {
      engine = sources;
    },

    slotsBusy: new Gauge({
      name: "kafka_llm_worker_slots_busy",
      help: "KV slots generating now (or being cleared for another tenant)",
      registers,
      collect() {
        this.set(engine?.slots.busyCount ?? 0);
      },
    }),
    slotsFree: new Gauge({
      name: "kafka_llm_worker_slots_free",
      help: "KV slots free now",
      registers,
      collect() {
        this.set(engine ? engine.slots.size - engine.slots.busyCount : 0);
      },
    }),
    kvCacheTokens: new Gauge({
      name: "kafka_llm_kv_cache_tokens",
      help: "Tokens held in the KV cache now, all slots' sequences together (a conversation's tokens stay after its turn, for its next one)",
      registers,
      collect() {
        this.set(kvCache(engine).tokens);
      },
    }),
    kvCacheCapacity: new Gauge({
      name: "kafka_llm_kv_cache_capacity_tokens",
      help: "Tokens the KV cache can hold, all slots' sequences together (CONTEXT_SIZE per slot)",
      registers,
      collect() {
        this.set(kvCache(engine).capacity);
      },
    }),
    waitingTurns: new Gauge({
      name: "kafka_llm_scheduler_waiting_turns",
      help: "Requests waiting on this worker, by stage: queued (fetched, not started: its conversation's previous request runs, its tenant is at its share of the slots, no slot is free, or a retry backs off) or slot (started, waiting for a KV slot that another request's extra choices hold)",
      labelNames: ["stage"] as const,
      registers,
      collect() {
        this.set({ stage: "queued" }, engine?.scheduler.waiting ?? 0);
        this.set({ stage: "slot" }, engine?.slots.waitingCount ?? 0);
      },
    }),

    transactions: new Counter({
      name: "kafka_llm_turn_transactions_total",
      help: "Turns written in a Kafka transaction (WORKER_TRANSACTIONS), by outcome: committed, aborted (the request runs again) or fenced (the broker refused a replaced worker)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    requests: new Counter({
      name: "kafka_llm_requests_total",
      help: "Chat requests handled, by outcome",
      labelNames: ["outcome"] as const,
      registers,
    }),
    turnPhase: new Histogram({
      name: "kafka_llm_turn_phase_seconds",
      help: "Where a chat turn's time goes on the worker, by phase (worker/turn-phases.ts): load, slot_wait, first_token, generate, memory_write, events, commit",
      labelNames: ["phase"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers,
    }),
    queueWait: new Histogram({
      name: "kafka_llm_queue_wait_seconds",
      help: "From the gateway accepting a request to a worker starting it",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    activeGenerations: new Gauge({
      name: "kafka_llm_active_generations",
      help: "Generations running now",
      registers,
    }),
    slots: new Gauge({
      name: "kafka_llm_worker_slots",
      help: "Generations this worker can run at once (WORKER_SLOTS)",
      registers,
    }),
    slotTenantClears: new Counter({
      name: "kafka_llm_slot_tenant_clears_total",
      help: "KV slots cleared because a turn of another tenant took them (its prompt is evaluated whole)",
      registers,
    }),
    assignedPartitions: new Gauge({
      name: "kafka_llm_assigned_partitions",
      help: "Partitions of chat.requests assigned to this worker",
      registers,
    }),
    partitionLag: new Gauge({
      name: "kafka_llm_partition_lag",
      help: "Records behind the end of each assigned partition, as of the last fetch",
      labelNames: ["topic", "partition"] as const,
      registers,
    }),
    rebalances: new Counter({
      name: "kafka_llm_rebalances_total",
      help: "Consumer group joins (each rebalance this worker took part in)",
      registers,
    }),
    memoryRestore: new Histogram({
      name: "kafka_llm_memory_restore_seconds",
      help: "Time to read a chat.memory partition to its end after gaining it, by kind: warm (from the state store's checkpoint) or cold (from the beginning)",
      labelNames: ["kind"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    memoryRestoredRecords: new Counter({
      name: "kafka_llm_memory_restored_records_total",
      help: "chat.memory records read by restores, by kind (warm: since the state store's checkpoint; cold: from the beginning)",
      labelNames: ["kind"] as const,
      registers,
    }),
    memoryConversations: new Gauge({
      name: "kafka_llm_memory_conversations",
      help: "Conversations held in the state store for the assigned partitions",
      registers,
    }),
    cancelLatency: new Histogram({
      name: "kafka_llm_cancel_latency_seconds",
      help: "From reading a cancel on chat.control to the generation having stopped",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2],
      registers,
    }),
    deadLettered: zeroed(
      new Counter({
        name: "kafka_llm_dead_lettered_total",
        help: "Requests sent to the dead letter topic, by reason: invalid_record (not a request, or not where its key belongs), attempts_exhausted (failed MAX_REQUEST_ATTEMPTS times, worker crashes included), record_too_large (a record it writes is over its topic's max.message.bytes)",
        labelNames: ["reason"] as const,
        registers,
      }),
      "reason",
      DEAD_LETTER_REASONS,
    ),
    handovers: new Counter({
      name: "kafka_llm_handovers_total",
      help: "Replies handed over at a partition move after the drain bound (direction=out) and continued here (direction=in)",
      labelNames: ["direction"],
      registers,
    }),
    state: new Gauge({
      name: "kafka_llm_worker_state",
      help: "1 for the worker's lifecycle state (starting, loading_model, joining, running, draining, stopped, failed), 0 for the others",
      labelNames: ["state"],
      registers,
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

/** The KV cache of every slot's sequence, summed (zero before the engine is watched, and for generators without one). */
function kvCache(engine: EngineSources | null): { tokens: number; capacity: number } {
  let tokens = 0;
  let capacity = 0;
  for (const g of engine?.slots.generators ?? []) {
    const c = g.kvCache?.();
    tokens += c?.tokens ?? 0;
    capacity += c?.capacity ?? 0;
  }
  return { tokens, capacity };
}
