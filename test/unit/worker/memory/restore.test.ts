/**
 * A memory partition's restore (worker/memory/restore.ts) through its ports: a memory log
 * that the fence is written to and the reader fetches from, when the test says, a state
 * store whose commits the test may hold back, and the clock. Checks the plan's start, the
 * fence, the bound on what waits for the store, and each way a restore fails.
 */
import assert from "node:assert/strict";
import { EXPECTED_OFFSET_HEADER } from "../../../../contracts/records/memory.js";
import { describe, it } from "node:test";
import { encodeRecord } from "../../../../contracts/records/codec.js";
import { ConversationCache } from "../../../../worker/memory/cache.js";
import { Ownership } from "../../../../worker/memory/ownership.js";
import { Restores, type RestoreKind } from "../../../../worker/memory/restore.js";
import { Checkpoints, ttlExpiry } from "../../../../worker/memory/upkeep.js";
import { FakeClock, FakeLog, FakeReader, FakeState, NOW, conversation, handover, recordingLogger, settle } from "./fakes.js";

function setup(options: { maxPendingBytes?: number } = {}) {
  const log = new FakeLog([0, 1]);
  const state = new FakeState();
  const reader = new FakeReader(log);
  const clock = new FakeClock();
  const { logger, messages } = recordingLogger();
  const checkpoints = new Checkpoints(state, logger);
  const ownership = new Ownership({ topic: "memory", reader, admin: log, checkpoints, clock, logger });
  const cache = new ConversationCache({ entries: 100, store: state, expired: ttlExpiry(60_000, clock), drop: () => {}, clock, logger });
  const observed: Array<{ kind: RestoreKind; seconds: number }> = [];
  const counted: Array<{ kind: RestoreKind; records: number }> = [];
  const restored: number[] = [];
  const skipped: string[][] = [];
  const restores = new Restores({
    topic: "memory",
    admin: log,
    producer: log.sink,
    reader,
    store: state,
    positions: ownership,
    checkpoints,
    cache,
    metrics: {
      restoreSeconds: { observe: ({ kind }, seconds) => observed.push({ kind, seconds }) },
      restoredRecords: { inc: ({ kind }, records) => counted.push({ kind, records }) },
    },
    clock,
    logger,
    onRestored: (p, keys) => {
      restored.push(p);
      skipped.push([...keys]);
    },
    ...options,
  });
  /** The reader delivers partition p's records from where it reads (up to `max`), as one fetch. */
  const fetch = (p: number, max?: number) => restores.onRecords(reader.fetch(p, max));
  const write = (p: number, id: string, note = "x") => log.append(p, `t/${id}`, encodeRecord(conversation(id, note)));
  return { log, state, reader, clock, ownership, cache, restores, observed, counted, restored, skipped, messages, fetch, write };
}

describe("memory restore", { timeout: 10_000 }, () => {
  it("restores cold from the log start without a checkpoint: clears the store, reads to its fence, and the partition is current", async () => {
    const { log, state, reader, clock, ownership, restores, observed, counted, restored, fetch, write } = setup();
    state.put(0, "conversation", "t/stale", encodeRecord(conversation("stale")));
    log.low.set(0, 1);
    write(0, "deleted-by-retention");
    write(0, "a");
    log.append(0, "#handover:r-1", encodeRecord(handover("r-1")));
    write(0, "b");
    log.append(0, "t/b", null);
    const done = restores.restore(0);
    assert.equal(ownership.holds(0), true);
    assert.equal(await ownership.isCurrent(0), false, "not current while restoring");
    await settle();
    assert.ok(state.calls.indexOf("clearPartition:0") >= 0, "the store is cleared first");
    assert.equal(log.partitions.get(0)!.at(-1)!.key.startsWith("#fence:"), true, "the fence is last in the log");
    assert.deepEqual(reader.calls, ["seek:0:1"], "read from the log start");
    clock.mono += 250;
    fetch(0);
    await done;
    assert.equal(reader.reading.has(0), false, "taken off the reader at its fence");
    assert.equal(state.has(0, "conversation", "t/stale"), false);
    assert.ok(state.has(0, "conversation", "t/a"));
    assert.equal(state.has(0, "conversation", "t/b"), false, "its tombstone applied");
    assert.ok(state.has(0, "handover", "r-1"));
    assert.equal(ownership.position(0), 6n, "one past the fence");
    assert.equal(await ownership.isCurrent(0), true);
    assert.equal(state.checkpoint(0)?.next_offset, 6n);
    assert.deepEqual(restores.last(0), { kind: "cold", from: 1n, records: 4, reason: "no checkpoint in the state store" });
    assert.deepEqual(observed, [{ kind: "cold", seconds: 0.25 }]);
    assert.deepEqual(counted, [{ kind: "cold", records: 4 }]);
    assert.deepEqual(restored, [0]);
    assert.equal(restores.pending(0), undefined);
  });

  it("restores warm from the checkpoint, reading only what came since", async () => {
    const { state, reader, restores, fetch, write } = setup();
    write(0, "a");
    write(0, "b");
    await state.setCheckpoint(0, 2n, NOW);
    write(0, "c");
    const done = restores.restore(0);
    await settle();
    assert.deepEqual(reader.calls, ["seek:0:2"]);
    fetch(0);
    await done;
    assert.equal(state.calls.includes("clearPartition:0"), false);
    assert.deepEqual(restores.last(0), { kind: "warm", from: 2n, records: 1 });
    assert.ok(state.has(0, "conversation", "t/c"));
    assert.equal(state.has(0, "conversation", "t/a"), false, "below the checkpoint: not read again");
  });

  it("skips a record that landed where its writer did not expect (a replaced owner's), and names its key", async () => {
    const { log, state, restores, skipped, fetch, write } = setup();
    write(0, "a");
    log.append(0, "t/a", encodeRecord(conversation("a", "the replaced owner's")), NOW, { [EXPECTED_OFFSET_HEADER]: "0" }); // landed at 1
    log.append(0, "t/b", encodeRecord(conversation("b", "where expected")), NOW, { [EXPECTED_OFFSET_HEADER]: "2" });
    const done = restores.restore(0);
    await settle();
    fetch(0);
    await done;
    assert.ok(state.has(0, "conversation", "t/b"), "a record that landed where expected is taken");
    assert.equal(JSON.parse(state.get(0, "conversation", "t/a")!.bytes.toString()).messages[0].content, "x", "the skipped record changed nothing");
    assert.deepEqual(skipped.at(-1), ["t/a"], "its key is named, to be written again");
  });

  it("stops at its own fence: another restore's fence is passed over, and what was written after its fence is not read", async () => {
    const { log, state, ownership, restores, fetch, write } = setup();
    write(0, "a");
    log.append(0, "#fence:another-worker", null);
    write(0, "b");
    const done = restores.restore(0);
    await settle();
    write(0, "after-the-fence");
    fetch(0);
    await done;
    assert.ok(state.has(0, "conversation", "t/b"), "read on past another's fence");
    assert.equal(state.has(0, "conversation", "t/after-the-fence"), false);
    assert.equal(ownership.position(0), 4n, "the log's end as the fence left it");
    assert.equal(await ownership.isCurrent(0), false, "the record after the fence is another writer's: behind");
  });

  it("drops the cached copies of the conversations it reads (and of the whole partition as it starts)", async () => {
    const { cache, restores, fetch, write } = setup();
    cache.remember(0, "t/kept-on-disk", conversation("kept-on-disk"), NOW);
    write(0, "a", "new");
    const done = restores.restore(0);
    await settle();
    assert.equal(cache.size, 0, "the partition's cache is dropped before the read");
    cache.remember(0, "t/a", conversation("a", "old"), NOW);
    cache.remember(0, "t/other", conversation("other"), NOW);
    fetch(0);
    await done;
    assert.equal(cache.size, 1, "t/a's cached copy is dropped, t/other's kept");
    assert.equal(cache.get(0, "t/other")?.conversation_id, "other");
  });

  it("takes the partition off the reader while the store is behind by the bound, and reads on from where it was once the store caught up", async () => {
    const { state, reader, restores, fetch, write } = setup({ maxPendingBytes: 1 });
    state.holdBulk = true;
    for (const id of ["a", "b", "c", "d"]) write(0, id);
    const done = restores.restore(0);
    await settle();
    fetch(0, 1);
    assert.equal(state.bulks.length, 1, "one store transaction at a time");
    fetch(0, 1);
    assert.equal(reader.reading.has(0), false, "paused: the store is behind by the bound");
    restores.onRecords([{ partition: 0, offset: 2, key: Buffer.from("t/c"), value: null, timestamp: NOW, headers: {} }]);
    state.bulks[0]!.commit();
    await settle();
    assert.deepEqual(reader.calls.slice(-2), ["remove:0", "add:0:2"], "read again from after what it had read");
    assert.equal(state.bulks.length, 2);
    assert.deepEqual(
      state.bulks[1]!.writes.map((w) => w.id),
      ["t/b"],
      "a record fetched while paused is not taken",
    );
    // A fetch from before the pause arriving late: records already read are not taken twice.
    restores.onRecords([{ partition: 0, offset: 1, key: Buffer.from("t/b"), value: null, timestamp: NOW, headers: {} }]);
    fetch(0);
    state.bulks[1]!.commit();
    await settle();
    state.bulks[2]!.commit();
    await done;
    assert.deepEqual(
      state.bulks.map((b) => b.writes.map((w) => w.id)),
      [["t/a"], ["t/b"], ["t/c", "t/d"]],
      "every record once, in read order",
    );
    assert.equal(restores.last(0)?.records, 4);
  });

  it("fails when a store write fails: the partition is no longer held, read, or cached", async () => {
    const { state, reader, ownership, cache, restores, messages, fetch, write } = setup();
    write(0, "a");
    state.fail.writeBulk = new Error("disk full");
    const done = restores.restore(0);
    await settle();
    cache.remember(0, "t/b", conversation("b"), NOW);
    fetch(0, 1);
    await assert.rejects(done, /disk full/);
    assert.equal(ownership.holds(0), false);
    assert.equal(reader.reading.has(0), false);
    assert.equal(cache.size, 0);
    assert.ok(messages().includes("memory restore failed"));
    assert.equal(restores.last(0), undefined);
  });

  it("fails a restore whose read passed its fence without reading it (its start fell out of the log)", async () => {
    const { reader, ownership, restores } = setup();
    const done = restores.restore(0);
    await settle();
    restores.checkFences();
    await settle();
    assert.equal(restores.pending(0), done, "the reader has not passed the fence: still running");
    reader.passed = true;
    restores.checkFences();
    await assert.rejects(done, /passed its fence at 0 without reading it/);
    assert.equal(ownership.holds(0), false);
  });

  it("fails when revoked during its plan, and writes no fence", async () => {
    const { log, reader, restores } = setup();
    const done = restores.restore(0);
    restores.revoke(0);
    await assert.rejects(done, /partition 0 was revoked during its restore/);
    await settle();
    assert.equal(log.sends.length, 0);
    assert.deepEqual(reader.calls, ["remove:0"]);
  });

  it("fails when the fence is not acknowledged or cannot be written; the partition is released", async () => {
    const { log, ownership, restores } = setup();
    log.noReports = true;
    await assert.rejects(restores.restore(0), /the fence of memory partition 0 was not acknowledged/);
    assert.equal(ownership.holds(0), false);
    log.noReports = false;
    log.failSend = new Error("not leader");
    await assert.rejects(restores.restore(0), /not leader/);
    assert.equal(ownership.holds(0), false);
  });

  it("runs one restore of a partition at a time, and a catch-up of a held partition from where it was", async () => {
    const { log, state, ownership, restores, fetch, write } = setup();
    const first = restores.restore(0);
    assert.equal(restores.restore(0), first);
    await settle();
    fetch(0);
    await first;
    assert.equal(ownership.position(0), 1n);
    write(0, "by-successor");
    assert.equal(await ownership.isCurrent(0), false);
    const catchUp = restores.restore(0);
    assert.equal(ownership.position(0), undefined, "restoring again");
    await settle();
    fetch(0);
    await catchUp;
    assert.deepEqual(restores.last(0), { kind: "warm", from: 1n, records: 1 });
    assert.ok(state.has(0, "conversation", "t/by-successor"));
    assert.equal(ownership.position(0), BigInt(log.end(0)));
    assert.equal(await ownership.isCurrent(0), true);
  });
});
