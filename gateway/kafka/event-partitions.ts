/**
 * Which chat.events partitions this gateway replica reads, so that events reach the
 * replica that needs them and no replica reads the whole fleet's:
 *
 * - Owned: the replicas form one consumer group on chat.events (GATEWAY_EVENTS_GROUP_ID,
 *   KIP-848), which shares the partitions out. A request this replica accepts names one of
 *   its partitions (`events_partition`, chosen by conversation), and the worker sends the
 *   request's events there. A partition gained is read from the look-back (the first record
 *   newer than now - REQUEST_STATE_TTL_MS), so the requests of a replica that left are
 *   still known here (a client resumes with Last-Event-ID).
 * - Followed: a client here following a request whose partition this replica does not
 *   own (it resumed after its replica died, retried elsewhere with an Idempotency-Key, or
 *   the request named no partition) makes this replica read that partition too, from the
 *   look-back, for as long as someone here follows one of its requests, and a short linger.
 *
 * The group is for the assignment only: its member's partitions stay paused, and one
 * consumer without a group (events-reader.ts) reads every partition that is owned or
 * followed, each once, so a partition both owned and followed is not read twice.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import type { ChatEvent } from "../../contracts/records/events.js";
import { GroupConsumer, type GroupProtocol } from "../../platform/kafka/group-consumer.js";
import { conversationKey } from "../../contracts/conversation-key.js";
import { privateGroup } from "../../contracts/kafka-acls.js";
import type { KafkaAdmin } from "../../platform/kafka/admin.js";
import type { AssignedReader } from "../../platform/kafka/assigned-reader.js";
import { keyPartition } from "../../platform/kafka/partitioner.js";
import type { Logger } from "../../platform/logger.js";
import type { EventHub, RequestSnapshot } from "../event-hub.js";
import { eventsReader } from "./events-reader.js";

/** How long a followed partition is still read after its last follower left (another often follows soon, e.g. status polls). */
const LINGER_MS = 10_000;
/** The longest a status or stream waits for a partition it starts reading to be read to its end. */
const PREPARE_TIMEOUT_MS = 10_000;
/** The longest the look-back of the partitions first given to this replica may take before it serves anyway. */
const CATCH_UP_TIMEOUT_MS = 60_000;

export interface EventPartitionsOptions {
  readonly kafka: KafkaConfig;
  readonly admin: KafkaAdmin;
  readonly topic: string;
  readonly hub: EventHub;
  readonly groupId: string;
  readonly protocol: GroupProtocol;
  readonly lookBackMs: number;
  readonly logger: Logger;
  /** Each record read from chat.events (the events_read counter). */
  onRecord?(): void;
  /** The events reader's consumer was replaced because it stopped fetching. */
  onReaderRestart?(): void;
  /** Each event the hub took as new. */
  onEvent?(event: ChatEvent, headers: Readonly<Record<string, Buffer | string>>): void;
}

/** Kafka's default partitioner (murmur2 of the conversation key), as the workers' producer uses when a request names no partition. */
export function defaultEventsPartition(key: string, partitions: number): number {
  return keyPartition(key, partitions);
}

/** See EventPartitions.pick: `owned` sorted, all below `partitions`. */
export function pickEventsPartition(key: string, owned: readonly number[], partitions: number): number | undefined {
  if (owned.length === 0) return undefined;
  const byKey = defaultEventsPartition(key, partitions);
  if (owned.includes(byKey)) return byKey;
  return owned[defaultEventsPartition(key, owned.length)];
}

export class EventPartitions {
  readonly #o: EventPartitionsOptions;
  readonly #log: Logger;
  readonly #reader: AssignedReader;
  readonly #group: GroupConsumer;
  readonly #owned = new Set<number>();
  /** Partition → claims on it by followers here (listeners and status reads). */
  readonly #followers = new Map<number, number>();
  readonly #lingers = new Map<number, NodeJS.Timeout>();
  /** Partitions whose look-back start is being looked up. */
  readonly #adding = new Map<number, Promise<void>>();
  /** Owned partitions still reading their look-back (readiness waits for them). */
  readonly #catchingUp = new Set<number>();
  #partitionCount = 0;
  #startedAt = 0;
  #failure: string | null = null;
  #stopping = false;

  constructor(options: EventPartitionsOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "event-partitions" });
    this.#reader = eventsReader({
      kafka: options.kafka,
      topic: options.topic,
      groupId: privateGroup(options.groupId, "offsets"),
      logger: options.logger,
      onRecord: () => options.onRecord?.(),
      onRestart: () => options.onReaderRestart?.(),
      ends: async () => new Map((await options.admin.offsets(options.topic, 3000)).map((o) => [o.partition, o.high])),
      onEvent: (event, partition, headers) => {
        if (options.hub.accept(event, partition)) options.onEvent?.(event, headers);
      },
    });
    this.#group = new GroupConsumer({
      kafka: options.kafka,
      groupId: options.groupId,
      topic: options.topic,
      protocol: options.protocol,
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 1000,
      rebalanceTimeoutMs: 60_000,
      logger: options.logger,
    });
  }

  async start(): Promise<void> {
    this.#startedAt = Date.now();
    this.#partitionCount = (await this.#o.admin.partitions([this.#o.topic])).get(this.#o.topic)?.length ?? 0;
    if (this.#partitionCount === 0) throw new Error(`topic ${this.#o.topic} has no partitions (does it exist?)`);
    await this.#reader.start();
    await this.#group.start({
      onAssigned: (partitions) => this.#assigned(partitions),
      onRevoked: async (partitions) => this.#revoked(partitions),
      // The member's partitions are paused at once; anything fetched before is the reader's to read.
      onRecord: () => {},
      onFatal: (err) => {
        this.#failure = `the chat.events group consumer stopped: ${err.message}`;
      },
    });
  }

  /**
   * The partition for a new request's events: one this replica owns, undefined while it
   * owns none. Chosen by conversation key, so a conversation's events stay in order on one
   * partition while the ownership holds, spread over the owned partitions: its key's own
   * partition when this replica owns that one (a lone replica owns all, and the layout is
   * the default partitioner's), else one of the owned picked by the same hash.
   */
  pick(key: string): number | undefined {
    return pickEventsPartition(key, this.owned, this.#partitionCount);
  }

  /** The partition a request's events use: the one read or asked for, else the default partitioner's. */
  partitionOf(snapshot: Pick<RequestSnapshot, "conversationId" | "tenant" | "partition">): number {
    const p = snapshot.partition;
    if (p !== null && p < this.#partitionCount) return p;
    return defaultEventsPartition(conversationKey({ tenant: snapshot.tenant, conversation_id: snapshot.conversationId }), this.#partitionCount);
  }

  /** The hub's follow hook: reads the request's partition while the listener follows it. */
  follow(snapshot: RequestSnapshot): () => void {
    return this.#claim(this.partitionOf(snapshot));
  }

  /**
   * Makes sure the request's partition has been read up to its current end before a status
   * or a stream is answered from the hub (a partition this replica only starts reading now).
   */
  async prepare(snapshot: RequestSnapshot): Promise<void> {
    const p = this.partitionOf(snapshot);
    if (this.#owned.has(p) && !this.#catchingUp.has(p)) return;
    const release = this.#claim(p);
    const deadline = Date.now() + PREPARE_TIMEOUT_MS;
    const left = () => Math.max(1, deadline - Date.now());
    try {
      // The look-up of where to start (retried while Kafka is away) is bounded too.
      const adding = this.#adding.get(p);
      if (adding) await Promise.race([adding, new Promise((resolve) => setTimeout(resolve, left()).unref())]);
      const end = await this.#reader.end(p, left());
      if (!(await this.#reader.waitFor(p, end, left())))
        this.#log.warn({ partition: p }, "chat.events partition not read to its end in time; answering from what was read");
    } catch (err) {
      this.#log.warn({ err, partition: p }, "could not read a chat.events partition for a follower; answering from what was read");
    } finally {
      release();
    }
  }

  /** True once the group has given this replica its partitions and their look-back is read (or took too long). */
  caughtUp(): boolean {
    if (Date.now() - this.#startedAt > CATCH_UP_TIMEOUT_MS) return true;
    return this.#group.joined && this.#catchingUp.size === 0;
  }

  failure(): string | null {
    return this.#failure;
  }

  /** Partitions read, by role. */
  counts(): { owned: number; followed: number } {
    const read = this.#reader.partitions;
    return { owned: read.filter((p) => this.#owned.has(p)).length, followed: read.filter((p) => !this.#owned.has(p)).length };
  }

  /** Partitions the group gave this replica. */
  get owned(): number[] {
    return [...this.#owned].sort((a, b) => a - b);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#lingers.values()) clearTimeout(timer);
    await Promise.all([this.#group.close(), this.#reader.stop()]);
  }

  #assigned(partitions: number[]): void {
    for (const p of partitions) {
      this.#group.pause(p);
      this.#owned.add(p);
      this.#catchingUp.add(p);
      this.#clearLinger(p);
      void this.#read(p).then(async () => {
        try {
          const end = await this.#reader.end(p, CATCH_UP_TIMEOUT_MS);
          await this.#reader.waitFor(p, end, CATCH_UP_TIMEOUT_MS);
        } catch (err) {
          this.#log.warn({ err, partition: p }, "could not tell where a chat.events partition ends");
        }
        this.#catchingUp.delete(p);
      });
    }
    this.#log.info({ partitions, owned: this.owned }, "gained chat.events partitions");
  }

  #revoked(partitions: number[]): void {
    for (const p of partitions) {
      this.#owned.delete(p);
      this.#catchingUp.delete(p);
      // Its owner now reads it; this replica goes on only for its followers here.
      if (!this.#followers.has(p)) {
        this.#clearLinger(p);
        this.#reader.remove(p);
      }
    }
    this.#log.info({ partitions, owned: this.owned }, "gave up chat.events partitions");
  }

  #claim(p: number): () => void {
    this.#followers.set(p, (this.#followers.get(p) ?? 0) + 1);
    this.#clearLinger(p);
    void this.#read(p);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#followers.get(p) ?? 1) - 1;
      if (left > 0) this.#followers.set(p, left);
      else this.#followers.delete(p);
      this.#release(p);
    };
  }

  /** Stops reading a partition no one here needs any more, after the linger. */
  #release(p: number): void {
    if (this.#owned.has(p) || this.#followers.has(p) || this.#lingers.has(p)) return;
    const timer = setTimeout(() => {
      this.#lingers.delete(p);
      if (!this.#owned.has(p) && !this.#followers.has(p)) this.#reader.remove(p);
    }, LINGER_MS);
    timer.unref();
    this.#lingers.set(p, timer);
  }

  #clearLinger(p: number): void {
    const timer = this.#lingers.get(p);
    if (timer) clearTimeout(timer);
    this.#lingers.delete(p);
  }

  /** Starts reading a partition from the look-back, unless it is read already. */
  #read(p: number): Promise<void> {
    if (this.#reader.reads(p) || this.#stopping) return Promise.resolve();
    const adding = this.#adding.get(p);
    if (adding) return adding;
    const started = (async () => {
      try {
        const since = Date.now() - this.#o.lookBackMs;
        const offset = (await this.#o.admin.offsetsAt(this.#o.topic, since)).get(p);
        if (offset === undefined) throw new Error(`no offset for partition ${p} of ${this.#o.topic}`);
        if (this.#owned.has(p) || this.#followers.has(p)) this.#reader.add(p, offset);
      } catch (err) {
        this.#log.warn({ err, partition: p }, "could not find where to read a chat.events partition from; retrying");
        setTimeout(() => {
          if (this.#owned.has(p) || this.#followers.has(p)) void this.#read(p);
        }, 1000).unref();
      } finally {
        this.#adding.delete(p);
      }
    })();
    this.#adding.set(p, started);
    return started;
  }
}
