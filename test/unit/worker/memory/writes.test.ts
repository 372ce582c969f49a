/**
 * The memory store's writes (worker/memory/writes.ts) through a stand-in memory log, state
 * store and clock: Kafka first, then the store and the position; a failed store write
 * costs the partition its checkpoint; each record says where it must land, and a write
 * that landed elsewhere (another writer came between) is reported and taken by nobody.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EXPECTED_OFFSET_HEADER } from "../../../../contracts/records/memory.js";
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

  it("marks each record with the offset it must land at: the partition's end as the owner knows it", async () => {
    const { log, ownership, writer } = setup();
    log.append(0, "t/old", null);
    ownership.beginRestore(0);
    ownership.restored(0, 1n);
    assert.equal(
      await writer.send(0, [
        { key: "t/a", value: Buffer.from("a") },
        { key: "#handover:r-1", value: null },
      ]),
      true,
    );
    assert.deepEqual(
      log.sends[0]!.messages.map((m) => m.headers?.[EXPECTED_OFFSET_HEADER]),
      ["1", "2"],
    );
    assert.equal(ownership.position(0), 3n);
  });

  it("reports a write that landed after another writer's, and neither the store nor the position takes it", async () => {
    const { log, state, ownership, writer, messages } = setup();
    ownership.beginRestore(0);
    ownership.restored(0, 0n);
    await state.setCheckpoint(0, 0n);
    log.append(0, "t/a", Buffer.from("the partition's next owner")); // offset 0, which this writer expects for its own
    assert.equal(await writer.send(0, [{ key: "t/a", value: Buffer.from("replaced") }]), false);
    await settle();
    assert.equal(state.get(0, "conversation", "t/a"), undefined, "the store took nothing");
    assert.equal(ownership.position(0), -1n, "the position is no longer the log's end: the next turn catches up");
    assert.equal(state.checkpoint(0)?.next_offset, 0n, "the store lacks nothing, so its checkpoint stands");
    assert.ok(messages().some((m) => m.startsWith("memory records did not land where this worker expected")));
  });

  it("sends a partition's writes one after another, so its own never take each other's offsets", async () => {
    const { log, ownership, writer } = setup();
    ownership.beginRestore(0);
    ownership.restored(0, 0n);
    log.hold = [];
    const first = writer.send(0, [{ key: "t/a", value: Buffer.from("a") }]);
    const second = writer.send(0, [{ key: "t/b", value: Buffer.from("b") }]);
    await settle();
    assert.equal(log.sends.length, 1, "the second waits for the first to land");
    log.hold.shift()!();
    await settle();
    assert.equal(log.sends.length, 2);
    log.hold.shift()!();
    assert.deepEqual(await Promise.all([first, second]), [true, true]);
    assert.deepEqual(
      log.sends.map((b) => b.messages[0]!.headers?.[EXPECTED_OFFSET_HEADER]),
      ["0", "1"],
    );
  });
});
