/** The worker's Prometheus metrics, on a registry of its own (no globals). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { DeadLetterReason } from "./attempts.js";

/** Seconds, from 10 ms to 60 s: LLM latencies span that range. */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];

/** Every reason a request is dead-lettered for (worker/attempts.ts's DeadLetterReason). */
const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = ["invalid_record", "attempts_exhausted", "record_too_large"];

/**
 * A labelled counter with each of its label values at 0 from the start: a dashboard's
 * rate() over it returns 0, not "no data", until the first increment.
 */
function zeroed<L extends string>(counter: Counter<L>, label: L, values: readonly string[]): Counter<L> {
  for (const value of values) counter.inc({ [label]: value } as Partial<Record<L, string>>, 0);
  return counter;
}

export function createWorkerMetrics(workerId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ worker_id: workerId });
  collectDefaultMetrics({ register: registry, prefix: "kafka_llm_worker_" });
  return {
    registry,
    promptTokens: new Counter({
      name: "kafka_llm_prompt_tokens_total",
      help: "Prompt tokens evaluated (tokens reused from the KV cache are not counted)",
      registers: [registry],
    }),
    generatedTokens: new Counter({
      name: "kafka_llm_generated_tokens_total",
      help: "Tokens generated",
      registers: [registry],
    }),
    transactions: new Counter({
      name: "kafka_llm_turn_transactions_total",
      help: "Turns written in a Kafka transaction (WORKER_TRANSACTIONS), by outcome: committed, aborted (the request runs again) or fenced (the broker refused a replaced worker)",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    requests: new Counter({
      name: "kafka_llm_requests_total",
      help: "Chat requests handled, by outcome",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    timeToFirstToken: new Histogram({
      name: "kafka_llm_time_to_first_token_seconds",
      help: "From the worker starting a turn to its first generated token",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    turnDuration: new Histogram({
      name: "kafka_llm_turn_duration_seconds",
      help: "From the worker starting a turn to its final event being written",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    turnPhase: new Histogram({
      name: "kafka_llm_turn_phase_seconds",
      help: "Where a chat turn's time goes on the worker, by phase (worker/turn-phases.ts): load, slot_wait, first_token, generate, memory_write, events, commit",
      labelNames: ["phase"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: "kafka_llm_queue_wait_seconds",
      help: "From the gateway accepting a request to a worker starting it",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    activeGenerations: new Gauge({
      name: "kafka_llm_active_generations",
      help: "Generations running now",
      registers: [registry],
    }),
    slots: new Gauge({
      name: "kafka_llm_worker_slots",
      help: "Generations this worker can run at once (WORKER_SLOTS)",
      registers: [registry],
    }),
    slotTenantClears: new Counter({
      name: "kafka_llm_slot_tenant_clears_total",
      help: "KV slots cleared because a turn of another tenant took them (its prompt is evaluated whole)",
      registers: [registry],
    }),
    assignedPartitions: new Gauge({
      name: "kafka_llm_assigned_partitions",
      help: "Partitions of chat.requests assigned to this worker",
      registers: [registry],
    }),
    partitionLag: new Gauge({
      name: "kafka_llm_partition_lag",
      help: "Records behind the end of each assigned partition, as of the last fetch",
      labelNames: ["topic", "partition"] as const,
      registers: [registry],
    }),
    rebalances: new Counter({
      name: "kafka_llm_rebalances_total",
      help: "Consumer group joins (each rebalance this worker took part in)",
      registers: [registry],
    }),
    memoryRestore: new Histogram({
      name: "kafka_llm_memory_restore_seconds",
      help: "Time to read a chat.memory partition to its end after gaining it, by kind: warm (from the state store's checkpoint) or cold (from the beginning)",
      labelNames: ["kind"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    memoryRestoredRecords: new Counter({
      name: "kafka_llm_memory_restored_records_total",
      help: "chat.memory records read by restores, by kind (warm: since the state store's checkpoint; cold: from the beginning)",
      labelNames: ["kind"] as const,
      registers: [registry],
    }),
    memoryConversations: new Gauge({
      name: "kafka_llm_memory_conversations",
      help: "Conversations held in the state store for the assigned partitions",
      registers: [registry],
    }),
    cancelLatency: new Histogram({
      name: "kafka_llm_cancel_latency_seconds",
      help: "From reading a cancel on chat.control to the generation having stopped",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2],
      registers: [registry],
    }),
    deadLettered: zeroed(
      new Counter({
        name: "kafka_llm_dead_lettered_total",
        help: "Requests sent to the dead letter topic, by reason: invalid_record (not a request, or not where its key belongs), attempts_exhausted (failed MAX_REQUEST_ATTEMPTS times, worker crashes included), record_too_large (a record it writes is over its topic's max.message.bytes)",
        labelNames: ["reason"] as const,
        registers: [registry],
      }),
      "reason",
      DEAD_LETTER_REASONS,
    ),
    handovers: new Counter({
      name: "kafka_llm_handovers_total",
      help: "Replies handed over at a partition move after the drain bound (direction=out) and continued here (direction=in)",
      labelNames: ["direction"],
      registers: [registry],
    }),
    state: new Gauge({
      name: "kafka_llm_worker_state",
      help: "1 for the worker's lifecycle state (starting, loading_model, joining, running, draining, stopped, failed), 0 for the others",
      labelNames: ["state"],
      registers: [registry],
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
