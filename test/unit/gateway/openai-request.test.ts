import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../../../gateway/errors.js";
import { parseCompletionBody, toTurnRequest } from "../../../gateway/openai/request.js";

const parse = (body: Record<string, unknown>) => parseCompletionBody({ model: "m", ...body }, 1000);

function rejects(body: Record<string, unknown>, param: string | null, message: RegExp, conversationId: string | null = null): void {
  assert.throws(
    () => toTurnRequest(parse(body), "t", conversationId),
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
    {
      role: "user",
      content: [
        { type: "text", text: "Tell " },
        { type: "text", text: "me more." },
      ],
    },
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
    rejects({ messages: user, tools: [] }, "tools", /at least one tool/);
    rejects({ messages: user, n: 5 }, "n", /must be <= 4/);
    rejects({ messages: user, n: 2 }, "n", /not supported with X-Conversation-Id/, "conv-1");
    rejects({ messages: user, top_logprobs: 2 }, "top_logprobs", /needs logprobs: true/);
    rejects({ messages: user, logprobs: true, top_logprobs: 21 }, "top_logprobs", /must be <= 20/);
    rejects({ messages: user, logprobs: true, tools: [{ type: "function", function: { name: "f" } }] }, "logprobs", /cannot be combined with tools/);
    rejects({ messages: user, logit_bias: { "50256": -100 } }, "logit_bias", /logit_bias is not supported/);
    rejects({ messages: user, functions: [{ name: "f" }] }, "functions", /send tools/);
    rejects({ messages: user, max_tokens: 3, max_completion_tokens: 4 }, "max_completion_tokens", /disagree/);
    rejects({ messages: user, colour: "red" }, null, /Unrecognized key.*colour/);
    rejects({ messages: user, constructor: 1 }, null, /Unrecognized key.*constructor/);
    rejects({ messages: [{ role: "user", content: "y".repeat(1001) }] }, "messages.0.content", /at most 1000 characters/);
    rejects({ messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }, "messages.0.content", /string or an array of text parts/);
    const parts = Array.from({ length: 65 }, () => ({ type: "text", text: "x" }));
    rejects({ messages: [{ role: "user", content: parts }] }, "messages.0.content", /expected array to have <=64 items/);
    rejects({ messages: [{ role: "user", content: "" }] }, "messages", /must not be empty/);
    rejects({ messages: [{ role: "system", content: "x" }] }, "messages", /last message must be the user's/);
    assert.throws(() => parseCompletionBody({ messages: user }, 1000), /model: is required/);
  });

  it("accepts and ignores what common clients send unasked", () => {
    const input = parse({
      messages: [{ role: "user", content: "x" }],
      user: "u-1",
      metadata: { team: "a" },
      store: false,
      service_tier: "auto",
      prompt_cache_key: "k",
      safety_identifier: "s",
      logit_bias: {},
      logprobs: false,
      n: 1,
      response_format: { type: "text" },
    });
    assert.equal(toTurnRequest(input, "t", null).params, undefined, "none of them reaches the worker");
  });
});

describe("OpenAI sampling and output parameters", () => {
  const user = [{ role: "user", content: "x" }];

  it("carries logprobs as the record's alternatives per token, only with logprobs: true", () => {
    assert.deepEqual(toTurnRequest(parse({ messages: user, logprobs: true, top_logprobs: 2 }), "t", null).params, { logprobs: 2 });
    assert.deepEqual(toTurnRequest(parse({ messages: user, logprobs: true }), "t", null).params, { logprobs: 0 });
    assert.equal(toTurnRequest(parse({ messages: user, logprobs: false }), "t", null).params, undefined);
  });

  it("carries n (choices) in the record, but not the default n=1", () => {
    assert.deepEqual(toTurnRequest(parse({ messages: user, n: 4 }), "t", null).params, { n: 4 });
    assert.equal(toTurnRequest(parse({ messages: user, n: 1 }), "t", null).params, undefined);
  });

  it("carries stop, seed and the penalties in the record", () => {
    const turn = toTurnRequest(parse({ messages: user, stop: "\n\n", seed: -7, presence_penalty: 1.5, frequency_penalty: -0.5 }), "t", null);
    assert.deepEqual(turn.params, { stop: ["\n\n"], seed: -7, presence_penalty: 1.5, frequency_penalty: -0.5 });
    assert.deepEqual(toTurnRequest(parse({ messages: user, stop: ["a", "b"] }), "t", null).params, { stop: ["a", "b"] });
    rejects({ messages: user, stop: ["a", "b", "c", "d", "e"] }, "stop", /at most 4 stop texts/);
    rejects({ messages: user, stop: 5 }, "stop", /must be a string or an array of up to 4 strings/);
    rejects({ messages: user, stop: ["a", 1] }, "stop", /must be a string or an array of up to 4 strings/);
    rejects({ messages: user, stop: [""] }, "stop.0", /must not be empty/);
    rejects({ messages: user, presence_penalty: 2.5 }, "presence_penalty", /must be <= 2/);
    rejects({ messages: user, seed: 1.5 }, "seed", /must be an integer/);
  });

  it("normalizes a JSON schema and names the part no reply could be checked against", () => {
    const schema = {
      $schema: "http://json-schema.org/draft-07/schema#",
      type: "object",
      title: "Cat",
      properties: { name: { type: "string" }, colour: { anyOf: [{ const: "black" }, { type: "null" }] } },
      required: ["name", "colour"],
      additionalProperties: false,
    };
    const turn = toTurnRequest(
      parse({ messages: user, response_format: { type: "json_schema", json_schema: { name: "cat", schema, strict: true } } }),
      "t",
      null,
    );
    assert.deepEqual(turn.params?.response_format, {
      type: "json_schema",
      json_schema: {
        name: "cat",
        strict: true,
        schema: {
          type: "object",
          properties: { name: { type: "string" }, colour: { anyOf: [{ const: "black" }, { type: "null" }] } },
          required: ["name", "colour"],
          additionalProperties: false,
        },
      },
    });
    const remote = { type: "object", properties: { age: { $ref: "https://example.com/age.json" } } };
    rejects(
      { messages: user, response_format: { type: "json_schema", json_schema: { name: "p", schema: remote } } },
      "response_format.json_schema.schema.properties.age.$ref",
      /only references inside the schema are supported/,
    );
    rejects({ messages: user, response_format: { type: "xml" } }, "response_format.type", /"text", "json_object" or "json_schema"/);
    assert.deepEqual(toTurnRequest(parse({ messages: user, response_format: { type: "json_object" } }), "t", null).params, {
      response_format: { type: "json_object" },
    });
  });

  const weather = {
    type: "function",
    function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
  };

  it("carries tools and tool_choice, and checks that they agree", () => {
    const turn = toTurnRequest(parse({ messages: user, tools: [weather], tool_choice: "required", parallel_tool_calls: false }), "t", null);
    assert.deepEqual(turn.params, { tools: [weather], tool_choice: "required", parallel_tool_calls: false });
    rejects(
      { messages: user, tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } },
      "tool_choice",
      /"nope", which is not in tools/,
    );
    rejects({ messages: user, tool_choice: "required" }, "tool_choice", /needs tools/);
    rejects({ messages: user, tools: [weather, weather] }, "tools", /"get_weather" twice/);
    rejects({ messages: user, tools: [{ type: "function", function: { name: "bad name" } }] }, "tools.0.function.name", /letters, digits/);
    rejects({ messages: user, tools: [weather], response_format: { type: "json_object" } }, "response_format", /cannot be combined with tools/);
  });

  it("sends tool results back as context, ending the turn with them", () => {
    const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } };
    const messages = [
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: null, tool_calls: [call], refusal: null },
      { role: "tool", tool_call_id: "call_1", content: [{ type: "text", text: "sunny" }] },
    ];
    const turn = toTurnRequest(parse({ messages, tools: [weather] }), "t", null);
    assert.equal(turn.content, "", "no new user message: the model answers the tool results");
    assert.deepEqual(turn.context, [
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: "", tool_calls: [call] },
      { role: "tool", content: "sunny", tool_call_id: "call_1" },
    ]);
    rejects({ messages: [...messages.slice(0, 1), { role: "tool", tool_call_id: "call_9", content: "x" }] }, "messages.1.tool_call_id", /answers no tool call/);
    rejects({ messages: [{ role: "tool", content: "x" }] }, "messages.0.tool_call_id", /required on a tool message/);
    // With memory: the trailing tool results are the turn's news; the server has the rest.
    const remembered = toTurnRequest(parse({ messages, tools: [weather] }), "t", "conv-1");
    assert.equal(remembered.content, "");
    assert.equal(remembered.context, undefined);
    assert.deepEqual(remembered.tool_results, [{ tool_call_id: "call_1", content: "sunny" }]);
    assert.deepEqual(remembered.params, { tools: [weather] });
  });
});
