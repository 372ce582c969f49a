/**
 * The Kafka topics of kafka-llm: their names and the settings they are created with.
 * Each topic's record schema lives in its own module under ./records/; this file says
 * where records go. A conversation's records are keyed by its conversation key,
 * `<tenant>/<conversation id>` (./conversation-key.ts), so one conversation's requests,
 * events, memory and history each stay in one partition.
 *
 * | topic               | key               | value                         | written by | read by                                  |
 * | ------------------- | ----------------- | ----------------------------- | ---------- | ---------------------------------------- |
 * | chat.requests       | conversation key  | ChatRequest                   | gateway    | workers (group); every gateway (ids)     |
 * | chat.events         | conversation key¹ | ChatEvent (start/delta/final) | workers    | gateways (group: each replica its share) |
 * | chat.memory         | conversation key² | conversation state, compacted | workers    | workers (the owner; gateways ask it)     |
 * | chat.history        | conversation key  | HistoryRecord, append-only    | workers    | gateways (exact offsets)                 |
 * | chat.control        | request id        | ControlRecord (cancel)        | gateway    | every worker                             |
 * | chat.requests.dlq   | original key      | original bytes + reason hdrs  | workers    | operators                                |
 * | chat.models         | pool name         | PoolRecord, compacted         | topics Job, workers | every gateway (whole)           |
 *
 * A pool other than the default has its own chat.requests and chat.memory (./pools.ts:
 * `chat.requests.pool.<pool>`, `chat.memory.pool.<pool>`); topicNames(prefix, pool) gives a
 * pool's names, the other roles being the same for every pool.
 *
 * ¹ In the partition the request's `events_partition` names (one its gateway replica reads), else the key's.
 * ² Handovers under `#handover:<request id>` (./records/memory.ts).
 */

import { DEFAULT_POOL, poolTopics } from "./pools.js";

export const TOPIC_BASE_NAMES = {
  requests: "chat.requests",
  events: "chat.events",
  memory: "chat.memory",
  history: "chat.history",
  control: "chat.control",
  deadLetter: "chat.requests.dlq",
  models: "chat.models",
} as const;

export type TopicRole = keyof typeof TOPIC_BASE_NAMES;
export type TopicNames = { readonly [R in TopicRole]: string };

/** Topic names with an optional prefix (one cluster shared by several installs or test runs), as a pool sees them. */
export function topicNames(prefix = "", pool: string = DEFAULT_POOL): TopicNames {
  const names = {} as { [R in TopicRole]: string };
  for (const role of Object.keys(TOPIC_BASE_NAMES) as TopicRole[]) {
    names[role] = `${prefix}${TOPIC_BASE_NAMES[role]}`;
  }
  return Object.freeze({ ...names, ...poolTopics(prefix, pool) });
}

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** -1 means the broker's default.replication.factor. */
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

export interface TopicSettings {
  /** Partitions of chat.requests; chat.memory must have the same count (co-partitioning). */
  requestPartitions: number;
  /** Partitions of chat.events; defaults to requestPartitions. */
  eventPartitions: number;
  replicationFactor: number;
  /** Conversation time to live: retention.ms of chat.memory. */
  conversationTtlMs: number;
  /** chat.history's own: retention.ms, partitions (need not match the requests'), replication. */
  history: { retentionMs: number; partitions: number; replicationFactor: number };
  /** min.insync.replicas; 0 or absent: derived per topic (minInsyncReplicasFor). */
  minInsyncReplicas?: number;
}

/**
 * A topic's min.insync.replicas: the configured value, or 2 where the replication factor is
 * 3 or more (every producer here writes with acks=all, so an acknowledged record is then on
 * two brokers, and losing one loses nothing while the other two still take writes); else
 * none, the broker's default (a replication factor of 1 or 2, or -1, the broker's own, which
 * cannot be known here).
 */
export function minInsyncReplicasFor(replicationFactor: number, configured = 0): number | undefined {
  if (configured > 0) return configured;
  return replicationFactor >= 3 ? 2 : undefined;
}

/**
 * chat.memory's delete.retention.ms: how long compaction keeps a tombstone (Kafka's default,
 * one day, set explicitly). The workers rely on it without reading it back (librdkafka's
 * binding cannot read a topic's configuration): a state store checkpoint older than this may
 * have missed a tombstone compaction has since removed, so its restore is cold
 * (worker/restore-plan.ts). The topic is created with it (the topics Job, or
 * KAFKA_ENSURE_TOPICS); an operator who lowers it on the topic must know the workers assume
 * this value, and would restore warm from checkpoints that are no longer safe.
 */
export const MEMORY_DELETE_RETENTION_MS = 86_400_000;

/**
 * What each topic must look like. chat.memory is compacted and co-partitioned with
 * chat.requests: the worker that owns partition p of the requests owns the memory of p.
 */
export function topicSpecs(names: TopicNames, s: TopicSettings): TopicSpec[] {
  const rf = s.replicationFactor;
  const withIsr = (spec: TopicSpec): TopicSpec => {
    const isr = minInsyncReplicasFor(spec.replicationFactor, s.minInsyncReplicas);
    return isr === undefined ? spec : { ...spec, configs: { ...spec.configs, "min.insync.replicas": String(isr) } };
  };
  const specs: TopicSpec[] = [
    { name: names.requests, partitions: s.requestPartitions, replicationFactor: rf, configs: {} },
    { name: names.events, partitions: s.eventPartitions, replicationFactor: rf, configs: {} },
    {
      name: names.memory,
      partitions: s.requestPartitions,
      replicationFactor: rf,
      // compact keeps each conversation's latest state; delete forgets conversations
      // untouched for the TTL (a write refreshes it, as every record is the whole state).
      // delete.retention.ms: see MEMORY_DELETE_RETENTION_MS.
      configs: { "cleanup.policy": "compact,delete", "retention.ms": String(s.conversationTtlMs), "delete.retention.ms": String(MEMORY_DELETE_RETENTION_MS) },
    },
    {
      name: names.history,
      partitions: s.history.partitions,
      replicationFactor: s.history.replicationFactor,
      // Every message once, read at exact offsets (records link to earlier ones, the memory
      // record holds the newest): never compacted, aged out after its own TTL.
      configs: { "cleanup.policy": "delete", "retention.ms": String(s.history.retentionMs) },
    },
    { name: names.control, partitions: 1, replicationFactor: rf, configs: {} },
    { name: names.deadLetter, partitions: 1, replicationFactor: rf, configs: {} },
    // One record per pool, its latest kept (a tombstone removes the pool): read whole by every gateway.
    { name: names.models, partitions: 1, replicationFactor: rf, configs: { "cleanup.policy": "compact" } },
  ];
  return specs.map(withIsr);
}
