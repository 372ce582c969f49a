/**
 * The reader by assignment (platform/kafka/assigned-reader.ts), through the chat.events
 * reader built on it (gateway/kafka/events-reader.ts), with a stand-in consumer. Its watchdog: a librdkafka consumer that only assigns can stop fetching after a broker restart
 * and stay stopped (librdkafka#5153; every stream of a gateway went quiet for good in a
 * chaos run). The reader notices that records wait past where it reads, replaces the
 * consumer with a new one from the same offsets, and delivers every record once, in order;
 * a quiet partition at its end is left alone.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { SCHEMA_VERSION } from "../../../contracts/records/fields.js";
import { encodeRecord } from "../../../contracts/records/codec.js";
import type { ChatEvent } from "../../../contracts/records/events.js";
import { eventsReader } from "../../../gateway/kafka/events-reader.js";
import { AssignedReader, type AssignedConsumer } from "../../../platform/kafka/assigned-reader.js";
import type { NativeMessage } from "../../../platform/kafka/native.js";
import type { KafkaConfig } from "../../../contracts/config/shared.js";

const TOPIC = "chat.events";

/** chat.events as the stand-ins read it: records by partition. */
class Log {
  readonly partitions = new Map<number, Buffer[]>();
  append(partition: number, seq: number): void {
    const event: ChatEvent = {
      v: SCHEMA_VERSION,
      type: "delta",
      request_id: `r-${partition}`,
      conversation_id: "c",
      tenant: "t",
      attempt: "a",
      seq,
      at: 1,
      text: `t${seq}`,
    };
    const list = this.partitions.get(partition) ?? [];
    list.push(encodeRecord(event));
    this.partitions.set(partition, list);
  }
  end(partition: number): number {
    return this.partitions.get(partition)?.length ?? 0;
  }
}

/** A consumer that reads `log` from its assigned offsets, until told to stall (then it returns nothing, for good). */
function standIn(log: Log) {
  const positions = new Map<number, number>();
  const consumer = {
    stalled: false,
    disconnected: false,
    connect: (_o: Record<string, unknown>, cb: (err: Error | null) => void) => cb(null),
    disconnect(cb: (err: Error | null) => void) {
      consumer.disconnected = true;
      cb(null);
    },
    incrementalAssign: (tps: Array<{ partition: number; offset?: number }>) => {
      for (const tp of tps) positions.set(tp.partition, tp.offset ?? 0);
    },
    incrementalUnassign: (tps: Array<{ partition: number }>) => {
      for (const tp of tps) positions.delete(tp.partition);
    },
    consume(n: number, cb: (err: null, messages: NativeMessage[]) => void) {
      const out: NativeMessage[] = [];
      if (!consumer.stalled) {
        for (const [p, at] of positions) {
          const records = log.partitions.get(p) ?? [];
          let o = at;
          for (; o < records.length && out.length < n; o++) out.push({ topic: TOPIC, partition: p, offset: o, value: records[o]! });
          positions.set(p, o);
        }
      }
      setTimeout(() => cb(null, out), 5);
    },
    position: (tps: Array<{ partition: number }>) => tps.map((tp) => ({ partition: tp.partition, offset: positions.get(tp.partition) })),
    queryWatermarkOffsets: () => {},
    setDefaultConsumeTimeout: () => {},
  };
  return consumer;
}

function reader(log: Log) {
  const consumers: Array<ReturnType<typeof standIn>> = [];
  const seen: string[] = [];
  let restarts = 0;
  const r = eventsReader({
    kafka: {} as KafkaConfig,
    topic: TOPIC,
    groupId: "g.offsets",
    logger: pino({ level: "silent" }),
    onEvent: (e, p) => seen.push(`${p}:${e.seq}`),
    onRestart: () => restarts++,
    ends: async () => new Map([...log.partitions.keys()].map((p) => [p, log.end(p)])),
    stallMs: 150,
    watchMs: 50,
    makeConsumer: async () => {
      const c = standIn(log);
      consumers.push(c);
      return c as unknown as AssignedConsumer;
    },
  });
  return { r, consumers, seen, restarts: () => restarts };
}

const until = async (cond: () => boolean, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((res) => setTimeout(res, 10));
  }
};

describe("the reader by assignment", () => {
  it("replaces a consumer that stopped fetching while records wait, and reads on from where it was, once each", async () => {
    const log = new Log();
    for (let s = 0; s < 3; s++) log.append(0, s);
    log.append(1, 0);
    const { r, consumers, seen, restarts } = reader(log);
    await r.start();
    r.add(0, 0);
    r.add(1, 0);
    await until(() => seen.length === 4);
    consumers[0]!.stalled = true;
    for (let s = 3; s < 6; s++) log.append(0, s);
    await until(() => seen.length === 7);
    assert.equal(restarts(), 1);
    assert.equal(consumers.length, 2, "a new consumer");
    assert.ok(consumers[0]!.disconnected, "the stalled one is let go");
    assert.deepEqual(
      seen.filter((s) => s.startsWith("0:")),
      ["0:0", "0:1", "0:2", "0:3", "0:4", "0:5"],
      "every record once, in order",
    );
    await r.stop();
  });

  it("leaves a quiet partition at its end alone", async () => {
    const log = new Log();
    log.append(0, 0);
    const { r, consumers, seen, restarts } = reader(log);
    await r.start();
    r.add(0, 0);
    await until(() => seen.length === 1);
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(restarts(), 0);
    assert.equal(consumers.length, 1);
    await r.stop();
  });
});

/**
 * A consumer over raw offsets of partition 0: `data` offsets are delivered, the others
 * (transaction markers) only move the position. Each consume takes what its position
 * holds when it is called and answers `delayMs` later, as librdkafka's does from its
 * thread; `during` runs while a consume is in flight.
 */
function rawStandIn(
  end: () => number,
  data: (offset: number) => boolean,
  options: { delayMs?: number; batch?: number; during?: (position: number) => void } = {},
) {
  let position: number | undefined;
  return {
    disconnect: (cb: (err: null) => void) => cb(null),
    incrementalAssign: (tps: Array<{ partition: number; offset?: number }>) => {
      for (const tp of tps) position = tp.offset ?? 0;
    },
    incrementalUnassign: () => {
      position = undefined;
    },
    consume(n: number, cb: (err: null, messages: NativeMessage[]) => void) {
      const out: NativeMessage[] = [];
      if (position !== undefined) {
        let at = position;
        for (; at < end() && out.length < Math.min(n, options.batch ?? n); at++)
          if (data(at)) out.push({ topic: TOPIC, partition: 0, offset: at, value: Buffer.from(String(at)) });
        const from = position;
        position = at;
        options.during?.(from);
      }
      setTimeout(() => cb(null, out), options.delayMs ?? 5);
    },
    position: () => [{ partition: 0, offset: position }],
    queryWatermarkOffsets: () => {},
    setDefaultConsumeTimeout: () => {},
  };
}

describe("the reader by assignment, positions", () => {
  const logger = pino({ level: "silent" });

  it("re-reads from a seek made while a consume of the old position was in flight, skipping nothing", async () => {
    const seen: number[] = [];
    let seeked = false;
    let mark = -1;
    const holder: { reader?: AssignedReader } = {};
    const consumer = rawStandIn(
      () => 20,
      () => true,
      {
        delayMs: 30,
        batch: 10,
        // The first consume that fetches from 10 on is in flight when the reader is sent back to 3.
        during: (from) => {
          if (from >= 10 && !seeked) {
            seeked = true;
            queueMicrotask(() => {
              mark = seen.length;
              holder.reader!.seek(0, 3);
            });
          }
        },
      },
    );
    const reader = new AssignedReader({
      kafka: {} as KafkaConfig,
      topic: TOPIC,
      name: "test-reader",
      groupId: "g.offsets",
      logger,
      onRecords: (records) => seen.push(...records.map((r) => r.offset)),
      makeConsumer: async () => consumer as unknown as AssignedConsumer,
    });
    holder.reader = reader;
    await reader.start();
    reader.add(0, 0);
    await until(() => seeked && reader.next(0) === 20);
    const afterSeek = seen.slice(mark);
    assert.deepEqual(
      afterSeek,
      Array.from({ length: 17 }, (_, i) => i + 3),
      `from the seek on, 3..19 once each, in order: ${seen.join(",")}`,
    );
    await reader.stop();
  });

  it("counts transaction markers it never delivers as read: waitFor reaches a partition's end past them", async () => {
    const seen: number[] = [];
    // 0 data, 1 marker, 2 data, 3 aborted, 4 marker: the end is 5.
    const consumer = rawStandIn(
      () => 5,
      (o) => o === 0 || o === 2,
    );
    const reader = new AssignedReader({
      kafka: {} as KafkaConfig,
      topic: TOPIC,
      name: "test-reader",
      groupId: "g.offsets",
      logger,
      onRecords: (records) => seen.push(...records.map((r) => r.offset)),
      makeConsumer: async () => consumer as unknown as AssignedConsumer,
    });
    await reader.start();
    reader.add(0, 0);
    assert.equal(await reader.waitFor(0, 5, 2000), true, "read to the end");
    assert.deepEqual(seen, [0, 2]);
    assert.equal(reader.next(0), 5);
    await reader.stop();
  });
});

describe("the reader by assignment, consumes", () => {
  it("waits for one record at a time, and after records takes what is fetched without waiting (a lone record is not held back)", async () => {
    const calls: string[] = [];
    let timeout = -1;
    const pending = [0, 1, 2];
    const consumer = {
      disconnect: (cb: (err: null) => void) => cb(null),
      incrementalAssign: () => {},
      incrementalUnassign: () => {},
      setDefaultConsumeTimeout: (ms: number) => {
        timeout = ms;
      },
      consume(n: number, cb: (err: null, messages: NativeMessage[]) => void) {
        calls.push(`${n}@${timeout}`);
        const out = pending.splice(0, n).map((offset) => ({ topic: TOPIC, partition: 0, offset, value: Buffer.from("x") }));
        setTimeout(() => cb(null, out), 1);
      },
      position: () => [],
      queryWatermarkOffsets: () => {},
    };
    const seen: number[] = [];
    const reader = new AssignedReader({
      kafka: {} as KafkaConfig,
      topic: TOPIC,
      name: "test-reader",
      groupId: "g.offsets",
      logger: pino({ level: "silent" }),
      onRecords: (records) => seen.push(...records.map((r) => r.offset)),
      makeConsumer: async () => consumer as unknown as AssignedConsumer,
    });
    await reader.start();
    reader.add(0, 0);
    await until(() => seen.length === 3 && calls.length >= 4);
    await reader.stop();
    // A wait for one record (100 ms at most), handed over at once; then what else is fetched,
    // without waiting, until a drain finds nothing; then a wait again.
    assert.deepEqual(calls.slice(0, 4), ["1@100", "256@0", "256@0", "1@100"], calls.join(" "));
    assert.deepEqual(seen, [0, 1, 2]);
  });
});
