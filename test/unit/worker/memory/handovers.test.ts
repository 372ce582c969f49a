/**
 * Handed-over replies (worker/memory/handovers.ts) through a stand-in memory log and state
 * store: written and removed only by the partition's owner, given only to their own
 * conversation, and an unreadable one removed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeRecord, encodeRecord } from "../../../../contracts/records/codec.js";
import { handoverSchema } from "../../../../contracts/records/memory.js";
import { Handovers } from "../../../../worker/memory/handovers.js";
import { Ownership } from "../../../../worker/memory/ownership.js";
import { Checkpoints } from "../../../../worker/memory/upkeep.js";
import { MemoryWriter } from "../../../../worker/memory/writes.js";
import { FakeClock, FakeLog, FakeState, FakeReader, NOW, handover, recordingLogger, settle } from "./fakes.js";

function setup() {
  const log = new FakeLog([0]);
  const state = new FakeState();
  const clock = new FakeClock();
  const { logger, messages } = recordingLogger();
  const checkpoints = new Checkpoints(state, logger);
  const ownership = new Ownership({ topic: "memory", reader: new FakeReader(log), admin: log, checkpoints, clock, logger });
  const writer = new MemoryWriter({ topic: "memory", producer: log.sink, store: state, checkpoints, positions: ownership, clock, logger });
  const handovers = new Handovers({ store: state, writer, ownership, clock, logger });
  ownership.beginRestore(0);
  ownership.restored(0, 0n);
  return { log, state, ownership, handovers, messages };
}

describe("handovers", { timeout: 10_000 }, () => {
  it("leaves a reply under its request's handover key, and the store has it", async () => {
    const { log, state, handovers } = setup();
    assert.equal(await handovers.handOver(0, handover("r-1")), true);
    const written = log.partitions.get(0)![0]!;
    assert.equal(written.key, "#handover:r-1");
    assert.deepEqual(decodeRecord(handoverSchema, written.value), { ok: true, value: handover("r-1") });
    assert.ok(state.has(0, "handover", "r-1"));
  });

  it("writes and removes nothing once another worker has written to the partition", async () => {
    const { log, handovers } = setup();
    log.append(0, "#fence:successor", null);
    assert.equal(await handovers.handOver(0, handover("r-1")), false);
    assert.equal(await handovers.clear(0, "r-1"), false);
    assert.equal(log.end(0), 1, "only the successor's fence");
  });

  it("removes a handover inside a transaction without checking the log (the broker is the fence)", async () => {
    const { log, handovers } = setup();
    log.append(0, "#fence:successor", null);
    const tx = new FakeLog([0]);
    assert.equal(await handovers.clear(0, "r-1", tx.sink), true);
    assert.deepEqual(
      tx.partitions.get(0)!.map((r) => [r.key, r.value]),
      [["#handover:r-1", null]],
    );
  });

  it("gives a handover only to the conversation it belongs to", async () => {
    const { state, handovers } = setup();
    state.put(0, "handover", "r-1", encodeRecord(handover("r-1", "c-1")));
    assert.deepEqual(handovers.find(0, "r-1", "t/c-1"), handover("r-1", "c-1"));
    assert.equal(handovers.find(0, "r-1", "t/c-2"), undefined, "same request id, another conversation");
    assert.equal(handovers.find(0, "r-2", "t/c-1"), undefined);
  });

  it("finds nothing in a partition it does not hold", () => {
    const { state, ownership, handovers } = setup();
    state.put(0, "handover", "r-1", encodeRecord(handover("r-1")));
    ownership.release(0);
    assert.equal(handovers.find(0, "r-1", "t/c-1"), undefined);
    assert.deepEqual(handovers.clearing(0, "r-1"), []);
  });

  it("removes an unreadable handover from the store so the request runs afresh", async () => {
    const { state, handovers, messages } = setup();
    state.put(0, "handover", "r-1", Buffer.from("garbage"));
    assert.equal(handovers.find(0, "r-1", "t/c-1"), undefined);
    await settle();
    assert.equal(state.has(0, "handover", "r-1"), false);
    assert.ok(state.calls.includes("write:0:handover/r-1"));
    assert.ok(messages().includes("unreadable handover record; the request runs afresh"));
  });

  it("adds a handover's tombstone to a conversation's write only when the store has that handover", () => {
    const { state, handovers } = setup();
    assert.deepEqual(handovers.clearing(0, undefined), []);
    assert.deepEqual(handovers.clearing(0, "r-1"), []);
    state.put(0, "handover", "r-1", encodeRecord(handover("r-1")), NOW);
    assert.deepEqual(handovers.clearing(0, "r-1"), [{ key: "#handover:r-1", value: null }]);
  });
});
