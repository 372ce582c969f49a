/**
 * Conversation reads without a copy of chat.memory (Kafka Streams' interactive queries):
 * the worker that owns partition p of chat.requests holds partition p of chat.memory, so
 * the gateway asks that worker. The partition comes from the partitioner every producer
 * uses (the Java client's murmur2, platform/kafka/partitioner.ts); the owner from the worker
 * group's description (platform/kafka/group-describer.ts: ConsumerGroupDescribe for KIP-848
 * groups, DescribeGroups for classic ones), whose members advertise their query address at
 * the end of their client.id (`<client id>@http://HOST:PORT`, worker/query-server.ts).
 *
 * What the gateway keeps is one address per partition (bounded by the partition count),
 * refreshed when a partition has no known owner or the one asked says it is no longer the
 * owner (421). Nothing grows with the number of conversations; every answer about a
 * conversation is the owner's answer of the moment, signed by it with the internal token
 * (platform/internal-auth.ts): reads carry no reusable credential, and an answer that is
 * not signed is not used, whoever advertised the address.
 *
 * During a rebalance (no owner yet, or the new owner still restoring) a read waits up to
 * CONVERSATION_LOOKUP_TIMEOUT_MS, then answers 503 with what was missing.
 */
import { withDeadline } from "./deadline.js";
import { conversationStateSchema, type ConversationState } from "../../contracts/records/memory.js";
import { conversationKey, type ConversationRef } from "../../contracts/conversation-key.js";
import { ANSWER_SIGNATURE_HEADER, isLoopbackHost, signRead, verifyAnswer, type InternalKeys } from "../../platform/internal-auth.js";
import type { GroupDescriber } from "../../platform/kafka/group-describer.js";
import { keyPartition } from "../../platform/kafka/partitioner.js";
import type { Logger } from "../../platform/logger.js";

/** The partition of chat.requests (and chat.memory) a conversation key lands on: the publisher's partitioner. */
export const conversationPartition: (key: string, partitions: number) => number = keyPartition;

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
   * The tenant's conversation's state from its partition's owner; undefined when the owner
   * has none. Throws LookupUnavailable when no owner answered within the bound. `wait:
   * false` tries the owner known now (after one refresh) and gives up at once otherwise.
   */
  get(conversation: ConversationRef, options?: { wait?: boolean }): Promise<ConversationState | undefined>;
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
/** The most one description of the worker group may take. */
const DESCRIBE_MS = 5000;
/** The bound of a lookup that does not wait (a write's tenant pre-check): an owner answers in ms. */
const NO_WAIT_MS = 1000;

export class OwnerLookup implements ConversationLookup {
  readonly #describe: DescribeGroup;
  readonly #partitions: () => Promise<number>;
  readonly #timeoutMs: number;
  readonly #keys: InternalKeys;
  readonly #metrics: LookupMetrics;
  readonly #logger: Logger;
  readonly #groupId: string;
  #owners = new Map<number, string>();
  #members = -1;
  #partitionCount: number | null = null;
  #refreshing: Promise<void> | null = null;
  #trustLoggedAt = -Infinity;
  readonly #onStop: () => Promise<void>;

  constructor(options: {
    describe: DescribeGroup;
    /** The partition count of chat.requests (asked once, again after a failure). */
    partitions: () => Promise<number>;
    groupId: string;
    timeoutMs: number;
    /** The shared token reads are signed with (none: only owners on loopback are asked). */
    keys: InternalKeys;
    metrics: LookupMetrics;
    logger: Logger;
    onStop?: () => Promise<void>;
  }) {
    this.#describe = options.describe;
    this.#partitions = options.partitions;
    this.#groupId = options.groupId;
    this.#timeoutMs = options.timeoutMs;
    this.#keys = options.keys;
    this.#metrics = options.metrics;
    this.#logger = options.logger.child({ component: "owners" });
    this.#onStop = options.onStop ?? (async () => {});
  }

  get cachedOwners(): number {
    return this.#owners.size;
  }

  async get(conversation: ConversationRef, options: { wait?: boolean } = {}): Promise<ConversationState | undefined> {
    const started = performance.now();
    const deadline = started + (options.wait === false ? Math.min(this.#timeoutMs, NO_WAIT_MS) : this.#timeoutMs);
    let outcome: LookupOutcome = "unavailable";
    try {
      const state = await this.#get(conversation, deadline, options.wait !== false);
      outcome = state ? "found" : "not_found";
      return state;
    } finally {
      this.#metrics.lookups.inc({ outcome });
      this.#metrics.lookupSeconds.observe((performance.now() - started) / 1000);
    }
  }

  async #get(conversation: ConversationRef, deadline: number, wait: boolean): Promise<ConversationState | undefined> {
    let problem: string;
    let refreshed = false;
    for (;;) {
      let partition: number | null = null;
      try {
        partition = conversationPartition(conversationKey(conversation), await this.#partitionCountNow(deadline));
        let owner = this.#owners.get(partition);
        if (owner === undefined && !refreshed) {
          await this.#refreshWithin(deadline);
          refreshed = true;
          owner = this.#owners.get(partition);
        }
        if (owner === undefined) {
          problem =
            this.#members === 0
              ? `no worker is running (the worker group ${this.#groupId} has no members), so conversation reads cannot be answered; they work again once a worker runs`
              : `no worker owns partition ${partition} of chat.requests right now (the worker group ${this.#groupId} is rebalancing)`;
        } else {
          const answer = await this.#ask(owner, partition, conversation, deadline);
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
      await this.#refreshWithin(deadline).catch(() => {});
      refreshed = true;
    }
  }

  async #partitionCountNow(deadline: number): Promise<number> {
    this.#partitionCount ??= await withDeadline(this.#partitions(), Math.max(1, Math.ceil(deadline - performance.now())), "chat.requests partitions");
    return this.#partitionCount;
  }

  async #ask(
    owner: string,
    partition: number,
    conversation: ConversationRef,
    deadline: number,
  ): Promise<{ kind: "state"; state: ConversationState } | { kind: "none" } | { kind: "moved" | "failed"; problem: string }> {
    const url = new URL(
      `${owner}/internal/v1/partitions/${partition}/tenants/${encodeURIComponent(conversation.tenant)}/conversations/${encodeURIComponent(conversation.conversation_id)}`,
    );
    // Without a token, reads go only to owners on this machine (the workers refuse to listen
    // elsewhere without one); with one, the read is signed for this address alone.
    if (!this.#keys.enabled && !isLoopbackHost(url.hostname)) {
      this.#trustProblem({ owner }, "no internal token is set, so a conversation read is not sent to a worker beyond loopback: set KAFKA_LLM_INTERNAL_TOKEN");
      return { kind: "failed", problem: `the owner of partition ${partition} is not on this machine and no internal token is set (KAFKA_LLM_INTERNAL_TOKEN)` };
    }
    const signed = signRead(this.#keys, "GET", url);
    let res: Response;
    let body: Buffer;
    try {
      res = await fetch(url, {
        headers: signed ? { authorization: signed.authorization } : {},
        signal: AbortSignal.timeout(Math.max(1, Math.ceil(Math.min(CALL_MS, deadline - performance.now())))),
      });
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      // The worker is gone (stopped, its pod replaced) or slow: ask the group again.
      this.#owners.delete(partition);
      return { kind: "moved", problem: `the owner of partition ${partition} (${owner}) did not answer (${(err as Error).message})` };
    }
    // Nothing unsigned is believed, not even "not found" or "moved": a member of the group
    // that is not a worker could say anything.
    if (signed && !verifyAnswer(this.#keys, signed.nonce, res.status, body, res.headers.get(ANSWER_SIGNATURE_HEADER))) {
      this.#owners.delete(partition);
      if (res.status === 401)
        this.#trustProblem({ owner }, "a worker refused the signed read: set the same KAFKA_LLM_INTERNAL_TOKEN (or token file) on gateways and workers");
      else this.#trustProblem({ owner, status: res.status }, "an answer to a conversation read is not signed with the internal token: ignored");
      return { kind: "failed", problem: `the owner of partition ${partition} (${owner}) did not answer as a worker` };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      parsed = undefined;
    }
    // Only the owner's own "not found" counts, not a 404 of something else at that address.
    if (res.status === 404 && (parsed as { found?: unknown } | undefined)?.found === false) return { kind: "none" };
    if (res.status === 421) return { kind: "moved", problem: `partition ${partition} is moving to another worker` };
    if (res.status === 200) {
      const state = conversationStateSchema.safeParse((parsed as { state?: unknown } | undefined)?.state);
      if (state.success && conversationKey(state.data) === conversationKey(conversation)) return { kind: "state", state: state.data };
      this.#logger.error({ partition, owner }, "the owner answered with a state that does not match the schema or the conversation asked for");
      return { kind: "failed", problem: `the owner of partition ${partition} answered with an unreadable state` };
    }
    return { kind: "failed", problem: `the owner of partition ${partition} answered ${res.status} (restoring its memory)` };
  }

  /**
   * Logs why an owner's answer could not be trusted, at most every 10 s: a read retries
   * every 250 ms until its deadline, and a misconfiguration or a rogue address would
   * otherwise fill the log.
   */
  #trustProblem(fields: Record<string, unknown>, message: string): void {
    const now = performance.now();
    if (now - this.#trustLoggedAt < 10_000) return;
    this.#trustLoggedAt = now;
    this.#logger.error(fields, message);
  }

  /** #refresh, given up on (it goes on, shared) once the read's deadline passes. */
  #refreshWithin(deadline: number): Promise<void> {
    return withDeadline(this.#refresh(), Math.max(1, Math.ceil(deadline - performance.now())), "the worker group's description");
  }

  /** Reads the group's assignment again; concurrent callers share one description. */
  #refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        // Bounded, so a description Kafka never answers cannot hold every later refresh.
        const group = await withDeadline(this.#describe(), DESCRIBE_MS, "the worker group's description");
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

/** The worker group's description, from the gateway's group describer. */
export function describeWorkers(describer: GroupDescriber, groupId: string, topic: string): DescribeGroup {
  return async () => {
    const group = await describer.describe(groupId, topic, DESCRIBE_MS);
    return group && { state: String(group.state), members: group.members };
  };
}
