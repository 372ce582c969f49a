import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatEvent } from "../../../contracts/records/events.js";
import { KafkaLlmError } from "../../../contracts/errors.js";
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

  it("names the open of a tenant's conversation that has not been applied, and no other tenant's", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.track("r1", "c1", "t", undefined, true);
    hub.observe("r2", "c1", "t");
    hub.observe("r3", "c1", "other", undefined, true);
    hub.track("r4", "c2", "t");
    assert.equal(hub.pendingOpen("t", "c1"), "r1");
    assert.equal(hub.pendingOpen("other", "c1"), "r3");
    assert.equal(hub.pendingOpen("t", "c2"), undefined, "a turn is not an open");
    hub.accept({ ...base, request_id: "r1", seq: 0, type: "start", worker_id: "w" });
    hub.accept({ ...final(1), request_id: "r1" });
    assert.equal(hub.pendingOpen("t", "c1"), undefined, "an applied open is not pending");
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
    hub.observe("a", "c", "t");
    hub.observe("b", "c", "t");
    hub.observe("c", "c", "t");
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

  it("claims a request's partition while a listener follows it and releases it when the request ends or the listener stops", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    const claims: string[] = [];
    hub.onFollow = (id, snapshot) => {
      claims.push(`+${id}@${snapshot.partition}`);
      return () => claims.push(`-${id}`);
    };
    hub.track("r1", "c1", "t", 3);
    hub.track("r1", "c1", "t", 5);
    assert.equal(hub.get("r1")?.partition, 3, "the partition first known is kept");
    const stop = hub.follow("r1", null, () => {})!;
    hub.follow("r1", null, () => {});
    assert.deepEqual(claims, ["+r1@3", "+r1@3"]);
    stop();
    stop();
    assert.deepEqual(claims, ["+r1@3", "+r1@3", "-r1"], "a stop releases its claim once");
    hub.accept(start, 3);
    hub.accept(final(1), 3);
    assert.deepEqual(claims, ["+r1@3", "+r1@3", "-r1", "-r1"], "the final releases the claims still held");
    hub.follow("r1", null, () => {});
    assert.equal(claims.length, 4, "following a request that is done claims nothing");
  });

  it("takes the partition an event was read from", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.accept(start, 2);
    assert.equal(hub.get("r1")?.partition, 2);
  });

  it("never hands a resumed follower an event it had, when the events are read only after it resumed", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.track("r1", "c1", "t");
    const seen: number[] = [];
    // Known from chat.requests only: this replica starts reading the request's partition now.
    hub.follow("r1", { seq: 2, attempt: "a1" }, (e) => seen.push(e.seq));
    for (const e of [start, delta(1, "a"), delta(2, "b"), delta(3, "c"), final(4)]) hub.accept(e);
    assert.deepEqual(seen, [3, 4]);
  });

  it("hands a resumed follower every event of a newer attempt", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    hub.track("r1", "c1", "t");
    const seen: string[] = [];
    hub.follow("r1", { seq: 2, attempt: "a1" }, (e) => seen.push(`${e.attempt}:${e.seq}`));
    const again = { ...base, attempt: "a2" };
    hub.accept({ ...again, seq: 0, type: "start", worker_id: "w2" });
    hub.accept({ ...again, seq: 1, type: "delta", text: "z" });
    assert.deepEqual(seen, ["a2:0", "a2:1"]);
  });
});

/** An error the hub threw, by code. */
function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof KafkaLlmError) return `${err.code}: ${err.message}`;
    throw err;
  }
  return "admitted";
}

const finalOf = (requestId: string, tenant: string): ChatEvent => ({ ...final(0), request_id: requestId, tenant });

describe("EventHub bounds", () => {
  it("never drops a followed request, however many others arrive", () => {
    const hub = new EventHub({ ttlMs: 60_000, maxTracked: 3 });
    hub.observe("followed", "c", "a");
    const seen: string[] = [];
    hub.follow("followed", null, (e) => seen.push(e.type));
    for (let i = 0; i < 50; i++) hub.observe(`b${i}`, `c${i}`, "b");
    assert.equal(hub.has("followed"), true);
    assert.equal(hub.size, 3, "the others are dropped oldest first");
    assert.deepEqual([hub.has("b47"), hub.has("b48"), hub.has("b49")], [false, true, true]);
    hub.accept(finalOf("followed", "a"));
    assert.deepEqual(seen, ["final"], "its follower gets its end");
    assert.equal(hub.listenerCount, 0);
  });

  it("keeps a tenant's flood to its own share: b's requests push out only b's", () => {
    const hub = new EventHub({ ttlMs: 60_000, maxTracked: 30, maxPerTenant: 8 });
    for (let i = 0; i < 5; i++) hub.observe(`a${i}`, `c${i}`, "a"); // nobody follows these
    for (let i = 0; i < 80; i++) hub.observe(`b${i}`, `c${i}`, "b");
    assert.equal(hub.tenantSize("a"), 5, "none of a's was dropped");
    assert.equal(hub.tenantSize("b"), 8);
    assert.equal(hub.has("b79"), true);
    assert.equal(hub.has("b71"), false);
  });

  it("refuses a tenant's new request with rate_limited when its share is all in flight, and takes it once one ended", () => {
    let now = 0;
    const hub = new EventHub({ ttlMs: 60_000, maxTracked: 30, maxPerTenant: 3, pinMs: 10_000, now: () => now });
    hub.track("a0", "c", "a");
    for (let i = 0; i < 3; i++) hub.track(`b${i}`, `c${i}`, "b");
    const refused = refusal(() => hub.track("b3", "c3", "b"));
    assert.match(refused, /^rate_limited: tenant b has 3 requests in flight or followed.*MAX_TRACKED_REQUESTS_PER_TENANT=3/);
    assert.equal(hub.has("b3"), false);
    assert.equal(
      refusal(() => hub.track("a1", "c", "a")),
      "admitted",
      "another tenant is not refused",
    );
    hub.accept(finalOf("b1", "b"));
    assert.equal(
      refusal(() => hub.track("b3", "c3", "b")),
      "admitted",
    );
    assert.deepEqual(
      ["b0", "b1", "b2", "b3"].map((id) => hub.has(id)),
      [true, false, true, true],
      "the one that ended made room",
    );
    assert.equal(
      refusal(() => hub.track("b3", "c3", "b")),
      "admitted",
      "a request already held is never refused",
    );
    now = 10_001;
    assert.equal(
      refusal(() => hub.track("b4", "c4", "b")),
      "admitted",
      "past the deadline an unfollowed request is no longer held for its client",
    );
    assert.equal(hub.tenantSize("b"), 3);
  });

  it("holds a followed request past the deadline, and refuses a tenant whose share is all followed", () => {
    let now = 0;
    const hub = new EventHub({ ttlMs: 60_000, maxTracked: 30, maxPerTenant: 2, pinMs: 1000, now: () => now });
    hub.track("b0", "c0", "b");
    hub.track("b1", "c1", "b");
    hub.follow("b0", null, () => {});
    hub.follow("b1", null, () => {});
    now = 5000;
    assert.match(
      refusal(() => hub.track("b2", "c2", "b")),
      /^rate_limited/,
    );
    hub.observe("b3", "c3", "b");
    assert.deepEqual(
      ["b0", "b1", "b3"].map((id) => hub.has(id)),
      [true, true, true],
      "one read from chat.requests is held, past the share",
    );
    hub.observe("b4", "c4", "b");
    assert.deepEqual(
      ["b3", "b4"].map((id) => hub.has(id)),
      [false, true],
      "and dropped for the next",
    );
  });

  it("refuses with overloaded when every request held is needed, and drops from the largest tenant when over the bound", () => {
    const hub = new EventHub({ ttlMs: 60_000, maxTracked: 4, maxPerTenant: 3 });
    hub.track("a0", "c", "a");
    hub.track("b0", "c", "b");
    hub.track("c0", "c", "c");
    hub.track("d0", "c", "d");
    assert.match(
      refusal(() => hub.track("e0", "c", "e")),
      /^overloaded: this gateway holds 4 requests.*MAX_TRACKED_REQUESTS=4/,
    );
    hub.accept(finalOf("c0", "c"));
    assert.equal(
      refusal(() => hub.track("e0", "c", "e")),
      "admitted",
    );
    assert.equal(hub.has("c0"), false);

    const mixed = new EventHub({ ttlMs: 60_000, maxTracked: 4, maxPerTenant: 3 });
    mixed.observe("a0", "c", "a");
    mixed.observe("b0", "c", "b");
    mixed.observe("b1", "c", "b");
    mixed.observe("b2", "c", "b");
    mixed.observe("c0", "c", "c");
    assert.deepEqual(
      ["a0", "b0", "b1", "c0"].map((id) => mixed.has(id)),
      [true, false, true, true],
      "the largest tenant's oldest goes",
    );
  });

  it("forgets a request with its tenant's count and its claims", () => {
    const hub = new EventHub({ ttlMs: 1000, maxTracked: 10 });
    let held = 0;
    hub.onFollow = () => {
      held++;
      return () => held--;
    };
    hub.track("r1", "c1", "t");
    hub.follow("r1", null, () => {});
    hub.forget("r1");
    assert.deepEqual([hub.has("r1"), hub.tenantSize("t"), held], [false, 0, 0]);
  });
});
