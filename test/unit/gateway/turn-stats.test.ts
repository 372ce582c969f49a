import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatEvent } from "../../../contracts/records/events.js";
import { TurnStats } from "../../../gateway/turn-stats.js";

const final = (
  at: number,
  generationMs: number,
  extra: Partial<{ stop_reason: "stop" | "length" | "cancelled" | "error"; completion_tokens: number }> = {},
): ChatEvent => ({
  v: 1,
  request_id: `r${at}`,
  conversation_id: "c",
  tenant: "t",
  attempt: "a",
  seq: 2,
  at,
  type: "final",
  reply: "x",
  stop_reason: extra.stop_reason ?? "stop",
  usage: { prompt_tokens: 1, cached_prompt_tokens: 0, completion_tokens: extra.completion_tokens ?? 5 },
  timings: { queue_wait_ms: 1000, time_to_first_token_ms: 1, generation_ms: generationMs },
});

describe("recent turn duration", () => {
  it("is the mean generation time of the turns in the window, 0 before any", () => {
    let now = 10_000;
    const stats = new TurnStats({ windowMs: 1000, now: () => now });
    assert.equal(stats.meanSeconds(), 0);
    stats.record(final(9_500, 1000));
    stats.record(final(9_800, 3000));
    assert.equal(stats.meanSeconds(), 2, "queue wait does not count");
    assert.equal(stats.count(), 2);
    now = 10_600;
    assert.equal(stats.meanSeconds(), 3, "the older turn left the window");
    now = 20_000;
    assert.equal(stats.count(), 0);
    assert.equal(stats.meanSeconds(), 3, "with no recent turn the last mean stays (scaled to zero)");
  });

  it("ignores finals that generated nothing or did not end normally, and other events", () => {
    const stats = new TurnStats({ windowMs: 60_000, now: () => 1000 });
    stats.record(final(900, 500, { completion_tokens: 0 })); // open / delete
    stats.record(final(900, 500, { stop_reason: "cancelled" }));
    stats.record(final(900, 500, { stop_reason: "error" }));
    stats.record({ v: 1, request_id: "r", conversation_id: "c", tenant: "t", attempt: "a", seq: 0, at: 900, type: "start", worker_id: "w" });
    assert.equal(stats.count(), 0);
    stats.record(final(900, 2000, { stop_reason: "length" }));
    assert.equal(stats.meanSeconds(), 2);
  });

  it("orders look-back replays that arrive out of order across partitions", () => {
    let now = 10_000;
    const stats = new TurnStats({ windowMs: 1000, now: () => now });
    stats.record(final(9_900, 1000));
    stats.record(final(9_100, 5000));
    now = 10_500;
    assert.equal(stats.meanSeconds(), 1, "the turn at 9100 left the window even though it arrived last");
  });
});
