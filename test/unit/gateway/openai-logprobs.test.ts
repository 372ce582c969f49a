import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatEvent, TokenLogprob } from "../../../contracts/records/events.js";
import { chatLogprobs, gatheredLogprobs } from "../../../gateway/openai/logprobs.js";

const tok = (token: string, top: string[] = []): TokenLogprob => ({ token, logprob: -0.5, top_logprobs: top.map((t) => ({ token: t, logprob: -1 })) });
const base = { v: 1 as const, request_id: "r", conversation_id: "c", tenant: "t", attempt: "a", at: 0 };
const delta = (seq: number, text: string, logprobs?: TokenLogprob[], choice?: number): ChatEvent => ({
  ...base,
  seq,
  type: "delta",
  text,
  ...(logprobs ? { logprobs } : {}),
  ...(choice === undefined ? {} : { choice }),
});

describe("OpenAI logprobs", () => {
  it("gives each token's and each alternative's UTF-8 bytes", () => {
    const lp = chatLogprobs([tok("é", ["a"]), tok(" x")]);
    assert.deepEqual(lp.content[0], { token: "é", logprob: -0.5, bytes: [0xc3, 0xa9], top_logprobs: [{ token: "a", logprob: -1, bytes: [97] }] });
    assert.deepEqual(lp.content[1]!.bytes, [32, 120]);
    assert.equal(lp.refusal, null);
  });

  it("gathers a choice's tokens from the deltas when they make up the reply, else null", () => {
    const events = [
      { ...base, seq: 0, type: "start", worker_id: "w" } as ChatEvent,
      delta(1, "Hi", [tok("Hi")]),
      delta(2, "Yo", [tok("Yo")], 1),
      delta(3, " there", [tok(" the"), tok("re")]),
    ];
    assert.deepEqual(
      gatheredLogprobs(events, 0, "Hi there")?.map((t) => t.token),
      ["Hi", " the", "re"],
    );
    assert.deepEqual(
      gatheredLogprobs(events, 1, "Yo")?.map((t) => t.token),
      ["Yo"],
    );
    assert.equal(gatheredLogprobs(events, 0, "Hi there, more"), null, "a final re-announced with text the deltas lack");
    assert.equal(gatheredLogprobs([delta(1, "Hi")], 0, "Hi"), null, "deltas without logprobs");
  });
});
