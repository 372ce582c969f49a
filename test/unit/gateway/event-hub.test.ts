import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatEvent } from "../../../contracts/records.js";
import { EventHub } from "../../../gateway/event-hub.js";

const base = { v: 1 as const, request_id: "r1", conversation_id: "c1", at: 0 };
const start: ChatEvent = { ...base, seq: 0, type: "start", worker_id: "w" };
const delta = (seq: number, text: string): ChatEvent => ({ ...base, seq, type: "delta", text });
const final = (seq: number): ChatEvent => ({
  ...base,
  seq,
  type: "final",
  reply: "ab",
  stop_reason: "stop",
  usage: { prompt_tokens: 1, cached_prompt_tokens: 0, completion_tokens: 2 },
  timings: { queue_wait_ms: 0, time_to_first_token_ms: 0, generation_ms: 0 },
});

describe("EventHub", () => {
  it("replays past events and then follows new ones until the final event", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.track("r1", "c1");
    hub.accept(start);
    hub.accept(delta(1, "a"));
    const seen: number[] = [];
    const stop = hub.follow("r1", -1, (e) => seen.push(e.seq));
    assert.ok(stop);
    hub.accept(delta(2, "b"));
    hub.accept(final(3));
    assert.deepEqual(seen, [0, 1, 2, 3]);
    const resumed: number[] = [];
    hub.follow("r1", 1, (e) => resumed.push(e.seq));
    assert.deepEqual(resumed, [2, 3], "Last-Event-ID 1 resumes at seq 2");
  });

  it("ignores duplicates and events that would leave a gap", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    assert.equal(hub.accept(start), true);
    assert.equal(hub.accept(start), false, "duplicate");
    assert.equal(hub.accept(delta(2, "x")), false, "gap");
    assert.equal(hub.accept(delta(1, "a")), true);
  });

  it("returns null for unknown requests and evicts by TTL and by count", () => {
    let now = 0;
    const hub = new EventHub({ ttlMs: 100, maxTracked: 2, now: () => now });
    assert.equal(hub.follow("nope", -1, () => {}), null);
    hub.track("a", "c");
    hub.track("b", "c");
    hub.track("c", "c");
    assert.equal(hub.size, 2);
    assert.equal(hub.has("a"), false, "the oldest request goes first");
    now = 101;
    assert.equal(hub.sweep(), 2);
    assert.equal(hub.size, 0);
  });
});
