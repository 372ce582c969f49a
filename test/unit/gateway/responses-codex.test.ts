/**
 * What Codex CLI sends POST /v1/responses, as captured from `codex exec` 0.171.0 (a custom
 * provider whose base_url was a capturing server; test/fixtures/codex-request.json): four
 * input messages, nine tools (seven functions, a `namespace` of five sub-agent functions,
 * the hosted web_search), reasoning, include, prompt_cache_key and client_metadata on a
 * streamed store:false request. The gateway takes it whole: every function is offered (a
 * namespace's by its own name), web_search is left out and said so, the rest is accepted.
 * A call of a namespaced function names its namespace, which Codex routes by (without it
 * Codex answers "unsupported call"), and Codex's next request, which echoes that call, is
 * taken too.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { ChatEvent } from "../../../contracts/records/events.js";
import { ApiError } from "../../../gateway/errors.js";
import { ResponseStreamBuilder, defaultBase, responseObject } from "../../../gateway/openai/responses-object.js";
import { checkToolOutputs, parseResponsesBody, splitNews } from "../../../gateway/openai/responses-request.js";
import { REPO_ROOT } from "../../../testkit/services.js";
import { MAX_CONTENT_CHARS } from "../../../contracts/limits.js";

const captured = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "test", "fixtures", "codex-request.json"), "utf8")) as Record<string, unknown>;
const codexRequest = () => structuredClone(captured);

const REQ = "0b7c4a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c";
const SUB_AGENT_FUNCTIONS = ["close_agent", "resume_agent", "send_input", "spawn_agent", "wait_agent"];

describe("Codex CLI's request", () => {
  it("is what Codex sends: a streamed store:false request with a namespace tool and web_search", () => {
    const body = codexRequest();
    assert.equal(body.stream, true);
    assert.equal(body.store, false);
    assert.deepEqual(body.reasoning, { summary: "auto" });
    assert.deepEqual(body.include, ["reasoning.encrypted_content"]);
    assert.equal(typeof body.prompt_cache_key, "string");
    assert.equal(typeof body.client_metadata, "object");
    const tools = body.tools as Array<{ type: string; name?: string; tools?: Array<{ type: string; name: string }> }>;
    assert.equal(tools.length, 9);
    const namespace = tools.find((t) => t.type === "namespace")!;
    assert.equal(namespace.name, "multi_agent_v1");
    assert.deepEqual(
      namespace.tools!.map((t) => [t.type, t.name]),
      SUB_AGENT_FUNCTIONS.map((n) => ["function", n]),
    );
    assert.ok(tools.some((t) => t.type === "web_search"));
  });

  it("is accepted: every function offered (the namespace's by name), web_search left out, the rest taken", () => {
    const p = parseResponsesBody(codexRequest(), MAX_CONTENT_CHARS);
    const offered = p.params?.tools?.map((t) => t.function.name);
    assert.deepEqual(offered, [
      "exec_command",
      "write_stdin",
      "request_user_input",
      "view_image",
      ...SUB_AGENT_FUNCTIONS,
      "get_goal",
      "create_goal",
      "update_goal",
    ]);
    assert.deepEqual(p.leftOut, ["web_search"]);
    assert.deepEqual(p.namespaces, Object.fromEntries(SUB_AGENT_FUNCTIONS.map((n) => [n, "multi_agent_v1"])));
    // The namespace's functions keep their schemas as sent.
    const spawn = p.params!.tools!.find((t) => t.function.name === "spawn_agent")!;
    assert.equal((spawn.function.parameters as { type: string }).type, "object");
    assert.equal(p.params?.tool_choice, "auto");
    assert.equal(p.params?.parallel_tool_calls, true);
    assert.equal(p.store, false);
    assert.equal(p.stream, true);
    // Two developer messages make the system prompt; the environment context and the prompt are the user's.
    assert.ok(p.system!.startsWith("You are a coding agent running in the Codex CLI"));
    assert.ok(p.system!.includes("<skills_instructions>"));
    assert.deepEqual(
      p.messages.map((m) => m.role),
      ["user", "user"],
    );
    assert.equal(splitNews(p.messages).content, "Say hello");
  });

  it("refuses a namespace that is not a group of tools, or that names a function the request already has", () => {
    const refused = (mutate: (tools: Array<Record<string, unknown>>) => void, message: RegExp) => {
      const body = codexRequest();
      mutate(body.tools as Array<Record<string, unknown>>);
      assert.throws(
        () => parseResponsesBody(body, MAX_CONTENT_CHARS),
        (e: unknown) => e instanceof ApiError && message.test(e.message),
        String(message),
      );
    };
    const namespace = (tools: Array<Record<string, unknown>>) => tools.find((t) => t.type === "namespace")! as { tools: Array<Record<string, unknown>> };
    refused((tools) => namespace(tools).tools.push({ type: "function", name: "exec_command" }), /^tools: names the function "exec_command" twice/);
    refused((tools) => delete (tools.find((t) => t.type === "namespace") as Record<string, unknown>).tools, /^body: tools\.4\.tools: /);
    refused((tools) => namespace(tools).tools.push({ type: "robot" }), /^body: tools\.4\.tools\.5\.type: "robot" tools are not supported/);
    // A record-level check names the function where the client sent it.
    refused((tools) => (namespace(tools).tools[3]!.name = "spawn agent"), /^tools\.4\.tools\.3\.name: /);
    // A hosted tool inside a namespace is left out like any other.
    const body = codexRequest();
    namespace(body.tools as Array<Record<string, unknown>>).tools.push({ type: "web_search" });
    assert.deepEqual(parseResponsesBody(body, MAX_CONTENT_CHARS).leftOut, ["web_search", "web_search"]);
  });

  it("answers a call of a namespaced function with its namespace, in the stream and the response", () => {
    const p = parseResponsesBody(codexRequest(), MAX_CONTENT_CHARS);
    const base = { ...defaultBase("resp_n1", REQ, "m", 1, null, false), namespaces: p.namespaces };
    const ev = (e: Record<string, unknown>, seq: number) =>
      ({ v: 1, request_id: REQ, conversation_id: REQ, tenant: "t", attempt: "a1", seq, at: 0, ...e }) as ChatEvent;
    const usage = { prompt_tokens: 5, cached_prompt_tokens: 0, completion_tokens: 3 };
    const timings = { queue_wait_ms: 0, time_to_first_token_ms: 0, generation_ms: 0 };
    const calls = [
      { id: "call_1", type: "function" as const, function: { name: "spawn_agent", arguments: "{}" } },
      { id: "call_2", type: "function" as const, function: { name: "exec_command", arguments: '{"cmd":"ls"}' } },
    ];
    const builder = new ResponseStreamBuilder(base);
    for (const e of [
      ev({ type: "start", worker_id: "w" }, 0),
      ev({ type: "tool_call_delta", index: 0, id: "call_1", name: "spawn_agent", arguments: "{}" }, 1),
      ev({ type: "tool_call_delta", index: 1, id: "call_2", name: "exec_command", arguments: '{"cmd":"ls"}' }, 2),
      ev({ type: "final", reply: "", stop_reason: "tool_calls", tool_calls: calls, usage, timings }, 3),
    ])
      builder.push(e);
    const out = builder.take();
    type Item = { type: string; name: string; namespace?: string };
    const items = (type: string) => out.filter((e) => e.type === type).map((e) => e.item as Item);
    for (const type of ["response.output_item.added", "response.output_item.done"]) {
      assert.deepEqual(
        items(type).map((i) => [i.name, i.namespace]),
        [
          ["spawn_agent", "multi_agent_v1"],
          ["exec_command", undefined],
        ],
        type,
      );
    }
    const whole = responseObject(base, { status: "completed", text: "", toolCalls: calls, usage, error: null });
    assert.deepEqual(
      (whole.output as Item[]).map((i) => [i.name, i.namespace]),
      [
        ["spawn_agent", "multi_agent_v1"],
        ["exec_command", undefined],
      ],
    );
    // Without the request's namespaces (no namespace tool), a call names none.
    const plain = responseObject(defaultBase("resp_n1", REQ, "m", 1, null, false), { status: "completed", text: "", toolCalls: calls, usage, error: null });
    assert.ok((plain.output as Item[]).every((i) => !("namespace" in i)));
  });

  it("takes Codex's next request, which echoes the namespaced call and its output", () => {
    const body = codexRequest();
    (body.input as unknown[]).push(
      {
        type: "function_call",
        status: "completed",
        id: "fc_1",
        name: "close_agent",
        namespace: "multi_agent_v1",
        arguments: '{"target":"nobody"}',
        call_id: "call_1",
      },
      { type: "function_call_output", id: "fco_1", call_id: "call_1", output: "invalid agent id nobody" },
    );
    const p = parseResponsesBody(body, MAX_CONTENT_CHARS);
    checkToolOutputs(p.messages);
    assert.deepEqual(p.messages.slice(-2), [
      {
        role: "assistant",
        content: "",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "close_agent", arguments: '{"target":"nobody"}' } }],
      },
      { role: "tool", content: "invalid agent id nobody", tool_call_id: "call_1" },
    ]);
    assert.deepEqual(splitNews(p.messages).toolResults, [{ tool_call_id: "call_1", content: "invalid agent id nobody" }]);
  });
});
