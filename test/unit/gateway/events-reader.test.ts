/**
 * The chat.events reader's watchdog (gateway/kafka/events-reader.ts), with a stand-in
 * consumer: a librdkafka consumer that only assigns can stop fetching after a broker restart
 * and stay stopped (librdkafka#5153; every stream of a gateway went quiet for good in a
 * chaos run). The reader notices that records wait past where it reads, replaces the
 * consumer with a new one from the same offsets, and delivers every record once, in order;
 * a quiet partition at its end is left alone.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { SCHEMA_VERSION, encodeRecord, type ChatEvent } from "../../../contracts/records.js";
import { EventsReader, type EventsConsumer, type NativeMessage } from "../../../gateway/kafka/events-reader.js";
import type { KafkaConfig } from "../../../contracts/config.js";

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
          for (let o = at; o < records.length && out.length < n; o++) out.push({ topic: TOPIC, partition: p, offset: o, value: records[o]! });
          positions.set(p, Math.min(records.length, at + n));
        }
      }
      setTimeout(() => cb(null, out), 5);
    },
    setDefaultConsumeTimeout: () => {},
    setDefaultIsTimeoutOnlyForFirstMessage: () => {},
    queryWatermarkOffsets: () => {},
    on: () => {},
  };
  return consumer;
}

function reader(log: Log) {
  const consumers: Array<ReturnType<typeof standIn>> = [];
  const seen: string[] = [];
  let restarts = 0;
  const r = new EventsReader({
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
      return c as unknown as EventsConsumer;
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

describe("chat.events reader watchdog", () => {
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
