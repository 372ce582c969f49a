/**
 * Conversation reads without a copy of chat.memory (Kafka Streams' interactive queries):
 * the worker that owns partition p of chat.requests holds partition p of chat.memory, so
 * the gateway asks that worker. The partition comes from the partitioner the publisher
 * uses (kafkajs's default: the Java client's murmur2); the owner from the worker group's
 * description (librdkafka's admin, which describes KIP-848 and classic groups alike), whose
 * members advertise their query address at the end of their client.id
 * (`<client id>@http://HOST:PORT`, worker/query-server.ts).
 *
 * What the gateway keeps is one address per partition (bounded by the partition count),
 * refreshed when a partition has no known owner or the one asked says it is no longer the
 * owner (421). Nothing grows with the number of conversations; every answer about a
 * conversation, its tenant included, is the owner's answer of the moment.
 *
 * During a rebalance (no owner yet, or the new owner still restoring) a read waits up to
 * CONVERSATION_LOOKUP_TIMEOUT_MS, then answers 503 with what was missing.
 */
import { createRequire } from "node:module";
import { Partitioners } from "kafkajs";
import type { KafkaConfig } from "../../contracts/config.js";
import { conversationStateSchema, type ConversationState } from "../../contracts/records.js";
import { librdkafkaConnection } from "../../platform/group-consumer.js";
import type { Logger } from "../../platform/logger.js";

/** The partition of chat.requests (and chat.memory) a conversation id lands on: the publisher's partitioner. */
export function conversationPartition(conversationId: string, partitions: number): number {
  const partitioner = DEFAULT_PARTITIONER;
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
  return partitioner({ topic: "chat.requests", partitionMetadata, message: { key: conversationId, value: null } });
}
const DEFAULT_PARTITIONER = Partitioners.DefaultPartitioner();

/** The query address in a member's client.id (`...@http://HOST:PORT`), or null when it advertises none. */
export function advertisedAddress(clientId: string): string | null {
  const at = clientId.lastIndexOf("@");
  if (at < 0) return null;
  const address = clientId.slice(at + 1);
  return /^https?:\/\/[^\s/@]+$/.test(address) ? address : null;
}

/** One member of the worker group as its description shows it. */
export interface GroupMember {
  clientId: string;
  partitions: number[];
}

/** Who owns what, read from Kafka; null when the group has no members (no workers run). */
export type DescribeGroup = () => Promise<{ members: GroupMember[]; state: string } | null>;

/** Partition → owner address, from a group description (members that advertise no address are skipped). */
export function ownerMap(members: readonly GroupMember[]): Map<number, string> {
  const owners = new Map<number, string>();
  for (const m of members) {
    const address = advertisedAddress(m.clientId);
    if (address) for (const p of m.partitions) owners.set(p, address);
  }
  return owners;
}

/** The answer-level problem behind a 503: what the gateway could not find. */
export class LookupUnavailable extends Error {}

export type LookupOutcome = "found" | "not_found" | "unavailable";

export interface ConversationLookup {
  /**
   * The conversation's state from its partition's owner; undefined when the owner has
   * none. Throws LookupUnavailable when no owner answered within the bound. `wait: false`
   * tries the owner known now (after one refresh) and gives up at once otherwise.
   */
  get(conversationId: string, options?: { wait?: boolean }): Promise<ConversationState | undefined>;
  /** Partitions whose owner is cached (at most the partition count). */
  readonly cachedOwners: number;
  stop(): Promise<void>;
}

export interface LookupMetrics {
  lookups: { inc(labels: { outcome: LookupOutcome }): void };
  lookupSeconds: { observe(v: number): void };
}

/** Pause between tries while a partition has no owner that answers (a rebalance, a restore). */
const RETRY_MS = 250;
/** One HTTP call's bound; the worker answers at once or after its own restore wait (5 s). */
const CALL_MS = 6000;
/** The bound of a lookup that does not wait (a write's tenant pre-check): an owner answers in ms. */
const NO_WAIT_MS = 1000;

export class OwnerLookup implements ConversationLookup {
  readonly #describe: DescribeGroup;
  readonly #partitions: () => Promise<number>;
  readonly #timeoutMs: number;
  readonly #token: string;
  readonly #metrics: LookupMetrics;
  readonly #logger: Logger;
  readonly #groupId: string;
  #owners = new Map<number, string>();
  #members = -1;
  #partitionCount: number | null = null;
  #refreshing: Promise<void> | null = null;
  readonly #onStop: () => Promise<void>;

  constructor(options: {
    describe: DescribeGroup;
    /** The partition count of chat.requests (asked once, again after a failure). */
    partitions: () => Promise<number>;
    groupId: string;
    timeoutMs: number;
    token: string;
    metrics: LookupMetrics;
    logger: Logger;
    onStop?: () => Promise<void>;
  }) {
    this.#describe = options.describe;
    this.#partitions = options.partitions;
    this.#groupId = options.groupId;
    this.#timeoutMs = options.timeoutMs;
    this.#token = options.token;
    this.#metrics = options.metrics;
    this.#logger = options.logger.child({ component: "owners" });
    this.#onStop = options.onStop ?? (async () => {});
  }

  get cachedOwners(): number {
    return this.#owners.size;
  }

  async get(conversationId: string, options: { wait?: boolean } = {}): Promise<ConversationState | undefined> {
    const started = performance.now();
    const deadline = started + (options.wait === false ? Math.min(this.#timeoutMs, NO_WAIT_MS) : this.#timeoutMs);
    let outcome: LookupOutcome = "unavailable";
    try {
      const state = await this.#get(conversationId, deadline, options.wait !== false);
      outcome = state ? "found" : "not_found";
      return state;
    } finally {
      this.#metrics.lookups.inc({ outcome });
      this.#metrics.lookupSeconds.observe((performance.now() - started) / 1000);
    }
  }

  async #get(conversationId: string, deadline: number, wait: boolean): Promise<ConversationState | undefined> {
    let problem: string;
    let refreshed = false;
    for (;;) {
      let partition: number | null = null;
      try {
        partition = conversationPartition(conversationId, await this.#partitionCountNow());
        let owner = this.#owners.get(partition);
        if (owner === undefined && !refreshed) {
          await this.#refresh();
          refreshed = true;
          owner = this.#owners.get(partition);
        }
        if (owner === undefined) {
          problem =
            this.#members === 0
              ? `no worker is running (the worker group ${this.#groupId} has no members), so conversation reads cannot be answered; they work again once a worker runs`
              : `no worker owns partition ${partition} of chat.requests right now (the worker group ${this.#groupId} is rebalancing)`;
        } else {
          const answer = await this.#ask(owner, partition, conversationId, deadline);
          if (answer.kind === "state") return answer.state;
          if (answer.kind === "none") return undefined;
          problem = answer.problem;
          if (answer.kind === "moved") this.#owners.delete(partition);
        }
      } catch (err) {
        problem = `Kafka did not say who owns the conversation's partition (${(err as Error).message})`;
      }
      if (!wait || performance.now() + RETRY_MS >= deadline) {
        this.#logger.warn({ partition, problem }, "conversation read not answered");
        throw new LookupUnavailable(`${problem}; try again shortly`);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
      await this.#refresh().catch(() => {});
      refreshed = true;
    }
  }

  async #partitionCountNow(): Promise<number> {
    this.#partitionCount ??= await this.#partitions();
    return this.#partitionCount;
  }

  async #ask(
    owner: string,
    partition: number,
    conversationId: string,
    deadline: number,
  ): Promise<{ kind: "state"; state: ConversationState } | { kind: "none" } | { kind: "moved" | "failed"; problem: string }> {
    const url = `${owner}/internal/v1/partitions/${partition}/conversations/${encodeURIComponent(conversationId)}`;
    let res: Response;
    try {
      res = await fetch(url, {
        headers: this.#token === "" ? {} : { authorization: `Bearer ${this.#token}` },
        signal: AbortSignal.timeout(Math.max(1, Math.ceil(Math.min(CALL_MS, deadline - performance.now())))),
      });
    } catch (err) {
      // The worker is gone (stopped, its pod replaced) or slow: ask the group again.
      this.#owners.delete(partition);
      return { kind: "moved", problem: `the owner of partition ${partition} (${owner}) did not answer (${(err as Error).message})` };
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    // Only the owner's own "not found" counts, not a 404 of something else at that address.
    if (res.status === 404 && (body as { found?: unknown } | undefined)?.found === false) return { kind: "none" };
    if (res.status === 421) return { kind: "moved", problem: `partition ${partition} is moving to another worker` };
    if (res.status === 200) {
      const parsed = conversationStateSchema.safeParse((body as { state?: unknown } | undefined)?.state);
      if (parsed.success) return { kind: "state", state: parsed.data };
      this.#logger.error({ partition, owner }, "the owner answered with a state that does not match the schema");
      return { kind: "failed", problem: `the owner of partition ${partition} answered with an unreadable state` };
    }
    if (res.status === 401) this.#logger.error({ owner }, "a worker refused the internal token: set the same KAFKA_LLM_INTERNAL_TOKEN on gateways and workers");
    return { kind: "failed", problem: `the owner of partition ${partition} answered ${res.status} (restoring its memory)` };
  }

  /** Reads the group's assignment again; concurrent callers share one description. */
  #refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const group = await this.#describe();
        this.#members = group?.members.length ?? 0;
        // A partition count read before the topic grew, or while Kafka was away, is read again.
        this.#partitionCount = null;
        this.#owners = ownerMap(group?.members ?? []);
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  stop(): Promise<void> {
    return this.#onStop();
  }
}

/** librdkafka's describe of one group: its members' client ids and assigned partitions of `topic`. */
interface NativeAdmin {
  describeGroups(
    groupIds: string[],
    options: { timeout?: number },
    cb: (
      err: Error | null,
      result: {
        groups: Array<{
          groupId: string;
          state: unknown;
          error?: Error;
          members: Array<{ clientId: string; assignment?: { topicPartitions?: Array<{ topic: string; partition: number }> } }>;
        }>;
      },
    ) => void,
  ): void;
  disconnect(): void;
}

const GROUP_STATES = ["Unknown", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty"];

/** The worker group's description through librdkafka's admin client; `close` disconnects it. */
export function nativeGroupDescriber(kafka: KafkaConfig, groupId: string, topic: string, timeoutMs = 3000): { describe: DescribeGroup; close(): void } {
  const require = createRequire(import.meta.url);
  const { AdminClient } = require("@confluentinc/kafka-javascript") as { AdminClient: { create(conf: Record<string, unknown>): NativeAdmin } };
  const admin = AdminClient.create({ ...librdkafkaConnection(kafka), "client.id": `${kafka.clientId}-gateway-owners`, "log.connection.close": false });
  const describe: DescribeGroup = () =>
    new Promise((resolve, reject) => {
      admin.describeGroups([groupId], { timeout: timeoutMs }, (err, result) => {
        if (err) return reject(err);
        const group = result.groups.find((g) => g.groupId === groupId);
        // A group that does not exist (never joined, or deleted) describes as Dead with no members.
        if (!group || group.members.length === 0) return resolve(null);
        const state = typeof group.state === "number" ? (GROUP_STATES[group.state] ?? String(group.state)) : String(group.state);
        resolve({
          state,
          members: group.members.map((m) => ({
            clientId: m.clientId,
            partitions: (m.assignment?.topicPartitions ?? []).filter((tp) => tp.topic === topic).map((tp) => tp.partition),
          })),
        });
      });
    });
  return { describe, close: () => admin.disconnect() };
}
