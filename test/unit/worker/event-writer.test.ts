/**
 * The event writer's ordering and batching with a stand-in producer whose sends the test
 * completes by hand, so what is in flight, what waits and what goes together is exact.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chatEventSchema } from "../../../contracts/records/events.js";
import { createLogger } from "../../../platform/logger.js";
import { EventWriter, eventsPartitionOf, type RecordSink } from "../../../worker/event-writer.js";

/** A producer whose every send waits until the test settles it. */
function heldProducer() {
  const sends: Array<{ seqs: number[]; done(err?: Error): void }> = [];
  const producer: RecordSink = {
    send: (r) =>
      new Promise((resolve, reject) => {
        const seqs = r.messages.map((m) => chatEventSchema.parse(JSON.parse(String(m.value))).seq);
        sends.push({ seqs, done: (err) => (err ? reject(err) : resolve([])) });
      }),
  };
  return { producer, sends };
}

const request = { request_id: "r1", conversation_id: "c1", tenant: "t" };
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("the event writer", () => {
  it("sends the first event at once and everything queued behind it together, in order", async () => {
    const { producer, sends } = heldProducer();
    const events = new EventWriter(producer, "events", request, "a1");
    events.write({ type: "start", worker_id: "w" });
    assert.deepEqual(
      sends.map((s) => s.seqs),
      [[0]],
      "the start event is sent in the caller's tick, waiting for nothing",
    );
    for (let i = 0; i < 3; i++) events.write({ type: "delta", text: `t${i}` });
    await tick();
    assert.equal(sends.length, 1, "nothing overtakes the send in flight");
    sends[0]!.done();
    await tick();
    assert.deepEqual(sends[1]?.seqs, [1, 2, 3], "the deltas queued meanwhile go in one send");
    events.write({ type: "delta", text: "t3" });
    sends[1]!.done();
    await tick();
    assert.deepEqual(sends[2]?.seqs, [4]);
    let settled = false;
    const settling = events.settle().then(() => (settled = true));
    await tick();
    assert.equal(settled, false, "settle waits for the send in flight");
    sends[2]!.done();
    await settling;
    assert.deepEqual([events.sends, events.eventsWritten], [3, 5]);
  });

  it("holds an event for the next send, so the start goes with the first delta and the last delta with the final", async () => {
    const { producer, sends } = heldProducer();
    const events = new EventWriter(producer, "events", request, "a1");
    events.write({ type: "start", worker_id: "w" }, { holdMs: 10_000 });
    await tick();
    assert.equal(sends.length, 0, "a held event waits for company");
    events.write({ type: "delta", text: "first" });
    assert.deepEqual(
      sends.map((s) => s.seqs),
      [[0, 1]],
      "the first delta goes at once, and takes the held start with it",
    );
    sends[0]!.done();
    await tick();
    events.write({ type: "delta", text: "last" }, { holdMs: 10_000 });
    await tick();
    assert.equal(sends.length, 1, "the last delta is held while nothing is in flight");
    events.send(events.next({ type: "error", code: "generation_failed", message: "x", retryable: false }));
    assert.deepEqual(sends[1]?.seqs, [2, 3], "the terminal event takes the held delta with it, in order");
    sends[1]!.done();
    await events.settle();
    assert.equal(events.sends, 2);
  });

  it("sends a held event alone once its hold ends, or when settled or asked where it landed", async () => {
    const { producer, sends } = heldProducer();
    const alone = new EventWriter(producer, "events", request, "a1");
    alone.write({ type: "start", worker_id: "w" }, { holdMs: 5 });
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(
      sends.map((s) => s.seqs),
      [[0]],
      "no company within the hold: it goes by itself",
    );
    sends[0]!.done();
    await alone.settle();

    const settled = new EventWriter(producer, "events", request, "a2");
    settled.write({ type: "start", worker_id: "w" }, { holdMs: 10_000 });
    const settling = settled.settle();
    assert.equal(sends.length, 2, "settle sends what is held at once");
    sends[1]!.done();
    await settling;

    const asked = new EventWriter(producer, "events", request, "a3");
    asked.write({ type: "start", worker_id: "w" }, { holdMs: 10_000 });
    const first = asked.firstPosition();
    assert.equal(sends.length, 3, "firstPosition sends what is held: the position exists only once it is written");
    sends[2]!.done();
    await first;
  });

  it("reports the first failure from settle and sends nothing after it", async () => {
    const { producer, sends } = heldProducer();
    const events = new EventWriter(producer, "events", request, "a1");
    events.write({ type: "start", worker_id: "w" });
    events.write({ type: "delta", text: "x" });
    sends[0]!.done(new Error("broker away"));
    await tick();
    events.write({ type: "delta", text: "y" });
    await tick();
    assert.equal(sends.length, 1, "no send after a failure: a later event must not land without the ones before it");
    await assert.rejects(events.settle(), /broker away/);
  });

  it("sends to the partition its request names, or by conversation key when it names none or one the topic lacks", async () => {
    const quiet = createLogger("test", "silent");
    assert.equal(eventsPartitionOf({ request_id: "r", events_partition: 2 }, 4, quiet), 2);
    assert.equal(eventsPartitionOf({ request_id: "r", events_partition: 4 }, 4, quiet), undefined);
    assert.equal(eventsPartitionOf({ request_id: "r" }, 4, quiet), undefined);
    const messages: Array<{ key?: unknown; partition?: number }> = [];
    const producer: RecordSink = {
      send: async (r) => {
        messages.push(...r.messages);
        return [];
      },
    };
    const routed = new EventWriter(producer, "events", request, "a1", 0, 2);
    routed.write({ type: "start", worker_id: "w" });
    await routed.settle();
    const byKey = new EventWriter(producer, "events", request, "a2");
    byKey.write({ type: "start", worker_id: "w" });
    await byKey.settle();
    assert.deepEqual(
      messages.map((m) => [m.key, m.partition]),
      [
        [`${request.tenant}/c1`, 2],
        [`${request.tenant}/c1`, undefined],
      ],
    );
  });
});
