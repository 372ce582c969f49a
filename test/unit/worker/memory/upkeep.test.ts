/**
 * Checkpoints and the TTL (worker/memory/upkeep.ts) over a stand-in state store, memory log
 * and clock: which conversations a sweep removes, which checkpoints maintenance refreshes,
 * and that their failures are logged, never thrown.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeRecord } from "../../../../contracts/records/codec.js";
import { ConversationCache } from "../../../../worker/memory/cache.js";
import { Ownership } from "../../../../worker/memory/ownership.js";
import { Checkpoints, Upkeep, ttlExpiry } from "../../../../worker/memory/upkeep.js";
import { FakeClock, FakeLog, FakeReader, FakeState, NOW, conversation, recordingLogger } from "./fakes.js";

const TTL_MS = 60_000;

function setup() {
  const state = new FakeState();
  const clock = new FakeClock();
  const log = new FakeLog([0, 1, 2]);
  const { logger, messages } = recordingLogger();
  const checkpoints = new Checkpoints(state, logger);
  const ownership = new Ownership({ topic: "memory", reader: new FakeReader(log), admin: log, checkpoints, clock, logger });
  const expired = ttlExpiry(TTL_MS, clock);
  const cache = new ConversationCache({ entries: 10, store: state, expired, drop: () => {}, clock, logger });
  let swept = 0;
  const upkeep = new Upkeep({ store: state, checkpoints, partitions: ownership, cache, ttlMs: TTL_MS, clock, logger, onSwept: () => swept++ });
  return { state, clock, log, checkpoints, ownership, cache, upkeep, messages, swept: () => swept };
}

describe("memory upkeep", { timeout: 10_000 }, () => {
  it("expires a conversation written more than the TTL ago", () => {
    const clock = new FakeClock();
    const expired = ttlExpiry(TTL_MS, clock);
    assert.equal(expired(NOW - TTL_MS), false);
    assert.equal(expired(NOW - TTL_MS - 1), true);
    assert.equal(expired(NOW), false);
  });

  it("sweeps a partition's conversations past the TTL from the store and the cache", async () => {
    const { state, clock, cache, upkeep, swept } = setup();
    state.put(0, "conversation", "t/old", encodeRecord(conversation("old")), NOW);
    state.put(0, "conversation", "t/new", encodeRecord(conversation("new")), NOW + 1000);
    state.put(1, "conversation", "t/other", encodeRecord(conversation("other")), NOW);
    cache.remember(0, "t/new", conversation("new"), NOW + 1000);
    clock.at = NOW + TTL_MS + 1;
    await upkeep.sweep(0);
    assert.deepEqual(state.calls, [`sweep:0:${NOW + 1}`], "the cutoff is now less the TTL");
    assert.equal(state.has(0, "conversation", "t/old"), false);
    assert.equal(state.has(0, "conversation", "t/new"), true);
    assert.equal(state.has(1, "conversation", "t/other"), true, "another partition is its own sweep's");
    assert.equal(cache.size, 0, "the partition's cache is dropped once something was swept");
    assert.equal(swept(), 1);
    await upkeep.sweep(0);
    assert.equal(swept(), 1, "nothing removed: nothing to tell");
  });

  it("logs a failed sweep and carries on", async () => {
    const { state, upkeep, messages, swept } = setup();
    state.fail.sweep = new Error("disk full");
    await upkeep.sweep(0);
    assert.ok(messages().includes("state store sweep failed; expired conversations stay unserved until the next"));
    assert.equal(swept(), 0);
  });

  it("refreshes the checkpoint of an idle partition whose log has not moved, and of no other", async () => {
    const { state, clock, log, ownership, upkeep } = setup();
    // 0: idle, checkpoint at the position and the log's end.
    log.append(0, "t/a", null);
    ownership.beginRestore(0);
    ownership.restored(0, 1n);
    await state.setCheckpoint(0, 1n, NOW - 5000);
    // 1: idle, but another worker wrote since.
    ownership.beginRestore(1);
    ownership.restored(1, 0n);
    await state.setCheckpoint(1, 0n, NOW - 5000);
    log.append(1, "#fence:other", null);
    // 2: being restored.
    ownership.beginRestore(2);
    await state.setCheckpoint(2, 0n, NOW - 5000);
    clock.at = NOW;
    state.calls.length = 0;
    await upkeep.maintain();
    assert.deepEqual(
      state.calls.filter((c) => c.startsWith("sweep")),
      [`sweep:0:${NOW - TTL_MS}`, `sweep:1:${NOW - TTL_MS}`],
      "idle partitions are swept",
    );
    assert.deepEqual(
      state.calls.filter((c) => c.startsWith("setCheckpoint")),
      ["setCheckpoint:0:1"],
    );
  });

  it("leaves a checkpoint behind the position alone", async () => {
    const { state, log, ownership, upkeep } = setup();
    log.append(0, "t/a", null);
    log.append(0, "t/b", null);
    ownership.beginRestore(0);
    ownership.restored(0, 2n);
    await state.setCheckpoint(0, 1n);
    state.calls.length = 0;
    await upkeep.maintain();
    assert.deepEqual(
      state.calls.filter((c) => c.startsWith("setCheckpoint")),
      [],
    );
  });

  it("logs a checkpoint that could not be written or dropped, and never rejects", async () => {
    const { state, checkpoints, messages } = setup();
    state.fail.setCheckpoint = new Error("disk full");
    await checkpoints.set(0, 5n);
    assert.ok(messages().includes("state store checkpoint write failed"));
    state.fail.dropCheckpoint = new Error("disk full");
    await checkpoints.drop(0);
    assert.ok(messages().some((m) => m.startsWith("state store checkpoint not dropped")));
  });
});
