/**
 * The bounded cache of decoded conversations (worker/memory/cache.ts) over a stand-in state
 * store and clock: its bound and order of eviction, a partition's eviction, the TTL, and
 * an unreadable record.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeRecord } from "../../../../contracts/records/codec.js";
import { ConversationCache } from "../../../../worker/memory/cache.js";
import { ttlExpiry } from "../../../../worker/memory/upkeep.js";
import type { RecordWrite } from "../../../../worker/state-store.js";
import { FakeClock, FakeState, NOW, conversation, recordingLogger } from "./fakes.js";

const TTL_MS = 60_000;

function setup(entries = 3) {
  const state = new FakeState();
  const clock = new FakeClock();
  const { logger, messages } = recordingLogger();
  const dropped: Array<{ partition: number; writes: RecordWrite[] }> = [];
  const cache = new ConversationCache({
    entries,
    store: state,
    expired: ttlExpiry(TTL_MS, clock),
    drop: (partition, writes) => void dropped.push({ partition, writes }),
    clock,
    logger,
  });
  return { state, clock, cache, dropped, messages };
}

describe("decoded conversation cache", { timeout: 10_000 }, () => {
  it("reads through from the store and keeps what it decoded", () => {
    const { state, cache } = setup();
    state.put(0, "conversation", "t/a", encodeRecord(conversation("a", "from disk")));
    assert.equal(cache.get(0, "t/a")?.messages[0]?.content, "from disk");
    assert.equal(cache.size, 1);
    state.records.clear();
    assert.equal(cache.get(0, "t/a")?.messages[0]?.content, "from disk", "served from the heap");
    assert.equal(cache.get(0, "t/missing"), undefined);
    assert.equal(cache.size, 1, "nothing cached for a conversation the store lacks");
  });

  it("holds at most `entries`, dropping the least recently used first", () => {
    const { cache } = setup(3);
    for (const id of ["a", "b", "c"]) cache.remember(0, `t/${id}`, conversation(id), NOW);
    assert.ok(cache.get(0, "t/a"), "a is now the most recently used");
    cache.remember(0, "t/d", conversation("d"), NOW);
    assert.equal(cache.size, 3);
    assert.equal(cache.get(0, "t/b"), undefined, "b was the least recently used");
    for (const id of ["a", "c", "d"]) assert.ok(cache.get(0, `t/${id}`), id);
    cache.remember(0, "t/c", conversation("c", "again"), NOW);
    assert.equal(cache.size, 3, "remembering a held one replaces it");
    assert.equal(cache.get(0, "t/c")?.messages[0]?.content, "again");
  });

  it("evicts one partition's conversations and only those", () => {
    const { cache } = setup(10);
    cache.remember(1, "t/a", conversation("a"), NOW);
    cache.remember(11, "t/a", conversation("a"), NOW);
    cache.remember(1, "t/b", conversation("b"), NOW);
    cache.evict(1);
    assert.equal(cache.size, 1);
    assert.ok(cache.get(11, "t/a"), "partition 11's key starts with '1' but is not partition 1's");
    cache.delete(11, "t/a");
    assert.equal(cache.size, 0);
  });

  it("does not serve a conversation past the TTL, cached or stored", () => {
    const { state, clock, cache } = setup();
    cache.remember(0, "t/cached", conversation("cached"), NOW);
    state.put(0, "conversation", "t/stored", encodeRecord(conversation("stored")), NOW);
    clock.at = NOW + TTL_MS;
    assert.ok(cache.get(0, "t/cached"), "exactly at the TTL it is still served");
    assert.ok(cache.get(0, "t/stored"));
    cache.delete(0, "t/stored");
    clock.at = NOW + TTL_MS + 1;
    assert.equal(cache.get(0, "t/cached"), undefined);
    assert.equal(cache.get(0, "t/stored"), undefined);
    assert.equal(cache.size, 1, "an expired stored record is not cached");
  });

  it("removes an unreadable record from the store and starts the conversation afresh", () => {
    const { state, clock, cache, dropped, messages } = setup();
    state.put(0, "conversation", "t/bad", Buffer.from("{not json"));
    clock.at = NOW + 5;
    assert.equal(cache.get(0, "t/bad"), undefined);
    assert.deepEqual(dropped, [{ partition: 0, writes: [{ kind: "conversation", id: "t/bad", value: null, writtenAt: NOW + 5 }] }]);
    assert.ok(messages().includes("unreadable memory record; starting the conversation afresh"));
    assert.equal(cache.size, 0);
  });
});
