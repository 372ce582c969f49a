import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SlotPool } from "../../../worker/slot-pool.js";

describe("SlotPool", () => {
  it("gives a conversation back the slot that holds its KV cache", async () => {
    const pool = new SlotPool(["g0", "g1"]);
    const a = await pool.acquire("conv-a");
    pool.release(a);
    const b = await pool.acquire("conv-b");
    pool.release(b);
    assert.notEqual(a.index, b.index, "a new conversation takes the other (unused) slot");
    const again = await pool.acquire("conv-a");
    assert.equal(again.index, a.index, "conv-a returns to its slot");
    pool.release(again);
  });

  it("reclaims the least recently used free slot", async () => {
    const pool = new SlotPool(["g0", "g1"]);
    const a = await pool.acquire("a");
    pool.release(a);
    const b = await pool.acquire("b");
    pool.release(b);
    const c = await pool.acquire("c");
    assert.equal(c.index, a.index, "a was used least recently");
    assert.equal(pool.holds("a"), false);
    assert.equal(pool.holds("b"), true);
  });

  it("queues when every slot is busy and hands over on release", async () => {
    const pool = new SlotPool(["g0"]);
    const first = await pool.acquire("a");
    let second: number | null = null;
    const waiting = pool.acquire("b").then((s) => (second = s.index));
    await new Promise((r) => setImmediate(r));
    assert.equal(second, null, "b waits");
    assert.equal(pool.busyCount, 1);
    pool.release(first);
    await waiting;
    assert.equal(second, 0);
  });
});
