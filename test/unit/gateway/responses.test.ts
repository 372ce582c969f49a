/**
 * The Responses API's pure parts: response ids (what any replica finds a response by),
 * input items as a turn's messages, and the stream made from chat events (numbered the
 * same wherever it is made, so a resumed stream goes on where it stopped).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatEvent } from "../../../contracts/records/events.js";
import { ApiError } from "../../../gateway/errors.js";
import { parseResponseId, responseId } from "../../../gateway/openai/response-id.js";
import { ResponseStreamBuilder, defaultBase, stateOfEvents } from "../../../gateway/openai/responses-object.js";
import { checkToolOutputs, parseResponsesBody, splitNews } from "../../../gateway/openai/responses-request.js";

const REQ = "0b7c4a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c";
const CONV = "a1b2c3d4-e5f6-4789-8abc-def012345678";

describe("response ids", () => {
  it("name the request and the conversation, for each kind, and nothing else", () => {
    for (const ref of [
      { kind: "stateless", requestId: REQ } as const,
      { kind: "chain", requestId: REQ, conversationId: CONV } as const,
      { kind: "named", requestId: REQ, conversationId: "my.conversation:1" } as const,
    ]) {
      const id = responseId(ref);
      assert.match(id, /^resp_[ncx]/);
      assert.deepEqual(parseResponseId(id), ref);
    }
    for (const bad of [
      "",
      "resp_",
      "resp_q" + "0".repeat(32),
      "resp_n" + "0".repeat(31),
      "resp_c" + "0".repeat(63),
      "chatcmpl-1",
      "resp_x" + "0".repeat(32) + "a=",
      "resp_x" + "0".repeat(32),
    ])
      assert.equal(parseResponseId(bad), null, bad);
  });
});

describe("Responses request bodies", () => {
  const parse = (body: Record<string, unknown>) => parseResponsesBody({ model: "m", ...body }, 1000);

  it("takes a string input as one user message, and instructions and developer messages as the system prompt", () => {
    assert.deepEqual(parse({ input: "Hi" }).messages, [{ role: "user", content: "Hi" }]);
    const p = parse({
      instructions: "Be brief.",
      input: [
        { role: "developer", content: "Speak French." },
        { role: "user", content: [{ type: "input_text", text: "Hi" }] },
      ],
    });
    assert.equal(p.system, "Be brief.\n\nSpeak French.");
    assert.deepEqual(p.messages, [{ role: "user", content: "Hi" }]);
    assert.equal(p.store, true);
  });

  it("joins function calls to the assistant message before them, and makes outputs tool messages", () => {
    const p = parse({
      input: [
        { role: "user", content: "Weather?" },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "Let me look.", annotations: [] }] },
        { type: "function_call", call_id: "c1", name: "w", arguments: "{}" },
        { type: "function_call", call_id: "c2", name: "w", arguments: "{}" },
        { type: "reasoning", id: "rs", summary: [] },
        { type: "function_call_output", call_id: "c1", output: "sun" },
        { type: "function_call_output", call_id: "c2", output: "rain" },
      ],
    });
    assert.deepEqual(
      p.messages.map((m) => [m.role, m.content, m.tool_calls?.map((c) => c.id) ?? null, m.tool_call_id ?? null]),
      [
        ["user", "Weather?", null, null],
        ["assistant", "Let me look.", ["c1", "c2"], null],
        ["tool", "sun", null, "c1"],
        ["tool", "rain", null, "c2"],
      ],
    );
    const news = splitNews(p.messages);
    assert.equal(news.before.length, 2);
    assert.deepEqual(news.toolResults, [
      { tool_call_id: "c1", content: "sun" },
      { tool_call_id: "c2", content: "rain" },
    ]);
    checkToolOutputs(p.messages);
    assert.throws(() => checkToolOutputs(p.messages.slice(2)), /call_id "c1" answers no function_call/);
  });

  it("offers function tools in the record's shape and leaves hosted tools out, saying which", () => {
    const p = parse({
      input: "x",
      tools: [
        { type: "function", name: "w", parameters: { type: "object", properties: {} } },
        { type: "web_search" },
        { type: "file_search", vector_store_ids: [] },
      ],
      tool_choice: { type: "function", name: "w" },
    });
    assert.deepEqual(p.params?.tools, [{ type: "function", function: { name: "w", parameters: { type: "object", properties: {} } } }]);
    assert.deepEqual(p.params?.tool_choice, { type: "function", function: { name: "w" } });
    assert.deepEqual(p.leftOut, ["web_search", "file_search"]);
    // Only hosted tools: nothing is offered, and "required" has nothing to require.
    const hostedOnly = parse({ input: "x", tools: [{ type: "web_search" }], tool_choice: "required" });
    assert.equal(hostedOnly.params, undefined);
  });

  it("refuses what it cannot honour, naming the field", () => {
    const refused: Array<[Record<string, unknown>, RegExp]> = [
      [{ input: "x", prompt: { id: "p" } }, /^prompt: /],
      [{ input: "x", background: true, store: false }, /^background: /],
      [{ input: "x", previous_response_id: "resp_n1", conversation: "c" }, /previous_response_id and conversation/],
      [{ input: "x", include: ["message.output_text.logprobs"], tools: [{ type: "function", name: "f" }] }, /^top_logprobs: cannot be combined with tools/],
      [{ input: "x", top_logprobs: 21 }, /^top_logprobs: /],
      [{ input: "x", tool_choice: { type: "web_search" } }, /^tool_choice: "web_search" tools are not run here/],
      [{ input: "x", text: { verbosity: "low" } }, /text\.verbosity/],
      [{ input: [{ type: "input_image" }] }, /input\.0\.type: "input_image" items are not supported/],
      [{ input: "x", tools: [{ type: "function", name: "no spaces" }] }, /^tools\.0\.name: /],
      [{ input: 3 }, /input: must be a string or an array/],
    ];
    for (const [body, message] of refused) {
      assert.throws(
        () => parse(body),
        (err: unknown) => err instanceof ApiError && err.code === "invalid_request" && message.test(err.message.replace(/^body: /, "")),
        JSON.stringify(body),
      );
    }
  });

  it("asks for token logprobs when the output text's logprobs are included, with top_logprobs alternatives", () => {
    assert.equal(parse({ input: "x", include: ["message.output_text.logprobs"], top_logprobs: 3 }).params?.logprobs, 3);
    assert.equal(parse({ input: "x", include: ["message.output_text.logprobs"] }).params?.logprobs, 0);
    assert.equal(parse({ input: "x", top_logprobs: 2 }).params?.logprobs, 2, "alternatives asked for are logprobs asked for");
    assert.equal(parse({ input: "x", top_logprobs: 0 }).params?.logprobs, undefined, "top_logprobs 0 alone asks for nothing");
  });

  it("answers only after a user message or function call outputs", () => {
    assert.throws(() => splitNews([{ role: "assistant", content: "hi" }]), /last item must be a user message/);
    assert.throws(() => splitNews([]), /no user message/);
    assert.deepEqual(
      splitNews([
        { role: "user", content: "a" },
        { role: "assistant", content: "b" },
        { role: "user", content: "c" },
      ]),
      {
        before: [
          { role: "user", content: "a" },
          { role: "assistant", content: "b" },
        ],
        content: "c",
      },
    );
  });
});

describe("the Responses stream", () => {
  const base = { ...defaultBase("resp_x", REQ, "m", 1, CONV, true), background: true };
  const ev = (e: Record<string, unknown>, seq: number, attempt = "a1") =>
    ({ v: 1, request_id: REQ, conversation_id: CONV, tenant: "t", attempt, seq, at: 0, ...e }) as ChatEvent;
  const usage = { prompt_tokens: 5, cached_prompt_tokens: 2, completion_tokens: 3 };
  const timings = { queue_wait_ms: 0, time_to_first_token_ms: 0, generation_ms: 0 };
  const events: ChatEvent[] = [
    ev({ type: "start", worker_id: "w" }, 0),
    ev({ type: "delta", text: "Once" }, 1),
    ev({ type: "delta", text: " upon" }, 2),
    ev({ type: "final", reply: "Once upon", stop_reason: "stop", usage, timings }, 3),
  ];
  const run = (list: ChatEvent[]) => {
    const b = new ResponseStreamBuilder(base);
    for (const e of list) b.push(e);
    return b.take();
  };

  it("goes from created to completed, numbered without gaps, the deltas making the text", () => {
    const out = run(events);
    assert.deepEqual(
      out.map((e) => e.type),
      [
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
      ],
    );
    assert.deepEqual(
      out.map((e) => e.sequence_number),
      out.map((_, i) => i),
    );
    const completed = out.at(-1)!.response as {
      status: string;
      usage: { input_tokens_details: { cached_tokens: number } };
      output: Array<{ content: Array<{ text: string }> }>;
    };
    assert.equal(completed.status, "completed");
    assert.equal(completed.output[0]!.content[0]!.text, "Once upon");
    assert.equal(completed.usage.input_tokens_details.cached_tokens, 2);
  });

  it("sends a takeover's new attempt only beyond what was sent, and a re-announced final's missing text", () => {
    const retaken = [
      events[0]!,
      events[1]!,
      ev({ type: "start", worker_id: "w2" }, 0, "a2"),
      ev({ type: "delta", text: "Once upon a" }, 1, "a2"),
      ev({ type: "final", reply: "Once upon a time", stop_reason: "stop", usage, timings }, 2, "a2"),
    ];
    const deltas = run(retaken)
      .filter((e) => e.type === "response.output_text.delta")
      .map((e) => e.delta);
    assert.deepEqual(deltas, ["Once", " upon a", " time"]);
    assert.equal(stateOfEvents(retaken).text, "Once upon a time");
  });

  it("ends cancelled and length-stopped replies as incomplete, and errors as failed", () => {
    const stopped = (reason: string) => run([events[0]!, events[1]!, ev({ type: "final", reply: "Once", stop_reason: reason, usage, timings }, 2)]).at(-1)!;
    assert.equal(stopped("cancelled").type, "response.incomplete");
    assert.equal((stopped("cancelled").response as { status: string }).status, "cancelled");
    assert.equal((stopped("length").response as { status: string }).status, "incomplete");
    const failed = run([events[0]!, ev({ type: "error", code: "generation_failed", message: "boom", retryable: false }, 1)]).at(-1)!;
    assert.equal(failed.type, "response.failed");
    assert.deepEqual((failed.response as { error: unknown }).error, { code: "generation_failed", message: "boom" });
  });

  it("streams a function call's arguments and closes it with the final", () => {
    const call = { id: "call_1", type: "function", function: { name: "w", arguments: '{"c":"Oslo"}' } };
    const out = run([
      events[0]!,
      ev({ type: "tool_call_delta", index: 0, id: "call_1", name: "w", arguments: '{"c":' }, 1),
      ev({ type: "tool_call_delta", index: 0, arguments: '"Oslo"}' }, 2),
      ev({ type: "final", reply: "", stop_reason: "tool_calls", tool_calls: [call], usage, timings }, 3),
    ]);
    assert.deepEqual(
      out.filter((e) => e.type === "response.function_call_arguments.delta").map((e) => e.delta),
      ['{"c":', '"Oslo"}'],
    );
    const done = out.find((e) => e.type === "response.function_call_arguments.done")!;
    assert.equal(done.arguments, '{"c":"Oslo"}');
    const final = out.at(-1)!.response as { output: Array<{ type: string; call_id: string }> };
    assert.deepEqual(
      final.output.map((o) => [o.type, o.call_id]),
      [["function_call", "call_1"]],
    );
  });
});
