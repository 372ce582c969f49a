import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatEvent, StopReason } from "../../../contracts/records/events.js";
import type { RequestSnapshot } from "../../../gateway/event-hub.js";
import { requestStatus } from "../../../gateway/request-status.js";

const base = { v: 1 as const, request_id: "r1", conversation_id: "c1", tenant: "t", attempt: "a1", at: 0 };
const start: ChatEvent = { ...base, seq: 0, type: "start", worker_id: "w1" };
const delta = (seq: number, text: string): ChatEvent => ({ ...base, seq, type: "delta", text });
const usage = { prompt_tokens: 5, cached_prompt_tokens: 0, completion_tokens: 2 };
const timings = { queue_wait_ms: 1, time_to_first_token_ms: 2, generation_ms: 3 };
const final = (stop_reason: StopReason, reply = "ab"): ChatEvent => ({ ...base, seq: 3, type: "final", reply, stop_reason, usage, timings });
const snapshot = (events: ChatEvent[]): RequestSnapshot => ({
  conversationId: "c1",
  tenant: "t",
  attempt: "a1",
  events,
  done: false,
  partition: null,
  traceparent: null,
});

describe("request status", () => {
  it("is queued before the start event, running with the text so far after it", () => {
    assert.equal(requestStatus("r1", snapshot([])).status, "queued");
    const running = requestStatus("r1", snapshot([start, delta(1, "a"), delta(2, "b")]));
    assert.deepEqual([running.status, running.reply, running.worker_id, running.stop_reason], ["running", "ab", "w1", null]);
  });

  it("is completed, cancelled or failed by the terminal event", () => {
    for (const [reason, status] of [
      ["stop", "completed"],
      ["length", "completed"],
      ["cancelled", "cancelled"],
      ["error", "failed"],
    ] as const) {
      const s = requestStatus("r1", snapshot([start, delta(1, "a"), final(reason, "a")]));
      assert.equal(s.status, status, reason);
      assert.equal(s.stop_reason, reason);
      assert.deepEqual(s.usage, usage);
      assert.deepEqual(s.timings, timings);
    }
    const error: ChatEvent = { ...base, seq: 1, type: "error", code: "not_found", message: "no conversation c1", retryable: false };
    const failed = requestStatus("r1", snapshot([start, error]));
    assert.equal(failed.status, "failed");
    assert.deepEqual(failed.error, { code: "not_found", message: "no conversation c1", retryable: false });
  });

  it("shows a reply's tool calls and choices when it has some, and nothing extra otherwise", () => {
    const call = { id: "call_1", type: "function" as const, function: { name: "f", arguments: "{}" } };
    const withCall = requestStatus("r1", snapshot([start, { ...final("tool_calls", ""), tool_calls: [call] } as ChatEvent]));
    assert.equal(withCall.status, "completed");
    assert.deepEqual(withCall.tool_calls, [call]);
    const choices = [
      { index: 0, reply: "a", stop_reason: "stop" as const },
      { index: 1, reply: "b", stop_reason: "length" as const },
    ];
    assert.deepEqual(requestStatus("r1", snapshot([start, { ...final("stop", "a"), choices } as ChatEvent])).choices, choices);
    const plain = requestStatus("r1", snapshot([start, final("stop", "a")]));
    assert.ok(!("tool_calls" in plain) && !("choices" in plain));
  });

  it("takes the final reply over the deltas (a re-announced final comes alone)", () => {
    assert.equal(requestStatus("r1", snapshot([final("stop", "whole reply")])).reply, "whole reply");
  });
});
