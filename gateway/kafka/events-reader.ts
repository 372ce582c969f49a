/**
 * Reads chosen partitions of chat.events into the hub: librdkafka's consumer with no group
 * (incremental assign at an offset, as the offset reader does), so partitions are added and
 * dropped one at a time without disturbing the others. Which partitions, and from where, is
 * the caller's (gateway/kafka/event-partitions.ts): those the gateways' group gives this
 * replica and those a follower here needs.
 *
 * chat.events is not written in transactions, so a partition is read to its end when the
 * next offset to read reaches the high watermark.
 *
 * A consumer that only assigns can stop fetching after a broker restart and stay stopped
 * until it is made again (librdkafka#5153; seen here once in a few broker restarts: every
 * stream of the gateway went quiet for good while the workers kept answering). So a
 * watchdog looks at partitions that delivered nothing for a while: when Kafka holds
 * records past where one is read, the consumer is replaced by a new one that carries on
 * from the same offsets.
 */
import { createRequire } from "node:module";
import type { KafkaConfig } from "../../contracts/config.js";
import { chatEventSchema, decodeRecord, type ChatEvent } from "../../contracts/records.js";
import type { Logger } from "../../platform/logger.js";
import { librdkafkaConnection } from "../../platform/group-consumer.js";

export interface NativeMessage {
  topic: string;
  partition: number;
  offset: number;
  value: Buffer | null;
}
/** The part of librdkafka's KafkaConsumer the reader uses. */
export interface EventsConsumer {
  connect(options: Record<string, unknown>, cb: (err: Error | null) => void): void;
  disconnect(cb: (err: Error | null) => void): void;
  incrementalAssign(tps: Array<{ topic: string; partition: number; offset?: number }>): void;
  incrementalUnassign(tps: Array<{ topic: string; partition: number }>): void;
  consume(n: number, cb: (err: (Error & { code?: number }) | null, messages: NativeMessage[]) => void): void;
  setDefaultConsumeTimeout(ms: number): void;
  setDefaultIsTimeoutOnlyForFirstMessage(onlyFirst: boolean): void;
  queryWatermarkOffsets(
    topic: string,
    partition: number,
    timeout: number,
    cb: (err: Error | null, offsets: { highOffset: number; lowOffset: number }) => void,
  ): void;
  on(event: string, listener: (...args: any[]) => void): void;
}

/** librdkafka's RD_KAFKA_RESP_ERR__TIMED_OUT (a consume that found nothing). */
const ERR_TIMED_OUT = -185;
/** A partition behind its end that delivered nothing for this long has stalled, ms. */
const STALL_MS = 5000;
/** How often the watchdog looks, ms. */
const WATCH_MS = 2500;

export interface EventsReaderOptions {
  readonly kafka: KafkaConfig;
  readonly topic: string;
  /** The group id librdkafka wants (it never joins, nothing is committed): a private group of the gateways'. */
  readonly groupId: string;
  readonly logger: Logger;
  /** Each event read, with its partition; returns whether the hub took it as new. */
  onEvent(event: ChatEvent, partition: number): void;
  /** Each record read (events and malformed ones alike), for the events_read counter. */
  onRecord?(partition: number): void;
  /** The consumer was replaced because it stopped fetching (the restarts counter). */
  onRestart?(): void;
  /**
   * The topic's partition ends (high watermarks) now, asked of another client than this
   * reader's consumer (which may be the one that stopped answering).
   */
  ends(): Promise<ReadonlyMap<number, number>>;
  /** Watchdog bounds, ms (tests shorten them): a quiet partition behind its end for `stallMs` has stalled; looked at every `watchMs`. */
  readonly stallMs?: number;
  readonly watchMs?: number;
  /** Makes and connects a consumer (tests give a stand-in); default: librdkafka's. */
  readonly makeConsumer?: () => Promise<EventsConsumer>;
}

export class EventsReader {
  readonly #options: EventsReaderOptions;
  readonly #log: Logger;
  #native: EventsConsumer | null = null;
  /** Partition → next offset to read. */
  readonly #next = new Map<number, number>();
  readonly #waiters = new Set<() => void>();
  /** Partition → when it last delivered a record, was added, or was found at its end. */
  readonly #progress = new Map<number, number>();
  #watchdog: NodeJS.Timeout | null = null;
  #restarting = false;
  #closing = false;
  #warnedAt = 0;

  constructor(options: EventsReaderOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "events-reader" });
  }

  async start(): Promise<void> {
    this.#native = await this.#connect();
    this.#poll(this.#native);
    this.#watchdog = setInterval(() => void this.#watch(), this.#options.watchMs ?? WATCH_MS);
    this.#watchdog.unref();
  }

  #connect(): Promise<EventsConsumer> {
    return this.#options.makeConsumer ? this.#options.makeConsumer() : this.#connectLibrdkafka();
  }

  async #connectLibrdkafka(): Promise<EventsConsumer> {
    const require = createRequire(import.meta.url);
    const { KafkaConsumer } = require("@confluentinc/kafka-javascript") as { KafkaConsumer: new (conf: Record<string, unknown>) => EventsConsumer };
    const native = new KafkaConsumer({
      ...librdkafkaConnection(this.#options.kafka),
      // A group id librdkafka wants; nothing is committed under it and it never joins.
      "group.id": this.#options.groupId,
      "enable.auto.commit": false,
      "enable.auto.offset.store": false,
      // An offset aged out between the look-up and the fetch: start at what is left.
      "auto.offset.reset": "earliest",
      "fetch.wait.max.ms": 50,
      "fetch.queue.backoff.ms": 0,
      "fetch.error.backoff.ms": 100,
      "log.connection.close": false,
    });
    native.on("event.error", (err: Error) => {
      if (Date.now() - this.#warnedAt < 60_000) return;
      this.#warnedAt = Date.now();
      this.#log.warn({ err }, "chat.events reader: client error (librdkafka retries)");
    });
    await new Promise<void>((resolve, reject) => native.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    native.setDefaultConsumeTimeout(100);
    native.setDefaultIsTimeoutOnlyForFirstMessage(true);
    return native;
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
    const quiet = [...this.#next].filter(([p]) => now - (this.#progress.get(p) ?? now) >= (this.#options.stallMs ?? STALL_MS));
    if (quiet.length === 0) return;
    let ends: ReadonlyMap<number, number>;
    try {
      ends = await this.#options.ends();
    } catch {
      return;
    }
    const stalled: number[] = [];
    for (const [p, next] of quiet) {
      if ((ends.get(p) ?? 0) > next && this.#next.get(p) === next) stalled.push(p);
      else this.#progress.set(p, Date.now());
    }
    if (stalled.length === 0 || this.#native !== native || this.#closing) return;
    this.#log.warn(
      { partitions: stalled },
      "chat.events reader stopped fetching (records wait past where it reads); starting a new consumer from the same offsets",
    );
    this.#restarting = true;
    try {
      const fresh = await this.#connect();
      if (this.#closing) {
        fresh.disconnect(() => {});
        return;
      }
      const from = [...this.#next].map(([partition, offset]) => ({ topic: this.#options.topic, partition, offset }));
      if (from.length > 0) fresh.incrementalAssign(from);
      this.#native = fresh;
      for (const p of this.#next.keys()) this.#progress.set(p, Date.now());
      this.#poll(fresh);
      native.disconnect(() => {});
      this.#options.onRestart?.();
    } catch (err) {
      this.#log.warn({ err }, "could not start a new chat.events consumer; the watchdog tries again");
    } finally {
      this.#restarting = false;
    }
  }

  /** Partitions being read. */
  get partitions(): number[] {
    return [...this.#next.keys()].sort((a, b) => a - b);
  }

  reads(partition: number): boolean {
    return this.#next.has(partition);
  }

  /** Starts reading a partition at `offset` (nothing when it is read already). */
  add(partition: number, offset: number): void {
    if (this.#next.has(partition) || !this.#native || this.#closing) return;
    this.#next.set(partition, offset);
    this.#progress.set(partition, Date.now());
    this.#native.incrementalAssign([{ topic: this.#options.topic, partition, offset }]);
    this.#log.debug({ partition, offset }, "reading a chat.events partition");
  }

  /** Stops reading a partition. */
  remove(partition: number): void {
    this.#progress.delete(partition);
    if (!this.#next.delete(partition) || !this.#native) return;
    try {
      this.#native.incrementalUnassign([{ topic: this.#options.topic, partition }]);
    } catch (err) {
      this.#log.warn({ err, partition }, "could not stop reading a chat.events partition");
    }
    this.#log.debug({ partition }, "stopped reading a chat.events partition");
    for (const check of [...this.#waiters]) check();
  }

  /** The partition's end (high watermark) now. */
  end(partition: number, timeoutMs: number): Promise<number> {
    const native = this.#native;
    if (!native) return Promise.reject(new Error("the chat.events reader is not started"));
    return new Promise((resolve, reject) =>
      native.queryWatermarkOffsets(this.#options.topic, partition, timeoutMs, (err, offsets) => (err ? reject(err) : resolve(offsets.highOffset))),
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
    });
  }

  async stop(): Promise<void> {
    this.#closing = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    const native = this.#native;
    this.#native = null;
    if (native) await new Promise<void>((resolve) => native.disconnect(() => resolve()));
  }

  /** Consumes with `native` for as long as it is the reader's consumer. */
  #poll(native: EventsConsumer): void {
    if (this.#native !== native || this.#closing) return;
    native.consume(256, (err, messages) => {
      if (err && err.code !== ERR_TIMED_OUT) this.#log.debug({ err: { message: err.message, code: err.code } }, "chat.events consume failed; retrying");
      let moved = false;
      // A consumer replaced meanwhile: what it fetched is read by the new one again (from the same offsets).
      if (this.#native === native) for (const m of messages ?? []) moved = this.#deliver(m) || moved;
      if (moved) for (const check of [...this.#waiters]) check();
      setImmediate(() => this.#poll(native));
    });
  }

  #deliver(m: NativeMessage): boolean {
    const next = this.#next.get(m.partition);
    // A record of a partition dropped since it was fetched, or one read already.
    if (next === undefined || m.offset < next) return false;
    this.#next.set(m.partition, m.offset + 1);
    this.#progress.set(m.partition, Date.now());
    this.#options.onRecord?.(m.partition);
    const decoded = decodeRecord(chatEventSchema, m.value);
    if (!decoded.ok) this.#log.warn({ partition: m.partition, offset: m.offset, reason: decoded.reason }, "ignored malformed event");
    else this.#options.onEvent(decoded.value, m.partition);
    return true;
  }
}
