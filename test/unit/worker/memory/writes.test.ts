/**
 * The memory store's writes (worker/memory/writes.ts) through a stand-in memory log, state
 * store and clock: Kafka first, then the store and the position; a failed store write
 * costs the partition its checkpoint.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Ownership } from "../../../../worker/memory/ownership.js";
import { Checkpoints } from "../../../../worker/memory/upkeep.js";
import { MemoryWriter } from "../../../../worker/memory/writes.js";
import { FakeClock, FakeLog, FakeReader, FakeState, NOW, recordingLogger, settle } from "./fakes.js";

function setup() {
  const log = new FakeLog([0, 1]);
  const state = new FakeState();
  const clock = new FakeClock();
  const { logger, messages } = recordingLogger();
  const checkpoints = new Checkpoints(state, logger);
  const ownership = new Ownership({ topic: "memory", reader: new FakeReader(log), admin: log, checkpoints, clock, logger });
  const writer = new MemoryWriter({ topic: "memory", producer: log.sink, store: state, checkpoints, positions: ownership, clock, logger });
  return { log, state, clock, ownership, writer, messages };
}

describe("memory writes", { timeout: 10_000 }, () => {
  it("sends the records to the partition in one batch, then the store takes them (by kind) and the position follows", async () => {
    const { log, state, ownership, writer } = setup();
    ownership.beginRestore(0);
    ownership.restored(0, 0n);
    await state.setCheckpoint(0, 0n);
    await writer.send(0, [
      { key: "t/a", value: Buffer.from("state") },
      { key: "#handover:r-1", value: null },
    ]);
    assert.equal(log.sends.length, 1);
    assert.deepEqual(
      log.sends[0]!.messages.map((m) => [m.partition, m.key]),
      [
        [0, "t/a"],
        [0, "#handover:r-1"],
      ],
    );
    assert.ok(state.calls.includes("write:0:conversation/t/a,handover/r-1"));
    assert.deepEqual(state.get(0, "conversation", "t/a"), { bytes: Buffer.from("state"), writtenAt: NOW });
    assert.equal(ownership.position(0), 2n);
    assert.equal(state.checkpoint(0)?.next_offset, 2n);
  });

  it("writes through a transaction's sink when given one", async () => {
    const { log, ownership, writer } = setup();
    ownership.beginRestore(0);
    ownership.restored(0, 0n);
    const tx = new FakeLog([0]);
    await writer.send(0, [{ key: "t/a", value: null }], tx.sink);
    assert.equal(log.sends.length, 0);
    assert.equal(tx.sends.length, 1);
  });

  it("does not write to the store of a partition it does not hold", async () => {
    const { log, state, writer } = setup();
    await writer.send(1, [{ key: "t/a", value: Buffer.from("x") }]);
    assert.equal(log.end(1), 1, "Kafka has it");
    assert.deepEqual(state.calls, []);
  });

  it("drops the partition's checkpoint when a store write fails, so its next restore reads from the beginning", async () => {
    const { state, ownership, writer, messages } = setup();
    ownership.beginRestore(0);
    ownership.restored(0, 0n);
    await state.setCheckpoint(0, 0n);
    state.fail.write = new Error("disk full");
    await writer.send(0, [{ key: "t/a", value: Buffer.from("x") }]);
    await settle();
    assert.equal(state.checkpoint(0), undefined);
    assert.ok(messages().includes("state store write failed; the partition's next restore reads from the beginning"));
  });

  it("sends nothing to the store when Kafka refuses the batch", async () => {
    const { log, state, ownership, writer } = setup();
    ownership.beginRestore(0);
    ownership.restored(0, 0n);
    log.failSend = new Error("not leader");
    await assert.rejects(writer.send(0, [{ key: "t/a", value: null }]), /not leader/);
    assert.deepEqual(state.calls, []);
    assert.equal(ownership.position(0), 0n);
  });
});
