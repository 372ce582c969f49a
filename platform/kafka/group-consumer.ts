/**
 * The worker group's consumer on chat.requests: librdkafka (through
 * @confluentinc/kafka-javascript's native binding), which speaks Kafka's consumer rebalance
 * protocol (KIP-848, `group.protocol=consumer`): at a join or a leave only the partitions
 * that move are revoked, and the others never stop. On a cluster without it the classic
 * protocol with the cooperative-sticky assignor does the same in two rounds.
 *
 * Why this client: a revocation is acknowledged only when the application calls
 * incrementalUnassign, which this wrapper does once the worker's `onRevoked` has settled,
 * so a running turn can finish and commit before its partition moves, which neither
 * kafkajs nor @platformatic/kafka allows (docs/benchmarks.md, "Which Kafka client").
 *
 * The low-level API is used (not the KafkaJS-compatible layer), because that layer stops
 * fetching every partition while a rebalance callback runs, and caches records ahead of
 * the application in ways that hold one partition's records back behind another's.
 *
 * A partition's fetch can stop after a broker restart and stay stopped while the member
 * keeps its assignment and heartbeats (librdkafka#5153, the stall the assigned readers
 * guard against too; seen once in CI: a request waited two minutes behind a worker that
 * logged nothing). So a watchdog looks at assigned partitions that are not paused and
 * delivered nothing for a while: when the broker holds records past the consumer's
 * position, it resumes the partition and seeks it to that position, which restarts its fetch
 * without leaving the group. Nothing delivered is fetched twice: the position is after the last
 * record handed to the worker.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import type { Logger } from "../logger.js";
import { consumeWaiting } from "./assigned-reader.js";
import { librdkafkaConnection, SEVERITY } from "./connection.js";
import { call, ErrorCode, rdkafka, type NativeConsumer, type NativeError, type NativeMessage } from "./native.js";

export type GroupProtocol = "consumer" | "classic";

export interface GroupRecord {
  readonly topic: string;
  readonly partition: number;
  /** The record's offset, as a decimal string. */
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, Buffer | string | undefined>>;
  /** Records after this one in its partition, as far as the consumer knows (the lag). */
  readonly lag: number;
}

export interface GroupHandlers {
  /** Partitions added to this member. */
  onAssigned(partitions: number[]): void;
  /**
   * Partitions taken from this member. They are released (the revocation acknowledged)
   * once the returned promise settles; `lost`: they already belong to another member
   * (this one was fenced or timed out), so nothing of theirs may be committed.
   */
  onRevoked(partitions: number[], lost: boolean): Promise<void>;
  onRecord(record: GroupRecord): void;
  /** The consumer cannot go on (a fatal client error); the process should exit. */
  onFatal(error: Error): void;
}

export interface GroupConsumerOptions {
  readonly kafka: KafkaConfig;
  readonly groupId: string;
  readonly topic: string;
  readonly protocol: GroupProtocol;
  /** Classic protocol only: the broker takes these from its group.consumer.* settings otherwise. */
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /**
   * How long a revocation may take before the member is removed from the group
   * (max.poll.interval.ms, which librdkafka also sends as the rebalance timeout). Must be
   * above the drain bound.
   */
  readonly rebalanceTimeoutMs: number;
  /**
   * The member's client.id, when not the connection's KAFKA_CLIENT_ID: the worker appends
   * its query address (`@http://HOST:PORT`), which the group's description shows the gateways.
   */
  readonly clientId?: string;
  readonly logger: Logger;
  /** The fetch watchdog restarted a stalled partition's fetch (for a counter). */
  readonly onStall?: (partition: number) => void;
}

/** How long a member with no partitions talks to the coordinator before it counts as joined (ms). */
const EMPTY_MEMBER_JOINED_MS = 3000;
/** How often the fetch watchdog looks, and how long a partition with records waiting may deliver nothing before it counts as stalled (ms). */
const WATCH_MS = 2500;
const STALL_MS = 5000;
/** The bound on the watchdog's question to the broker (ms). */
const END_QUERY_MS = 2000;

/**
 * The partitions whose fetch stalled: assigned, not paused, quiet (nothing delivered) for
 * `stallMs`, with a known position that the log's end is past. Pure: the watchdog's rule.
 */
export function stalledPartitions(options: {
  readonly now: number;
  readonly stallMs: number;
  /** When each assigned partition last delivered a record, or was assigned (ms). */
  readonly progress: ReadonlyMap<number, number>;
  readonly paused: ReadonlySet<number>;
  /** The consumer's position (the next offset it hands out); absent or negative: not known yet. */
  readonly positions: ReadonlyMap<number, number | undefined>;
  /** The log's end per partition, as the broker said. */
  readonly ends: ReadonlyMap<number, number>;
}): number[] {
  const stalled: number[] = [];
  for (const [partition, at] of options.progress) {
    if (options.paused.has(partition) || options.now - at < options.stallMs) continue;
    const position = options.positions.get(partition);
    const end = options.ends.get(partition);
    if (position === undefined || position < 0 || end === undefined) continue;
    if (end > position) stalled.push(partition);
  }
  return stalled.sort((a, b) => a - b);
}
export class GroupConsumer {
  readonly protocol: GroupProtocol;
  readonly #options: GroupConsumerOptions;
  readonly #logger: Logger;
  #native: NativeConsumer | null = null;
  #handlers: GroupHandlers | null = null;
  #assigned = new Set<number>();
  #closing = false;
  #revoking: Promise<void> = Promise.resolve();
  #rebalanced = false;
  /** The last consume returned records: the next takes what else is fetched, without waiting. */
  #draining = false;
  /** Per assigned partition: when it last delivered a record or was assigned (the fetch watchdog's clock). */
  #progress = new Map<number, number>();
  /** Partitions the worker paused (flow control): quiet on purpose. */
  #paused = new Set<number>();
  #watchdog: NodeJS.Timeout | null = null;
  #watching = false;
  #polledAt = Date.now();

  constructor(options: GroupConsumerOptions) {
    this.#options = options;
    this.protocol = options.protocol;
    this.#logger = options.logger.child({ component: "group-consumer" });
  }

  /**
   * The native consumer, for a transactional producer: sendOffsetsToTransaction takes the
   * group's metadata (member id and epoch) from it, so the broker refuses the offsets, and
   * with them the transaction, of a member the group has replaced.
   */
  native(): NativeConsumer {
    if (!this.#native) throw new Error("the group consumer is not started");
    return this.#native;
  }

  /** Partitions this member holds now. */
  get assigned(): number[] {
    return [...this.#assigned].sort((a, b) => a - b);
  }

  /**
   * When the poll loop last got an answer from librdkafka (ms since the epoch). Each consume
   * waits at most CONSUME_WAIT_MS, so this stays within a fraction of a second of now unless
   * the loop is stuck: the worker's liveness reads it.
   */
  get polledAt(): number {
    return this.#polledAt;
  }

  /** True once the group has given this member partitions, or it has been a member with none for a few seconds. */
  get joined(): boolean {
    return this.#rebalanced;
  }

  /** Connects, subscribes and starts fetching; resolves once connected. */
  async start(handlers: GroupHandlers): Promise<void> {
    this.#handlers = handlers;
    const o = this.#options;
    const { KafkaConsumer } = rdkafka();
    const conf: Record<string, unknown> = {
      ...librdkafkaConnection(o.kafka, o.clientId),
      "group.id": o.groupId,
      "group.protocol": o.protocol,
      "enable.auto.commit": false,
      "enable.auto.offset.store": false,
      "auto.offset.reset": "earliest",
      "allow.auto.create.topics": false,
      "max.poll.interval.ms": o.rebalanceTimeoutMs,
      // A new request is on its way to a generation within ~50 ms of being produced, also
      // on a partition just resumed after its turn (librdkafka backs a partition's fetch
      // off by fetch.queue.backoff.ms, 1 s by default, which a resumed partition then waits).
      "fetch.wait.max.ms": 50,
      "fetch.queue.backoff.ms": 20,
      "fetch.error.backoff.ms": 100,
      event_cb: true,
      // A member given no partitions (more workers than partitions) gets no rebalance
      // callback at all: it counts as joined once librdkafka's statistics show it has been
      // talking to the group coordinator for a few seconds (its heartbeats say it is there).
      "statistics.interval.ms": 1000,
      rebalance_cb: (err: NativeError, assignment: Array<{ topic: string; partition: number }>) => this.#rebalance(err, assignment),
    };
    if (o.protocol === "classic") {
      conf["partition.assignment.strategy"] = "cooperative-sticky";
      conf["session.timeout.ms"] = o.sessionTimeoutMs;
      conf["heartbeat.interval.ms"] = o.heartbeatIntervalMs;
    }
    const native = new KafkaConsumer(conf);
    this.#native = native;
    native.on("event.log", (log: { severity: number; fac: string; message: string }) => {
      this.#logger[SEVERITY[log.severity] ?? "debug"]({ fac: log.fac }, log.message);
    });
    native.on("event.stats", (event: { message: string }) => {
      if (this.#rebalanced) return;
      try {
        const cgrp = (JSON.parse(event.message) as { cgrp?: { state?: string; stateage?: number } }).cgrp;
        if (cgrp?.state === "up" && (cgrp.stateage ?? 0) >= EMPTY_MEMBER_JOINED_MS) this.#rebalanced = true;
      } catch {
        // not the statistics we know: wait for an assignment instead
      }
    });
    native.on("event.error", (err: NativeError) => {
      if (err.isFatal) {
        this.#logger.fatal({ err }, "the request consumer hit a fatal error");
        handlers.onFatal(err);
        return;
      }
      // Transient (a broker away, a timeout): librdkafka reconnects and retries by itself.
      this.#logger.warn({ err: { message: err.message, code: err.code } }, "request consumer error; retrying");
    });
    await call((cb) => native.connect({ timeout: 30_000 }, cb));
    // Each consume waits for one request, or takes what is fetched already (consumeWaiting):
    // a lone request reaches its turn as soon as it is fetched.
    native.setDefaultIsTimeoutOnlyForFirstMessage(false);
    native.subscribe([o.topic]);
    this.#poll();
    this.#watchdog = setInterval(() => void this.#watch(), WATCH_MS);
    this.#watchdog.unref();
  }

  pause(partition: number): void {
    if (!this.#assigned.has(partition)) return;
    this.#paused.add(partition);
    this.#safely("pause", () => this.#native?.pause([{ topic: this.#options.topic, partition }]));
  }

  resume(partition: number): void {
    if (!this.#assigned.has(partition) || this.#closing) return;
    this.#paused.delete(partition);
    this.#progress.set(partition, Date.now());
    this.#safely("resume", () => this.#native?.resume([{ topic: this.#options.topic, partition }]));
  }

  /** Seeks the partitions whose fetch stalled (stalledPartitions) to their position, which restarts their fetch. */
  async #watch(): Promise<void> {
    const native = this.#native;
    if (!native || this.#closing || this.#watching) return;
    const now = Date.now();
    const topic = this.#options.topic;
    const quiet = [...this.#progress].filter(([p, at]) => now - at >= STALL_MS && !this.#paused.has(p)).map(([p]) => p);
    if (quiet.length === 0) return;
    this.#watching = true;
    try {
      const positions = new Map<number, number | undefined>();
      const ends = new Map<number, number>();
      for (const partition of quiet) {
        try {
          positions.set(partition, native.position([{ topic, partition }])[0]?.offset);
          const { highOffset } = await call<{ lowOffset: number; highOffset: number }>((cb) =>
            native.queryWatermarkOffsets(topic, partition, END_QUERY_MS, cb),
          );
          ends.set(partition, highOffset);
        } catch {
          // Kafka cannot say where it ends (it is away): the consumer carries on by itself.
        }
      }
      if (this.#native !== native || this.#closing) return;
      const stalled = stalledPartitions({ now, stallMs: STALL_MS, progress: this.#progress, paused: this.#paused, positions, ends });
      // A quiet partition found fetching (nothing waits past its position) is looked at again
      // a STALL_MS later: an idle partition costs one ListOffsets per STALL_MS, not per look.
      for (const partition of quiet)
        if (ends.has(partition) && !stalled.includes(partition) && this.#progress.has(partition)) this.#progress.set(partition, Date.now());
      for (const partition of stalled) {
        const offset = positions.get(partition)!;
        this.#logger.warn(
          { partition, offset, end: ends.get(partition) },
          "the request consumer stopped fetching a partition (records wait past its position); seeking to restart the fetch",
        );
        this.#progress.set(partition, Date.now());
        this.#options.onStall?.(partition);
        // librdkafka pauses a member's partitions while it rejoins; one left paused is resumed
        // (the worker has not paused it), and the seek restarts a fetch stuck in any other state.
        this.#safely("resume", () => native.resume([{ topic, partition }]));
        native.seek({ topic, partition, offset }, 0, (err) => {
          if (err)
            this.#logger.warn({ err: { message: err.message, code: err.code }, partition }, "could not seek a stalled partition; the watchdog tries again");
        });
      }
    } finally {
      this.#watching = false;
    }
  }

  /** librdkafka refuses some calls while the member is between states (e.g. leaving); never fatal here. */
  #safely(what: string, call: () => void): void {
    try {
      call();
    } catch (err) {
      this.#logger.debug({ err, what }, "request consumer call refused in its current state");
    }
  }

  /** Commits `nextOffset` (the offset after the last record done) for a partition this member holds. */
  commit(partition: number, nextOffset: string): Promise<void> {
    const native = this.#native;
    if (!native) return Promise.reject(new Error("the request consumer is not started"));
    return new Promise((resolve, reject) => {
      native.commitCb([{ topic: this.#options.topic, partition, offset: Number(nextOffset) }], (err) => {
        if (err && err.code !== ErrorCode.NO_OFFSET) reject(err);
        else resolve();
      });
    });
  }

  /** Leaves the group (after the caller has drained its partitions) and disconnects. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    const native = this.#native;
    if (!native) return;
    await this.#revoking;
    await new Promise<void>((resolve) => {
      native.disconnect((err) => {
        if (err) this.#logger.warn({ err }, "request consumer disconnect failed");
        resolve();
      });
    });
    this.#native = null;
  }

  #poll(): void {
    const native = this.#native;
    if (!native || this.#closing) return;
    consumeWaiting(native, this.#draining, 64, (err, messages) => {
      this.#polledAt = Date.now();
      if (err && err.code !== ErrorCode.TIMED_OUT) this.#logger.warn({ err: { message: err.message, code: err.code } }, "consume failed; retrying");
      this.#draining = (messages?.length ?? 0) > 0;
      for (const m of messages ?? []) this.#deliver(m);
      // setImmediate: let the event loop run turns between polls, however busy the topic.
      setImmediate(() => this.#poll());
    });
  }

  #deliver(m: NativeMessage): void {
    if (!this.#assigned.has(m.partition) || this.#closing) return;
    this.#progress.set(m.partition, Date.now());
    let high = -1;
    try {
      high = this.#native!.getWatermarkOffsets(m.topic, m.partition).highOffset;
    } catch {
      // watermarks not known yet
    }
    const headers: Record<string, Buffer | string> = {};
    for (const h of m.headers ?? []) Object.assign(headers, h);
    this.#handlers!.onRecord({
      topic: m.topic,
      partition: m.partition,
      offset: String(m.offset),
      key: m.key ?? null,
      value: m.value,
      headers,
      lag: high >= 0 ? Math.max(0, high - m.offset - 1) : 0,
    });
  }

  #rebalance(err: NativeError, assignment: Array<{ topic: string; partition: number }>): void {
    try {
      this.#onRebalance(err, assignment);
    } catch (e) {
      // A rebalance event while the consumer disconnects (shutdown) refuses (un)assign calls.
      if (!this.#closing) this.#logger.error({ err: e }, "could not apply a rebalance event");
    }
  }

  #onRebalance(err: NativeError, assignment: Array<{ topic: string; partition: number }>): void {
    const native = this.#native;
    if (!native) return;
    const incremental = native.rebalanceProtocol() !== "EAGER";
    const partitions = assignment.map((a) => a.partition);
    if (err.code === ErrorCode.ASSIGN_PARTITIONS) {
      for (const p of partitions) {
        this.#assigned.add(p);
        this.#paused.delete(p);
        this.#progress.set(p, Date.now());
      }
      if (incremental) native.incrementalAssign(assignment);
      else native.assign(assignment);
      // librdkafka keeps a partition's pause across a revocation: one this member paused
      // while giving it up, and gets back later, would otherwise never be fetched again.
      this.#safely("resume", () => native.resume(assignment));
      this.#rebalanced = true;
      this.#handlers!.onAssigned(partitions);
      return;
    }
    if (err.code !== ErrorCode.REVOKE_PARTITIONS) {
      this.#logger.error({ err: { message: err.message, code: err.code } }, "unexpected rebalance event");
      return;
    }
    const lost = native.assignmentLost();
    // No more records of these partitions reach the worker while their turns drain.
    this.#safely("pause", () => native.pause(assignment));
    for (const p of partitions) {
      this.#assigned.delete(p);
      this.#progress.delete(p);
      this.#paused.delete(p);
    }
    const release = () => {
      try {
        if (incremental) native.incrementalUnassign(assignment);
        else native.unassign();
      } catch (e) {
        if (native.isConnected()) this.#logger.warn({ err: e }, "could not release revoked partitions");
      }
    };
    this.#revoking = this.#handlers!.onRevoked(partitions, lost)
      .catch((e: unknown) => this.#logger.error({ err: e }, "revocation handler failed; releasing the partitions anyway"))
      .then(release);
  }
}
