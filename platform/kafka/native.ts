/**
 * The one set of typings of librdkafka's Node binding (@confluentinc/kafka-javascript) that
 * the project uses: its low-level clients, not its KafkaJS-compatible layer, which stops
 * fetching every partition while a rebalance callback runs and caches records ahead of the
 * application. The package's own .d.ts lacks calls we need (incrementalAssign,
 * setDefaultIsTimeoutOnlyForFirstMessage, commitCb, sendOffsetsToTransaction with a native
 * consumer), so the subset used is written here once, from the binding's lib/*.js.
 */
import { createRequire } from "node:module";

export interface TopicPartition {
  topic: string;
  partition: number;
}
export interface TopicPartitionOffset extends TopicPartition {
  offset: number;
}

/** librdkafka's error: `code` is Kafka's error code (positive) or librdkafka's own (negative). */
export interface NativeError extends Error {
  code: number;
  isFatal?: boolean;
  isRetriable?: boolean;
  isTxnRequiresAbort?: boolean;
}

export interface NativeMessage {
  topic: string;
  partition: number;
  offset: number;
  key?: Buffer | null;
  value: Buffer | null;
  timestamp?: number;
  headers?: Array<Record<string, Buffer | string>>;
}

export interface NativeClient {
  connect(options: Record<string, unknown>, cb: (err: NativeError | null) => void): void;
  disconnect(cb: (err: NativeError | null) => void): void;
  isConnected(): boolean;
  on(event: string, listener: (...args: any[]) => void): void;
  queryWatermarkOffsets(
    topic: string,
    partition: number,
    timeoutMs: number,
    cb: (err: NativeError | null, offsets: { lowOffset: number; highOffset: number }) => void,
  ): void;
  offsetsForTimes(
    toppars: TopicPartitionOffset[],
    timeoutMs: number,
    cb: (err: NativeError | null, offsets: Array<TopicPartitionOffset & { error?: NativeError }>) => void,
  ): void;
  getMetadata(options: { topic?: string; timeout: number }, cb: (err: NativeError | null, metadata?: NativeMetadata) => void): void;
}

/** A metadata answer: the live brokers, and the topics asked for (all of them when none was named). */
export interface NativeMetadata {
  brokers: Array<{ id: number; host: string; port: number }>;
  topics: Array<{ name: string; partitions: Array<{ id: number }> }>;
}

export interface NativeConsumer extends NativeClient {
  subscribe(topics: string[]): void;
  consume(n: number, cb: (err: NativeError | null, messages: NativeMessage[]) => void): void;
  setDefaultConsumeTimeout(ms: number): void;
  setDefaultIsTimeoutOnlyForFirstMessage(onlyFirst: boolean): void;
  assign(tps: Array<TopicPartition & { offset?: number }>): void;
  unassign(): void;
  incrementalAssign(tps: Array<TopicPartition & { offset?: number }>): void;
  incrementalUnassign(tps: TopicPartition[]): void;
  assignmentLost(): boolean;
  rebalanceProtocol(): string;
  pause(tps: TopicPartition[]): void;
  resume(tps: TopicPartition[]): void;
  seek(tp: TopicPartitionOffset, timeoutMs: number, cb: (err: NativeError | null) => void): void;
  position(tps: TopicPartition[]): Array<{ offset?: number }>;
  commitCb(tps: TopicPartitionOffset[], cb: (err: NativeError | null) => void): void;
  commitSync(tps: TopicPartitionOffset[]): void;
  getWatermarkOffsets(topic: string, partition: number): { highOffset: number; lowOffset: number };
}

export interface NativeProducer extends NativeClient {
  produce(
    topic: string,
    partition: number | null,
    value: Buffer | null,
    key: Buffer | string | null,
    timestamp: number | null,
    opaque: unknown,
    headers?: Array<Record<string, Buffer | string>>,
  ): void;
  setPollInBackground(on: boolean): void;
  flush(timeoutMs: number, cb: (err: NativeError | null) => void): void;
  initTransactions(timeoutMs: number, cb: (err: NativeError | null) => void): void;
  beginTransaction(cb: (err: NativeError | null) => void): void;
  commitTransaction(timeoutMs: number, cb: (err: NativeError | null) => void): void;
  abortTransaction(timeoutMs: number, cb: (err: NativeError | null) => void): void;
  sendOffsetsToTransaction(offsets: TopicPartitionOffset[], consumer: NativeConsumer, timeoutMs: number, cb: (err: NativeError | null) => void): void;
}

export interface DeliveryReport {
  topic: string;
  partition: number;
  offset: number;
  opaque: unknown;
}

/** A group as librdkafka's DescribeConsumerGroups has it (ConsumerGroupDescribe on KIP-848 groups). */
export interface NativeGroupDescription {
  groupId: string;
  error?: NativeError;
  state: number;
  /** 1: consumer (KIP-848), 2: classic. */
  type: number;
  members: Array<{
    clientId: string;
    memberId: string;
    clientHost: string;
    assignment?: { topicPartitions: TopicPartition[] } | null;
  }>;
}

export interface NativeAdmin {
  /**
   * The binding's native handle, whose metadata request the binding's own listTopics makes:
   * every topic's metadata from any broker, where DescribeTopics needs the controller
   * (admin.ts partitions says why that matters). Never with a topic named: that makes a
   * topic handle, and the client's disconnect can then hang.
   */
  readonly _client: {
    getMetadata(options: { allTopics: true; timeout: number }, cb: (err: NativeError | null, metadata?: NativeMetadata) => void): void;
  };
  connect(): void;
  disconnect(): void;
  createTopic(
    topic: { topic: string; num_partitions: number; replication_factor: number; config: Record<string, string> },
    timeoutMs: number,
    cb: (err: NativeError | null) => void,
  ): void;
  listTopics(options: { timeout: number }, cb: (err: NativeError | null, topics: string[]) => void): void;
  listOffsets(
    partitions: Array<TopicPartition & { offset: { timestamp: number } }>,
    options: { timeout: number; isolationLevel?: number },
    cb: (err: NativeError | null, offsets: Array<TopicPartitionOffset & { error?: NativeError }>) => void,
  ): void;
  listConsumerGroupOffsets(
    groups: Array<{ groupId: string; partitions?: TopicPartition[] }>,
    options: { timeout: number; requireStableOffsets?: boolean },
    cb: (
      err: NativeError | null,
      result: Array<{ groupId: string; error?: NativeError; partitions: Array<TopicPartitionOffset & { error?: NativeError }> }>,
    ) => void,
  ): void;
  describeGroups(
    groupIds: string[],
    options: { timeout: number; includeAuthorizedOperations?: boolean },
    cb: (err: NativeError | null, result: { groups: NativeGroupDescription[] }) => void,
  ): void;
  deleteGroups(
    groupIds: string[],
    options: { timeout: number },
    cb: (err: NativeError | null, result: Array<{ groupId: string; errorCode?: number }>) => void,
  ): void;
  deleteRecords(
    partitions: TopicPartitionOffset[],
    options: { timeout: number; operationTimeout?: number },
    cb: (err: NativeError | null, result: Array<TopicPartition & { lowWatermark: number; error?: NativeError }>) => void,
  ): void;
}

export interface Binding {
  KafkaConsumer: new (conf: Record<string, unknown>) => NativeConsumer;
  Producer: new (conf: Record<string, unknown>) => NativeProducer;
  /** `handlers`: listeners of the client's events (with `event_cb`: "event.log", "event.error"). */
  AdminClient: { create(conf: Record<string, unknown>, handlers?: Record<string, (...args: any[]) => void>): NativeAdmin };
}

let binding: Binding | null = null;

/** The binding, loaded once (a native module: loading it costs tens of milliseconds). */
export function rdkafka(): Binding {
  binding ??= createRequire(import.meta.url)("@confluentinc/kafka-javascript") as Binding;
  return binding;
}

/** librdkafka's own error codes (negative) and Kafka's (positive) that the project acts on. */
export const ErrorCode = {
  /** A consume that found nothing within its timeout. */
  TIMED_OUT: -185,
  /** Partitions assigned / revoked (the rebalance callback's "error"). */
  ASSIGN_PARTITIONS: -175,
  REVOKE_PARTITIONS: -174,
  /** A commit with nothing to commit. */
  NO_OFFSET: -168,
  /** An offset outside the log, with auto.offset.reset=error. */
  AUTO_OFFSET_RESET: -140,
  /** librdkafka gave up on a message it could not deliver in message.timeout.ms. */
  MSG_TIMED_OUT: -192,
  /** Every broker is down (informational: librdkafka reconnects). */
  ALL_BROKERS_DOWN: -187,
  /** A transactional producer that another with the same id (or a newer group generation) replaced. */
  FENCED: -144,
  /** A record larger than message.max.bytes (librdkafka's own check, or the broker's). */
  MSG_SIZE_TOO_LARGE: 10,
  /** A topic the brokers do not know (or the principal may not describe). */
  UNKNOWN_TOPIC_OR_PART: 3,
  TOPIC_ALREADY_EXISTS: 36,
  TOPIC_AUTHORIZATION_FAILED: 29,
  GROUP_AUTHORIZATION_FAILED: 30,
  CLUSTER_AUTHORIZATION_FAILED: 31,
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 53,
  PRODUCER_FENCED: 90,
  INVALID_PRODUCER_EPOCH: 47,
  GROUP_ID_NOT_FOUND: 69,
  /** A consumer generation that is no longer the group's (its offsets are refused). */
  ILLEGAL_GENERATION: 22,
  UNKNOWN_MEMBER_ID: 25,
  FENCED_MEMBER_EPOCH: 110,
  STALE_MEMBER_EPOCH: 113,
} as const;

const AUTHORIZATION_NAMES: Record<number, string> = {
  [ErrorCode.TOPIC_AUTHORIZATION_FAILED]: "TOPIC_AUTHORIZATION_FAILED",
  [ErrorCode.GROUP_AUTHORIZATION_FAILED]: "GROUP_AUTHORIZATION_FAILED",
  [ErrorCode.CLUSTER_AUTHORIZATION_FAILED]: "CLUSTER_AUTHORIZATION_FAILED",
  [ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED]: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
};

/** Kafka's name of an authorization error (`TOPIC_AUTHORIZATION_FAILED`, …), or undefined for any other error. */
export function authorizationFailure(err: unknown): string | undefined {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === "number" ? AUTHORIZATION_NAMES[code] : undefined;
}

/** Calls a node-style native function and settles with its result. */
export function call<T = void>(start: (cb: (err: NativeError | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T))));
}
