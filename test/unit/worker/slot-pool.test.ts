import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SlotPool, type SlotOwner } from "../../../worker/slot-pool.js";

const of = (tenant: string, conversation: string): SlotOwner => ({ key: `${tenant}/${conversation}`, tenant });

/** A pool over named generators that records which ones were cleared, in order. */
function pool(generators: string[], fail: Set<string> = new Set()) {
  const cleared: string[] = [];
  const slots = new SlotPool(generators, {
    clear: async (g) => {
      cleared.push(g);
      if (fail.has(g)) throw new Error(`clearing ${g} failed`);
    },
  });
  return { slots, cleared };
}

describe("SlotPool", () => {
  it("gives a conversation back the slot that holds its KV cache", async () => {
    const { slots } = pool(["g0", "g1"]);
    const a = await slots.acquire(of("t", "conv-a"));
    slots.release(a);
    const b = await slots.acquire(of("t", "conv-b"));
    slots.release(b);
    assert.notEqual(a.index, b.index, "a new conversation takes the other (unused) slot");
    const again = await slots.acquire(of("t", "conv-a"));
    assert.equal(again.index, a.index, "conv-a returns to its slot");
    slots.release(again);
  });

  it("reclaims the least recently used free slot of the same tenant", async () => {
    const { slots, cleared } = pool(["g0", "g1"]);
    const a = await slots.acquire(of("t", "a"));
    slots.release(a);
    const b = await slots.acquire(of("t", "b"));
    slots.release(b);
    const c = await slots.acquire(of("t", "c"));
    assert.equal(c.index, a.index, "a was used least recently");
    assert.equal(slots.holds("t/a"), false);
    assert.equal(slots.holds("t/b"), true);
    assert.deepEqual(cleared, [], "one tenant's slots are never cleared");
  });

  it("the same conversation id of two tenants is two conversations", async () => {
    const { slots } = pool(["g0", "g1"]);
    const a = await slots.acquire(of("a", "support-4711"));
    slots.release(a);
    const b = await slots.acquire(of("b", "support-4711"));
    assert.notEqual(b.index, a.index, "tenant b does not get tenant a's slot for the same id");
    assert.equal(slots.holds("a/support-4711"), true);
  });

  it("clears a slot before another tenant uses it, and prefers the tenant's own or an empty slot", async () => {
    const { slots, cleared } = pool(["g0", "g1", "g2"]);
    const a1 = await slots.acquire(of("a", "1"));
    const a2 = await slots.acquire(of("a", "2"));
    slots.release(a1);
    slots.release(a2);
    const b = await slots.acquire(of("b", "1"));
    assert.equal(b.index, 2, "an empty slot before one holding another tenant's tokens");
    assert.deepEqual(cleared, []);
    slots.release(b);
    const b2 = await slots.acquire(of("b", "2"));
    assert.equal(b2.index, 2, "the tenant's own slot before another tenant's, even when more recently used");
    slots.release(b2);
    const a3 = await slots.acquire(of("a", "3"));
    assert.equal(a3.index, a1.index, "the tenant's least recently used slot");
    const a4 = await slots.acquire(of("a", "4"));
    assert.equal(a4.index, a2.index);
    assert.deepEqual(cleared, [], "no tenant has taken another's slot yet");
    const a5 = await slots.acquire(of("a", "5"));
    assert.equal(a5.index, 2, "only b's slot is free");
    assert.deepEqual(cleared, ["g2"], "b's slot was cleared before a used it");
    assert.equal(a5.tenant, "a");
  });

  it("clears a slot handed to a waiting turn of another tenant", async () => {
    const { slots, cleared } = pool(["g0"]);
    const a = await slots.acquire(of("a", "1"));
    const waiting = slots.acquire(of("b", "1"));
    slots.release(a);
    const b = await waiting;
    assert.equal(b.index, 0);
    assert.deepEqual(cleared, ["g0"]);
    assert.equal(b.tenant, "b");
  });

  it("a slot whose clearing failed is given back and cleared again by whoever takes it next", async () => {
    const fail = new Set(["g0"]);
    const { slots, cleared } = pool(["g0"], fail);
    slots.release(await slots.acquire(of("a", "1")));
    await assert.rejects(slots.acquire(of("b", "1")), /clearing g0 failed/);
    assert.equal(slots.busyCount, 0, "the slot was given back");
    fail.clear();
    const again = await slots.acquire(of("a", "1"));
    assert.deepEqual(cleared, ["g0", "g0"], "even tenant a's next turn clears it: what it holds is unknown");
    assert.equal(again.tenant, "a");
  });

  it("queues when every slot is busy and hands over on release", async () => {
    const { slots } = pool(["g0"]);
    const first = await slots.acquire(of("t", "a"));
    let second: number | null = null;
    const waiting = slots.acquire(of("t", "b")).then((s) => (second = s.index));
    await new Promise((r) => setImmediate(r));
    assert.equal(second, null, "b waits");
    assert.equal(slots.busyCount, 1);
    slots.release(first);
    await waiting;
    assert.equal(second, 0);
  });

  it("gives a turn only a slot of the model it asked for: the base model's or its adapter's context", async () => {
    const slots = new SlotPool(["base0", "base1", "lora0"], { adapters: [null, null, "support"], clear: async () => {} });
    const adapted = { ...of("t", "c1"), adapter: "support" };
    const first = await slots.acquire(adapted);
    assert.equal(first.generator, "lora0");
    assert.equal(slots.freeCount("support"), 0);
    assert.equal(slots.freeCount(), 2, "the base model's slots stay free");
    // A second adapter turn waits for the adapter's slot even though base slots are free.
    let second: { generator: string } | undefined;
    const waiting = slots.acquire({ ...of("t", "c2"), adapter: "support" }).then((s) => (second = s));
    const base = await slots.acquire(of("t", "c3"));
    assert.match(base.generator, /^base/);
    slots.release(base);
    await new Promise((r) => setImmediate(r));
    assert.equal(second, undefined, "a base slot's release does not serve an adapter's waiter");
    slots.release(first);
    await waiting;
    assert.equal(second!.generator, "lora0");
  });
});
