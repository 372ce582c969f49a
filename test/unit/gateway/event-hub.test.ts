import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatEvent } from "../../../contracts/records.js";
import { EventHub } from "../../../gateway/event-hub.js";

const base = { v: 1 as const, request_id: "r1", conversation_id: "c1", tenant: "t", attempt: "a1", at: 0 };
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
    hub.track("r1", "c1", "t");
    hub.accept(start);
    hub.accept(delta(1, "a"));
    const seen: number[] = [];
    const stop = hub.follow("r1", null, (e) => seen.push(e.seq));
    assert.ok(stop);
    hub.accept(delta(2, "b"));
    hub.accept(final(3));
    assert.deepEqual(seen, [0, 1, 2, 3]);
    const resumed: number[] = [];
    hub.follow("r1", { seq: 1, attempt: "a1" }, (e) => resumed.push(e.seq));
    assert.deepEqual(resumed, [2, 3], "Last-Event-ID 1 resumes at seq 2");
  });

  it("ignores duplicates and events that would leave a gap", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    assert.equal(hub.accept(start), true);
    assert.equal(hub.accept(start), false, "duplicate");
    assert.equal(hub.accept(delta(2, "x")), false, "gap");
    assert.equal(hub.accept(delta(1, "a")), true);
  });

  it("replaces an abandoned attempt with the next one and takes a re-announced final", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.accept(start);
    hub.accept(delta(1, "half a rep"));
    const seen: string[] = [];
    hub.follow("r1", null, (e) => seen.push(`${e.attempt}:${e.type}:${e.seq}`));
    assert.equal(hub.accept({ ...delta(2, "x"), attempt: "a2" }), false, "a delta of an unknown attempt is dropped");
    assert.equal(hub.accept({ ...start, attempt: "a2" }), true, "a new attempt starts over");
    assert.equal(hub.accept({ ...delta(1, "ab"), attempt: "a2" }), true);
    assert.equal(hub.accept({ ...delta(2, "late"), attempt: "a1" }), false, "stragglers of the old attempt are dropped");
    assert.equal(hub.accept({ ...final(2), attempt: "a2" }), true);
    assert.equal(hub.accept({ ...final(7), attempt: "a0" }), false, "one final per request");
    assert.deepEqual(seen, ["a1:start:0", "a1:delta:1", "a2:start:0", "a2:delta:1", "a2:final:2"]);
    assert.deepEqual(
      hub.get("r1")?.events.map((e) => e.seq),
      [0, 1, 2],
      "only the last attempt is kept",
    );
    const resumed: string[] = [];
    hub.follow("r1", { seq: 1, attempt: "a1" }, (e) => resumed.push(`${e.attempt}:${e.seq}`));
    assert.deepEqual(resumed, ["a2:0", "a2:1", "a2:2"], "resuming from another attempt replays the current one whole");
  });

  it("ends a request on a final re-announced without its earlier events", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.track("r1", "c1", "t");
    assert.equal(hub.accept({ ...final(12), attempt: "old" }), true);
    assert.equal(hub.get("r1")?.done, true);
  });

  it("returns null for unknown requests and evicts by TTL and by count", () => {
    let now = 0;
    const hub = new EventHub({ ttlMs: 100, maxTracked: 2, now: () => now });
    assert.equal(
      hub.follow("nope", null, () => {}),
      null,
    );
    hub.track("a", "c", "t");
    hub.track("b", "c", "t");
    hub.track("c", "c", "t");
    assert.equal(hub.size, 2);
    assert.equal(hub.has("a"), false, "the oldest request goes first");
    now = 101;
    assert.equal(hub.sweep(), 2);
    assert.equal(hub.size, 0);
  });

  it("wakes a lookup waiting for a request another replica accepted, or gives up", async () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    const waiting = hub.whenKnown("r1", 5000);
    hub.accept(start);
    assert.equal(await waiting, true);
    assert.equal(await hub.whenKnown("r1", 0), true, "known at once");
    assert.equal(await hub.whenKnown("r2", 20), false);
  });

  it("forgets a request whose publish failed", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.track("r1", "c1", "t");
    hub.forget("r1");
    assert.equal(hub.has("r1"), false);
  });
});
