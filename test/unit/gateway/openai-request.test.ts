import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../../../gateway/errors.js";
import { parseCompletionBody, toTurnRequest } from "../../../gateway/openai/request.js";

const parse = (body: Record<string, unknown>) => parseCompletionBody({ model: "m", ...body }, 1000);

function rejects(body: Record<string, unknown>, param: string | null, message: RegExp): void {
  assert.throws(
    () => toTurnRequest(parse(body), "t", null),
    (err: unknown) => {
      assert.ok(err instanceof ApiError, String(err));
      assert.equal(err.code, "invalid_request");
      assert.equal(err.param, param, JSON.stringify(body));
      assert.match(err.message, message);
      return true;
    },
  );
}

describe("OpenAI chat completion bodies", () => {
  const messages = [
    { role: "developer", content: "Be kind." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
    { role: "user", content: [{ type: "text", text: "Tell " }, { type: "text", text: "me more." }] },
  ];

  it("makes a stateless turn: the messages before the last are the context, the last is the content", () => {
    const turn = toTurnRequest(parse({ messages, max_completion_tokens: 12, temperature: 0.5, top_k: 40 }), "acme", null);
    assert.equal(turn.type, "turn");
    assert.equal(turn.tenant, "acme");
    assert.match(turn.conversation_id, /^[0-9a-f-]{36}$/, "a throwaway conversation of its own");
    assert.equal(turn.content, "Tell me more.");
    assert.deepEqual(turn.context, [
      { role: "system", content: "Be kind." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
    ]);
    assert.deepEqual(turn.params, { max_tokens: 12, temperature: 0.5, top_k: 40 });
    assert.equal(turn.system, undefined);
  });

  it("uses server-side memory with a conversation id: the last user message, the system prompt, no context", () => {
    const turn = toTurnRequest(parse({ messages, max_tokens: 5 }), "acme", "conv-1");
    assert.equal(turn.conversation_id, "conv-1");
    assert.equal(turn.content, "Tell me more.");
    assert.equal(turn.system, "Be kind.");
    assert.equal(turn.context, undefined);
    assert.deepEqual(turn.params, { max_tokens: 5 });
  });

  it("knows streaming and usage options, and null for absent parameters", () => {
    const input = parse({ messages: [{ role: "user", content: "x" }], stream: true, stream_options: { include_usage: true }, temperature: null, n: 1 });
    assert.equal(input.stream, true);
    assert.equal(input.includeUsage, true);
    assert.equal(toTurnRequest(input, "t", null).params, undefined);
  });

  it("refuses what it cannot honour, naming the parameter", () => {
    const user = [{ role: "user", content: "x" }];
    rejects({ messages: user, tools: [] }, "tools", /tool calling is not supported/);
    rejects({ messages: user, seed: 1 }, "seed", /seeded sampling/);
    rejects({ messages: user, n: 3 }, "n", /only n=1/);
    rejects({ messages: user, logprobs: true }, "logprobs", /logprobs are not supported/);
    rejects({ messages: user, max_tokens: 3, max_completion_tokens: 4 }, "max_completion_tokens", /disagree/);
    rejects({ messages: user, colour: "red" }, null, /Unrecognized key.*colour/);
    rejects({ messages: user, constructor: 1 }, null, /Unrecognized key.*constructor/);
    rejects({ messages: [{ role: "user", content: "y".repeat(1001) }] }, "messages.0.content", /at most 1000 characters/);
    rejects({ messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }, "messages.0.content", /string or an array of text parts/);
    rejects({ messages: [{ role: "user", content: "" }] }, "messages", /must not be empty/);
    rejects({ messages: [{ role: "system", content: "x" }] }, "messages", /last message must be the user's/);
    assert.throws(() => parseCompletionBody({ messages: user }, 1000), /model: is required/);
  });
});
