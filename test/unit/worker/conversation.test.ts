import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FinalEvent } from "../../../contracts/records/events.js";
import type { MemoryMessage } from "../../../contracts/records/memory.js";
import { loadWorkerConfig } from "../../../contracts/config/worker.js";
import { applyTurn, newConversation, promptFor, trimToBudget, turnHistory, type AppliedContext, type MemoryBudget } from "../../../worker/conversation.js";

const final = { type: "final", stop_reason: "tool_calls" } as FinalEvent;
const call = { id: "call_1", type: "function" as const, function: { name: "get_weather", arguments: '{"city":"Rome"}' } };
const words = (text: string) => text.split(/\s+/).filter(Boolean).length;
const fits = (maxTokens: number): MemoryBudget => ({ maxTokens, trimToTokens: maxTokens });
/** Where a turn's events are: not what these tests look at. */
const applied: AppliedContext = { events: { partition: 0, offset: 0 }, finalAt: () => undefined };

describe("a conversation's tool calls and results", () => {
  it("remembers a reply's calls, then the results that answer them, and prompts with both", () => {
    let state = newConversation("c", "t", 1);
    state = applyTurn(state, { requestId: "r1", userContent: "Weather in Rome?", reply: "", final, now: 2, toolCalls: [call], applied }, fits(1000), words);
    state = applyTurn(
      state,
      { requestId: "r2", userContent: "", reply: "It rains.", final, now: 3, toolResults: [{ tool_call_id: "call_1", content: "Rainy." }], applied },
      fits(1000),
      words,
    );
    assert.deepEqual(
      state.messages.map((m) => [m.role, m.content, m.tool_calls?.[0]?.id ?? m.tool_call_id ?? null]),
      [
        ["user", "Weather in Rome?", null],
        ["assistant", "", "call_1"],
        ["tool", "Rainy.", "call_1"],
        ["assistant", "It rains.", null],
      ],
    );
    const prompt = promptFor(state, "", "sys", [{ tool_call_id: "call_2", content: "x" }]);
    assert.deepEqual(
      prompt.map((m) => m.role),
      ["system", "user", "assistant", "tool", "assistant", "tool"],
      "no empty user message after tool results",
    );
    assert.deepEqual(prompt[2]!.tool_calls, [call]);
  });

  it("puts a turn's prelude (a Responses input's earlier items) before its news, in memory and history; not when it failed", () => {
    const prelude = [
      { role: "user" as const, content: "Weather in Rome?" },
      { role: "assistant" as const, content: "", tool_calls: [call] },
      { role: "tool" as const, content: "Rainy.", tool_call_id: "call_1" },
    ];
    const turn = {
      requestId: "r1",
      userContent: "And tomorrow?",
      reply: "Sun.",
      final: { ...final, stop_reason: "stop" } as FinalEvent,
      now: 2,
      prelude,
      applied,
    };
    const state = applyTurn(newConversation("c", "t", 1), turn, fits(1000), words);
    assert.deepEqual(
      state.messages.map((m) => [m.role, m.content, m.request_id]),
      [
        ["user", "Weather in Rome?", "r1"],
        ["assistant", "", "r1"],
        ["tool", "Rainy.", "r1"],
        ["user", "And tomorrow?", "r1"],
        ["assistant", "Sun.", "r1"],
      ],
    );
    assert.deepEqual(state.messages[1]!.tool_calls, [call]);
    // The history keeps the text: the call and its result stay in the memory only.
    assert.deepEqual(
      turnHistory(undefined, turn).map((m) => [m.role, m.content]),
      [
        ["user", "Weather in Rome?"],
        ["user", "And tomorrow?"],
        ["assistant", "Sun."],
      ],
    );
    const failed = { ...turn, final: { type: "error" } as never };
    assert.deepEqual(applyTurn(newConversation("c", "t", 1), failed, fits(1000), words).messages, []);
    assert.deepEqual(turnHistory(undefined, failed), []);
  });

  it("never leaves tool results at the front once their call is trimmed away", () => {
    const at = 1;
    const messages: MemoryMessage[] = [
      { role: "user", content: "one two three", at },
      { role: "assistant", content: "", tool_calls: [call], at },
      { role: "tool", content: "four five", tool_call_id: "call_1", at },
      { role: "assistant", content: "six", at },
      { role: "user", content: "seven", at },
    ];
    assert.deepEqual(
      trimToBudget(messages, fits(3), words).map((m) => m.role),
      ["assistant", "user"],
    );
  });
});

describe("the memory budget's low watermark", () => {
  const budget: MemoryBudget = { maxTokens: 20, trimToTokens: 10 };
  /** One turn: a 2-word question and a 3-word reply (5 tokens). */
  const turn = (state: ReturnType<typeof newConversation>, i: number) =>
    applyTurn(state, { requestId: `r${i}`, userContent: `question ${i}`, reply: `reply number ${i}`, final, now: i, applied }, budget, words);
  const tokens = (state: ReturnType<typeof newConversation>) => state.messages.reduce((a, m) => a + words(m.content), 0);

  it("keeps every message while they fit the budget, then drops to the watermark in one go", () => {
    let state = newConversation("c", "t", 0);
    for (let i = 1; i <= 4; i++) state = turn(state, i);
    assert.equal(tokens(state), 20, "4 turns fit 20 tokens exactly: nothing dropped");
    state = turn(state, 5);
    assert.equal(tokens(state), 10, "the fifth overflows: down to the watermark, not just below the budget");
    assert.deepEqual(
      state.messages.map((m) => m.content),
      ["question 4", "reply number 4", "question 5", "reply number 5"],
    );
  });

  it("keeps the remembered prefix the same between trims, and never carries more than the budget", () => {
    let state = newConversation("c", "t", 0);
    let trims = 0;
    for (let i = 1; i <= 40; i++) {
      const before = state.messages;
      state = turn(state, i);
      assert.ok(tokens(state) <= budget.maxTokens, `turn ${i}: ${tokens(state)} tokens remembered, over the budget`);
      if (before.every((m, k) => state.messages[k] === m)) continue; // prefix unchanged: only appended
      trims++;
      assert.equal(tokens(state), budget.trimToTokens, `turn ${i}: a trim goes down to the watermark`);
    }
    // 5 tokens a turn: from 10 to 20 takes 2 turns, the third overflows; 40 turns trim
    // about a third of the time, where trimming just to fit would trim on every turn from the 5th.
    assert.ok(trims >= 11 && trims <= 13, `${trims} trims in 40 turns`);
    let tight = newConversation("c", "t", 0);
    let tightTrims = 0;
    for (let i = 1; i <= 40; i++) {
      const before = tight.messages.length;
      tight = applyTurn(tight, { requestId: `r${i}`, userContent: `question ${i}`, reply: `reply number ${i}`, final, now: i, applied }, fits(20), words);
      if (tight.messages.length <= before) tightTrims++;
    }
    assert.equal(tightTrims, 36, "trimming just to fit changes the prefix on every turn once full");
  });

  it("drops a question and its answer together even when that goes below the watermark", () => {
    const at = 1;
    const messages: MemoryMessage[] = [
      { role: "user", content: "a b c d e f", at },
      { role: "assistant", content: "g h i j k l", at },
      { role: "user", content: "m n", at },
      { role: "assistant", content: "o p q r s t u v w", at },
    ];
    assert.deepEqual(
      trimToBudget(messages, { maxTokens: 20, trimToTokens: 12 }, words).map((m) => m.content),
      ["m n", "o p q r s t u v w"],
    );
  });

  it("keeps the newest exchange when it fits the budget, even when it alone passes the watermark", () => {
    const at = 1;
    const messages: MemoryMessage[] = [
      { role: "user", content: "a b c", at },
      { role: "assistant", content: "d e f", at },
      { role: "user", content: "g h i j k l", at },
      { role: "assistant", content: "m n o p q r s", at },
    ];
    assert.deepEqual(
      trimToBudget(messages, { maxTokens: 15, trimToTokens: 7 }, words).map((m) => m.content),
      ["g h i j k l", "m n o p q r s"],
    );
    assert.deepEqual(trimToBudget(messages, { maxTokens: 12, trimToTokens: 6 }, words), [], "nothing is kept that passes the budget");
  });

  it("comes from MEMORY_MAX_TOKENS and MEMORY_TRIM_TO_PERCENT, validated", () => {
    const memory = loadWorkerConfig({ MODEL: "m.gguf", WORKER_HTTP_HOST: "127.0.0.1" }).memory;
    assert.deepEqual([memory.maxTokens, memory.trimToTokens], [300, 150]);
    const custom = loadWorkerConfig({ MODEL: "m.gguf", WORKER_HTTP_HOST: "127.0.0.1", MEMORY_MAX_TOKENS: "1000", MEMORY_TRIM_TO_PERCENT: "100" }).memory;
    assert.equal(custom.trimToTokens, 1000, "100 trims just to fit");
    assert.throws(() => loadWorkerConfig({ MODEL: "m.gguf", MEMORY_TRIM_TO_PERCENT: "0" }), /MEMORY_TRIM_TO_PERCENT: must be >= 1/);
    assert.throws(() => loadWorkerConfig({ MODEL: "m.gguf", MEMORY_TRIM_TO_PERCENT: "101" }), /MEMORY_TRIM_TO_PERCENT: must be <= 100/);
  });
});
