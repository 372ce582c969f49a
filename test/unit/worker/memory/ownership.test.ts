/**
 * Ownership and its fence (worker/memory/ownership.ts) through its ports: a memory log the
 * test writes to as this worker or as another, the reader's and the admin's view of its
 * end, and the store's checkpoints.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CONFIRMED_FRESH_MS, Ownership } from "../../../../worker/memory/ownership.js";
import { Checkpoints } from "../../../../worker/memory/upkeep.js";
import { FakeClock, FakeLog, FakeReader, FakeState, recordingLogger } from "./fakes.js";

function setup() {
  const log = new FakeLog([0, 1]);
  const reader = new FakeReader(log);
  const state = new FakeState();
  const { logger, messages } = recordingLogger();
  const clock = new FakeClock();
  const ownership = new Ownership({ topic: "memory", reader, admin: log, checkpoints: new Checkpoints(state, logger), clock, logger });
  /** Holds partition p, restored to the log's end now, with its checkpoint there. */
  const restoredAtEnd = async (p: number) => {
    ownership.beginRestore(p);
    ownership.restored(p, BigInt(log.end(p)));
    await state.setCheckpoint(p, BigInt(log.end(p)));
  };
  return { log, reader, state, ownership, messages, clock, restoredAtEnd };
}

describe("memory ownership", { timeout: 10_000 }, () => {
  it("is current only for a held, restored partition whose log ends where the store last saw it", async () => {
    const { log, ownership } = setup();
    assert.equal(await ownership.isCurrent(0), false, "not held");
    ownership.beginRestore(0);
    assert.equal(await ownership.isCurrent(0), false, "being restored");
    log.append(0, "t/a", Buffer.from("x"));
    ownership.restored(0, 1n);
    assert.equal(await ownership.isCurrent(0), true);
    log.append(0, "#fence:other", null);
    assert.equal(await ownership.isCurrent(0), false, "another worker wrote there (its restore fence): this store is behind");
  });

  it("counts as current without asking within the fresh window after the log last said so, and never once the position is in doubt", async () => {
    const { log, reader, ownership, clock } = setup();
    const asks = () => {
      let n = 0;
      const end = reader.end.bind(reader);
      reader.end = async (p, t) => {
        n++;
        return end(p, t);
      };
      return () => n;
    };
    const count = asks();
    ownership.beginRestore(0);
    ownership.restored(0, 0n);
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), true);
    assert.equal(count(), 1, "a restore's position is confirmed by asking");
    // Another worker writes; within the window the store does not ask (the write's own
    // fence, worker/memory/writes.ts, is what stops it) ...
    log.append(0, "#fence:other", null);
    clock.mono += CONFIRMED_FRESH_MS - 1;
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), true);
    assert.equal(count(), 1);
    // ... past it (a freeze longer than the window) it asks, and learns it is behind.
    clock.mono += 2;
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), false);
    assert.equal(count(), 2);
    // Without a window every call asks.
    assert.equal(await ownership.isCurrent(0), false);
    assert.equal(count(), 3);

    // Its own write landing where it expected confirms the position; behind() drops that.
    ownership.release(0);
    ownership.beginRestore(0);
    ownership.restored(0, BigInt(log.end(0)));
    ownership.wrote(0, [{ partition: 0, offset: log.end(0) }]);
    log.append(0, "t/a", null);
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), true, "confirmed by its write, no question asked");
    assert.equal(count(), 3);
    ownership.behind(0);
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), false, "in doubt: never current from the window");
    // forget() (an aborted transaction) and a new restore drop it too.
    ownership.release(0);
    ownership.beginRestore(0);
    ownership.restored(0, BigInt(log.end(0)));
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), true);
    ownership.forget(0);
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), false);
    ownership.beginRestore(0);
    assert.equal(await ownership.isCurrent(0, CONFIRMED_FRESH_MS), false, "being restored");
  });

  it("asks the admin for the log's end when the reader cannot say, warning at most once a minute", async () => {
    const { log, reader, ownership, messages, clock } = setup();
    log.append(1, "t/a", null);
    ownership.beginRestore(1);
    ownership.restored(1, 1n);
    reader.endFails = new Error("consumer metadata stale");
    assert.equal(await ownership.isCurrent(1), true, "the admin's end");
    log.append(1, "t/b", null);
    assert.equal(await ownership.isCurrent(1), false);
    const warning = "memory partition end not known to the reader's consumer; asking the admin";
    assert.equal(messages().filter((m) => m === warning).length, 1);
    clock.at += 60_001;
    await ownership.isCurrent(1);
    assert.equal(messages().filter((m) => m === warning).length, 2);
  });

  it("rejects when neither the reader nor the admin knows the partition", async () => {
    const { reader, ownership } = setup();
    ownership.beginRestore(7);
    ownership.restored(7, 0n);
    reader.endFails = new Error("unknown partition");
    await assert.rejects(ownership.isCurrent(7), /memory topic memory has no partition 7/);
  });

  it("follows its own writes, and moves the checkpoint along only when nothing came between it and them", async () => {
    const { log, state, ownership, restoredAtEnd } = setup();
    await restoredAtEnd(0);
    ownership.wrote(0, [log.append(0, "t/a", null), log.append(0, "t/b", null)]);
    assert.equal(ownership.position(0), 2n);
    assert.equal(await ownership.isCurrent(0), true);
    assert.equal(state.checkpoint(0)?.next_offset, 2n, "contiguous from the checkpoint: it follows");

    log.append(0, "t/other-writer", null);
    ownership.wrote(0, [log.append(0, "t/c", null)]);
    assert.equal(ownership.position(0), 4n);
    assert.equal(state.checkpoint(0)?.next_offset, 2n, "a record the store never read lies between: the checkpoint stays below it");

    await state.setCheckpoint(0, 4n);
    const first = log.append(0, "t/d", null);
    log.append(0, "t/interleaved", null);
    ownership.wrote(0, [first, log.append(0, "t/e", null)]);
    assert.equal(ownership.position(0), 7n);
    assert.equal(state.checkpoint(0)?.next_offset, 4n, "another's record among them: the checkpoint stays");
  });

  it("leaves a restoring partition's position to its restore, and ignores writes to a partition it does not hold", async () => {
    const { log, state, ownership } = setup();
    ownership.wrote(0, [log.append(0, "t/a", null)]);
    assert.equal(ownership.holds(0), false);
    ownership.beginRestore(0);
    ownership.wrote(0, [log.append(0, "t/b", null)]);
    assert.equal(ownership.position(0), undefined, "restoring: no position yet");
    ownership.restored(0, 5n);
    assert.equal(ownership.position(0), 5n);
    assert.deepEqual(state.calls, []);
  });

  it("moves past a committed transaction's marker, the checkpoint with it when it was at the position", async () => {
    const { log, state, ownership, restoredAtEnd } = setup();
    await restoredAtEnd(0);
    // The transaction's records, written through its sink (wrote), then its commit marker.
    ownership.wrote(0, [log.append(0, "t/a", null)]);
    log.append(0, "#commit-marker", null);
    ownership.committed(0);
    assert.equal(ownership.position(0), 2n);
    assert.equal(await ownership.isCurrent(0), true);
    assert.equal(state.checkpoint(0)?.next_offset, 2n);

    await state.setCheckpoint(0, 1n);
    log.append(0, "#commit-marker", null);
    ownership.committed(0);
    assert.equal(ownership.position(0), 3n);
    assert.equal(state.checkpoint(0)?.next_offset, 1n, "a checkpoint behind the position stays behind");
  });

  it("forgets an aborted transaction: the position is no longer current and the checkpoint is dropped", async () => {
    const { state, ownership, restoredAtEnd } = setup();
    await restoredAtEnd(0);
    assert.equal(ownership.forget(0), true);
    assert.equal(await ownership.isCurrent(0), false, "the next turn catches up from the log");
    assert.equal(state.checkpoint(0), undefined, "and that catch-up reads from the beginning");
    ownership.beginRestore(1);
    assert.equal(ownership.forget(1), false, "a restoring partition is the restore's");
    assert.equal(ownership.forget(5), false, "not held");
  });

  it("tells the assignment, the held partitions and the idle ones apart", () => {
    const { ownership } = setup();
    ownership.assign([0, 1]);
    assert.equal(ownership.assigned(1), true);
    assert.equal(ownership.assigned(2), false);
    ownership.beginRestore(0);
    ownership.beginRestore(1);
    ownership.restored(1, 0n);
    assert.deepEqual(ownership.held(), [0, 1]);
    assert.deepEqual(ownership.idle(), [1]);
    ownership.beginRestore(1);
    assert.equal(ownership.position(1), undefined, "a catch-up makes it restoring again");
    ownership.release(0);
    assert.deepEqual(ownership.held(), [1]);
  });
});
