/**
 * Reads partitions of one topic that the caller names, from offsets it names: librdkafka's
 * consumer by assignment, joining no group and committing nothing. Every reader of the
 * project that is the only one of its kind is one: the gateway's reads of chat.requests and
 * chat.events, the worker's of chat.control and chat.memory. A caller that must remember
 * where it was keeps the offsets itself (`next`).
 *
 * A consumer that only assigns can stop fetching after a broker restart and stay stopped
 * until it is made again (librdkafka#5153; seen once in a few broker restarts: every
 * stream of a gateway went quiet for good while the workers kept answering). So a watchdog
 * looks at partitions that delivered nothing for a while: when Kafka (asked through another
 * client) holds records past where one is read, the consumer is replaced by a new one that
 * carries on from the same offsets.
 *
 * Reads are read_committed unless told otherwise: nothing of an aborted transaction is
 * delivered, and a partition's end is its last stable offset.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import type { Logger } from "../logger.js";
import { librdkafkaConnection, SEVERITY } from "./connection.js";
import { call, ErrorCode, rdkafka, type NativeConsumer, type NativeError, type NativeMessage } from "./native.js";

export interface ReadRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Milliseconds since the epoch (the producer's, or the broker's). */
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, Buffer | string>>;
}

/** The part of librdkafka's KafkaConsumer the reader uses (a stand-in in unit tests): native.ts's typings. */
export type AssignedConsumer = Pick<
  NativeConsumer,
  "disconnect" | "incrementalAssign" | "incrementalUnassign" | "consume" | "setDefaultConsumeTimeout" | "position" | "queryWatermarkOffsets"
>;

export interface AssignedReaderOptions {
  readonly kafka: KafkaConfig;
  readonly topic: string;
  /** Names the reader in logs and in the consumer's client.id. */
  readonly name: string;
  /**
   * The group id the binding wants (never joined, nothing committed): a private group of the
   * component's (contracts/kafka-acls.ts), whose ACLs let it look the group's coordinator up.
   */
  readonly groupId: string;
  readonly logger: Logger;
  /** Each batch of records, in offset order per partition; each record once. */
  onRecords(records: readonly ReadRecord[]): void;
  /**
   * The topic's partition ends now, asked of another client than this reader's consumer
   * (which may be the one that stopped answering); without it there is no watchdog.
   */
  ends?(): Promise<ReadonlyMap<number, number>>;
  /** The consumer was replaced because it stopped fetching (a restarts counter). */
  onRestart?(): void;
  /** Default true. */
  readonly readCommitted?: boolean;
  /** Bytes fetched per partition and request: small for readers that want one record (default 1 MiB). */
  readonly fetchBytes?: number;
  /** How long a fetch waits at the broker for records (default 100 ms). */
  readonly fetchWaitMs?: number;
  /** Watchdog bounds, ms (tests shorten them): a quiet partition behind its end for `stallMs` has stalled; looked at every `watchMs`. */
  readonly stallMs?: number;
  readonly watchMs?: number;
  /** Makes and connects a consumer (tests give a stand-in); default: librdkafka's. */
  readonly makeConsumer?: () => Promise<AssignedConsumer>;
}

/** A partition behind its end that delivered nothing for this long has stalled, ms. */
const STALL_MS = 5000;
/** How often the watchdog looks, ms. */
const WATCH_MS = 2500;
/** How long a consume waits for a record when none is fetched, ms. */
const CONSUME_WAIT_MS = 100;
/** How long after a partition's (re)assignment its consumer's position is trusted, ms. */
const POSITION_SETTLE_MS = 10;

export class AssignedReader {
  readonly #options: AssignedReaderOptions;
  readonly #log: Logger;
  #native: AssignedConsumer | null = null;
  /** Partition → next offset to read. */
  readonly #next = new Map<number, number>();
  readonly #waiters = new Set<() => void>();
  /** Partition → when it last delivered a record, was added, or was found at its end. */
  readonly #progress = new Map<number, number>();
  /** Counts reassignments; partition → the count when it was last assigned again on the same consumer. */
  #assignments = 0;
  readonly #assignedAt = new Map<number, number>();
  /** Partitions the current consumer has been given (a second assignment may meet records of the first in flight). */
  #given = new Set<number>();
  /** Set when someone waits: the next poll moves `next` on to the consumer's position. */
  #positionsWanted = false;
  /** Consumes completed; partition → the count, and the time (performance.now), when it was last assigned. */
  #polls = 0;
  readonly #assignedPoll = new Map<number, { polls: number; at: number }>();
  #watchdog: NodeJS.Timeout | null = null;
  /** The last consume delivered records: the next takes what else is fetched, without waiting. */
  #draining = false;
  #restarting = false;
  #closing = false;

  constructor(options: AssignedReaderOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: options.name });
  }

  /** Connects; resolves once the consumer can be given partitions. */
  async start(): Promise<void> {
    this.#native = await this.#connect();
    this.#poll(this.#native);
    if (this.#options.ends) {
      this.#watchdog = setInterval(() => void this.#watch(), this.#options.watchMs ?? WATCH_MS);
      this.#watchdog.unref();
    }
  }

  #connect(): Promise<AssignedConsumer> {
    return this.#options.makeConsumer ? this.#options.makeConsumer() : this.#connectLibrdkafka();
  }

  async #connectLibrdkafka(): Promise<AssignedConsumer> {
    const o = this.#options;
    const { KafkaConsumer } = rdkafka();
    const native = new KafkaConsumer({
      ...librdkafkaConnection(o.kafka, `${o.kafka.clientId}-${o.name}`),
      // The binding wants a group id; the reader never joins it and commits nothing under it,
      // so Kafka keeps no group of it.
      "group.id": o.groupId,
      "enable.auto.commit": false,
      "enable.auto.offset.store": false,
      "allow.auto.create.topics": false,
      "isolation.level": (o.readCommitted ?? true) ? "read_committed" : "read_uncommitted",
      "fetch.wait.max.ms": o.fetchWaitMs ?? 100,
      "fetch.queue.backoff.ms": 20,
      "fetch.error.backoff.ms": 100,
      ...(o.fetchBytes !== undefined && { "fetch.max.bytes": o.fetchBytes, "max.partition.fetch.bytes": o.fetchBytes }),
      event_cb: true,
    });
    native.on("event.log", (log: { severity: number; fac: string; message: string }) =>
      this.#log[SEVERITY[log.severity] ?? "debug"]({ fac: log.fac }, log.message),
    );
    native.on("event.error", (err: NativeError) => this.#log.debug({ err: { message: err.message, code: err.code } }, "consumer error; librdkafka retries"));
    await call((cb) => native.connect({ timeout: 30_000 }, cb));
    // Every consume is told how long to wait (consumeWaiting), and that wait is for its first record.
    native.setDefaultIsTimeoutOnlyForFirstMessage(false);
    return native;
  }

  /** Partitions being read. */
  get partitions(): number[] {
    return [...this.#next.keys()].sort((a, b) => a - b);
  }

  reads(partition: number): boolean {
    return this.#next.has(partition);
  }

  /** The next offset to read in a partition, or undefined when it is not read. */
  next(partition: number): number | undefined {
    return this.#next.get(partition);
  }

  /** Starts reading a partition at `offset` (nothing when it is read already: `seek` moves it). */
  add(partition: number, offset: number): void {
    if (this.#next.has(partition) || !this.#native || this.#closing) return;
    this.#next.set(partition, offset);
    this.#progress.set(partition, Date.now());
    this.#assign(this.#native, partition, offset);
    this.#log.debug({ partition, offset }, "reading a partition");
  }

  #assign(native: AssignedConsumer, partition: number, offset: number): void {
    if (this.#given.has(partition)) this.#assignedAt.set(partition, ++this.#assignments);
    this.#given.add(partition);
    this.#assignedPoll.set(partition, { polls: this.#polls, at: performance.now() });
    native.incrementalAssign([{ topic: this.#options.topic, partition, offset }]);
  }

  /** Reads a partition from `offset`, whether or not it was read. */
  seek(partition: number, offset: number): void {
    this.remove(partition);
    this.add(partition, offset);
  }

  /** Stops reading a partition. */
  remove(partition: number): void {
    this.#progress.delete(partition);
    if (!this.#next.delete(partition) || !this.#native) return;
    try {
      this.#native.incrementalUnassign([{ topic: this.#options.topic, partition }]);
    } catch (err) {
      this.#log.warn({ err, partition }, "could not stop reading a partition");
    }
    this.#log.debug({ partition }, "stopped reading a partition");
    this.#wake();
  }

  /** The partition's end (the last stable offset, read_committed) now, asked by this reader's consumer. */
  end(partition: number, timeoutMs: number): Promise<number> {
    const native = this.#native;
    if (!native) return Promise.reject(new Error(`the ${this.#options.name} is not started`));
    return call<{ lowOffset: number; highOffset: number }>((cb) => native.queryWatermarkOffsets(this.#options.topic, partition, timeoutMs, cb)).then(
      (o) => o.highOffset,
    );
  }

  /** Resolves true once the partition is read up to `offset` (exclusive), false after `timeoutMs` or when it stops being read. */
  waitFor(partition: number, offset: number, timeoutMs: number): Promise<boolean> {
    const reached = () => (this.#next.get(partition) ?? -1) >= offset;
    if (reached()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (reached()) finish(true);
        else if (!this.#next.has(partition)) finish(false);
      };
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.#waiters.add(check);
      // The consumer's position passes what is never delivered (transaction markers).
      this.#positionsWanted = true;
    });
  }

  async stop(): Promise<void> {
    this.#closing = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    const native = this.#native;
    this.#native = null;
    if (native) await call((cb) => native.disconnect(cb)).catch(() => undefined);
    this.#wake();
  }

  #wake(): void {
    for (const check of [...this.#waiters]) check();
  }

  /**
   * Moves `next` to the consumer's position where that is further: records a read_committed
   * consumer never delivers (transaction markers, aborted records) still move its position.
   * Only between consumes (from the poll loop): during one, the position already counts
   * records on their way to JavaScript.
   */
  #catchUpPositions(native: AssignedConsumer, partitions: readonly number[]): boolean {
    if (partitions.length === 0) return false;
    let moved = false;
    try {
      const positions = native.position(partitions.map((partition) => ({ topic: this.#options.topic, partition })));
      partitions.forEach((p, i) => {
        const at = positions[i]?.offset;
        const next = this.#next.get(p);
        if (at !== undefined && at >= 0 && next !== undefined && at > next) {
          this.#next.set(p, at);
          this.#progress.set(p, Date.now());
          moved = true;
        }
      });
    } catch {
      // no position yet
    }
    if (moved) this.#wake();
    return moved;
  }

  /**
   * Replaces a consumer whose partitions stalled: the partitions that delivered nothing for
   * STALL_MS while Kafka holds records past where they are read. Nothing is done while Kafka
   * cannot say where they end (it is away: the consumer will carry on by itself).
   */
  async #watch(): Promise<void> {
    const native = this.#native;
    if (!native || this.#restarting || this.#closing) return;
    const now = Date.now();
    const stallMs = this.#options.stallMs ?? STALL_MS;
    // Positions past markers count as progress; they are taken at the next poll, before a stall can be judged.
    this.#positionsWanted = true;
    const quiet = [...this.#next].filter(([p]) => now - (this.#progress.get(p) ?? now) >= stallMs).map(([p, next]) => [p, next] as const);
    if (quiet.length === 0) return;
    let ends: ReadonlyMap<number, number>;
    try {
      ends = await this.#options.ends!();
    } catch {
      return;
    }
    const stalled: number[] = [];
    for (const [p, next] of quiet) {
      if ((ends.get(p) ?? 0) > next && this.#next.get(p) === next) stalled.push(p);
      else this.#progress.set(p, Date.now());
    }
    if (stalled.length === 0 || this.#native !== native || this.#closing) return;
    this.#log.warn({ partitions: stalled }, "the reader stopped fetching (records wait past where it reads); starting a new consumer from the same offsets");
    this.#restarting = true;
    try {
      const fresh = await this.#connect();
      if (this.#closing) {
        fresh.disconnect(() => {});
        return;
      }
      this.#native = fresh;
      this.#given = new Set();
      for (const [partition, offset] of this.#next) this.#assign(fresh, partition, offset);
      for (const p of this.#next.keys()) this.#progress.set(p, Date.now());
      this.#poll(fresh);
      native.disconnect(() => {});
      this.#options.onRestart?.();
    } catch (err) {
      this.#log.warn({ err }, "could not start a new consumer; the watchdog tries again");
    } finally {
      this.#restarting = false;
    }
  }

  /** Consumes with `native` for as long as it is the reader's consumer. */
  #poll(native: AssignedConsumer): void {
    if (this.#native !== native || this.#closing) return;
    const began = this.#assignments;
    const draining = this.#draining;
    this.#draining = false;
    consumeWaiting(native, draining, 256, (err, messages) => {
      if (err && err.code !== ErrorCode.TIMED_OUT) this.#log.debug({ err: { message: err.message, code: err.code } }, "consume failed; retrying");
      // A consumer replaced meanwhile: what it fetched is read by the new one again (from the same offsets).
      if (this.#native === native && messages?.length) {
        this.#draining = true;
        this.#deliver(native, messages, began);
      }
      this.#polls++;
      if (this.#native === native && this.#positionsWanted) {
        this.#positionsWanted = this.#waiters.size > 0;
        // Not a partition (re)assigned within the last two consumes or POSITION_SETTLE_MS:
        // librdkafka resets its position asynchronously (its broker thread stops the old
        // fetch), and until then it may still say where the old assignment was. A consume
        // that takes what is fetched returns at once, so the count alone is no delay.
        const now = performance.now();
        const settled = [...this.#next.keys()].filter((p) => {
          const assigned = this.#assignedPoll.get(p);
          return !assigned || (this.#polls - assigned.polls >= 2 && now - assigned.at >= POSITION_SETTLE_MS);
        });
        this.#catchUpPositions(native, settled);
      }
      setImmediate(() => this.#poll(native));
    });
  }

  /** `began`: the assignment count when the consume that fetched `messages` began. */
  #deliver(native: AssignedConsumer, messages: readonly NativeMessage[], began: number): void {
    const records: ReadRecord[] = [];
    const suspect = new Set<number>();
    for (const m of messages) {
      const next = this.#next.get(m.partition);
      // A record of a partition dropped since it was fetched, or one read already.
      if (next === undefined || m.offset < next) continue;
      // Reassigned (seek, remove and add) while this consume ran: its records may be of the
      // old position. They are dropped, and the partition is assigned again from where it is
      // read, so none is skipped.
      if ((this.#assignedAt.get(m.partition) ?? 0) > began) {
        suspect.add(m.partition);
        continue;
      }
      this.#next.set(m.partition, m.offset + 1);
      this.#progress.set(m.partition, Date.now());
      const headers: Record<string, Buffer | string> = {};
      for (const h of m.headers ?? []) Object.assign(headers, h);
      records.push({ partition: m.partition, offset: m.offset, key: m.key ?? null, value: m.value, timestamp: m.timestamp ?? 0, headers });
    }
    for (const p of suspect) {
      try {
        native.incrementalUnassign([{ topic: this.#options.topic, partition: p }]);
        this.#assign(native, p, this.#next.get(p)!);
      } catch (err) {
        this.#log.warn({ err, partition: p }, "could not assign a partition again");
      }
    }
    if (records.length === 0) return;
    try {
      this.#options.onRecords(records);
    } catch (err) {
      this.#log.error({ err }, "a record handler failed");
    }
    this.#wake();
  }
}

/**
 * One consume of a poll loop, of two kinds: a wait (up to CONSUME_WAIT_MS) for one record,
 * handed over the moment it is fetched, or, after a consume that returned records, up to
 * `max` records already fetched, without waiting. The binding's consume(n) with its
 * timeout "only for the first message" still waits 1 ms after each record for another,
 * so a lone record (every turn's request, and its final) reached JavaScript 1-2 ms late.
 * The consumer's timeout must apply to each record (setDefaultIsTimeoutOnlyForFirstMessage(false)):
 * 0 for a drain.
 */
export function consumeWaiting(
  native: Pick<AssignedConsumer, "consume" | "setDefaultConsumeTimeout">,
  draining: boolean,
  max: number,
  cb: (err: NativeError | null, messages: NativeMessage[]) => void,
): void {
  native.setDefaultConsumeTimeout(draining ? 0 : CONSUME_WAIT_MS);
  native.consume(draining ? max : 1, cb);
}
