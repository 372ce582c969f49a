import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FinalEvent, MemoryMessage } from "../../../contracts/records.js";
import { applyTurn, newConversation, promptFor, trimToBudget } from "../../../worker/conversation.js";

const final = { type: "final", stop_reason: "tool_calls" } as FinalEvent;
const call = { id: "call_1", type: "function" as const, function: { name: "get_weather", arguments: '{"city":"Rome"}' } };
const words = (text: string) => text.split(/\s+/).filter(Boolean).length;

describe("a conversation's tool calls and results", () => {
  it("remembers a reply's calls, then the results that answer them, and prompts with both", () => {
    let state = newConversation("c", "t", 1);
    state = applyTurn(state, { requestId: "r1", userContent: "Weather in Rome?", reply: "", final, now: 2, toolCalls: [call] }, 1000, words);
    state = applyTurn(
      state,
      { requestId: "r2", userContent: "", reply: "It rains.", final, now: 3, toolResults: [{ tool_call_id: "call_1", content: "Rainy." }] },
      1000,
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
      trimToBudget(messages, 3, words).map((m) => m.role),
      ["assistant", "user"],
    );
  });
});
