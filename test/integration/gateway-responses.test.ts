/**
 * OpenAI's Responses API driven by the official `openai` client against two real gateway
 * replicas, a broker and a worker: a stored response continued with previous_response_id
 * (its prompt from the worker's memory, its cache reused), retrieval and stream resumption
 * at the replica that did not take it, background mode with polling and cancel, function
 * calls and their outputs, store: false, deletion, OpenAI's Conversations API on the same
 * conversations, two tenants that cannot see each other's, and a background response whose
 * worker is killed mid-generation.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { apiClient, eventually, untilResponseEnds, untilStreaming, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { parseSse } from "../helpers/sse.js";
import { parseResponseId } from "../../gateway/openai/response-id.js";

const KEY_A = "responses-key-a-42";
const KEY_B = "responses-key-b-42";
const MODEL = "stories-260k";

type StreamEvent = { type: string; sequence_number: number; delta?: string; response?: OpenAI.Responses.Response };

describe("OpenAI Responses API", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let gatewayA: Service;
  let gatewayB: Service;
  let worker: Service;
  let a: OpenAI;
  let aElsewhere: OpenAI;
  let b: OpenAI;
  let api: ReturnType<typeof apiClient>;
  const prefix = uniquePrefix("gw-responses");

  before(async () => {
    kafka = await useKafka();
    const common = { ...stackEnv(kafka, prefix), GATEWAY_API_KEYS: `a:${KEY_A},b:${KEY_B}`, MODEL_NAME: MODEL, SSE_KEEPALIVE_MS: "200" };
    gatewayA = await startGateway(common);
    gatewayB = await startGateway(common);
    worker = await startWorker(stackEnv(kafka, prefix), { DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000", WORKER_SLOTS: "2" });
    a = new OpenAI({ baseURL: `${gatewayA.baseUrl}/v1`, apiKey: KEY_A, maxRetries: 0, timeout: 60_000 });
    aElsewhere = new OpenAI({ baseURL: `${gatewayB.baseUrl}/v1`, apiKey: KEY_A, maxRetries: 0, timeout: 60_000 });
    b = new OpenAI({ baseURL: `${gatewayB.baseUrl}/v1`, apiKey: KEY_B, maxRetries: 0, timeout: 60_000 });
    api = apiClient(gatewayA.baseUrl, KEY_A);
  });

  after(async () => {
    await gatewayA?.stop();
    await gatewayB?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("answers, and goes on from a stored response with the worker's memory and cache, at either replica", async () => {
    const first = await a.responses.create({
      model: MODEL,
      instructions: "You tell stories.",
      input: "Once upon a time",
      max_output_tokens: 16,
      temperature: 0,
    });
    assert.equal(first.object, "response");
    assert.equal(first.status, first.usage!.output_tokens >= 16 ? "incomplete" : "completed");
    assert.match(first.id, /^resp_c/);
    assert.ok(first.output_text.length > 0);
    assert.equal((first as unknown as { store: boolean }).store, true);
    assert.ok(first.usage!.input_tokens > 0);
    const conversation = first.conversation!.id;

    // The other replica finds it, and continues it: the prompt is the memory, so the cache matches.
    assert.equal((await aElsewhere.responses.retrieve(first.id)).output_text, first.output_text);
    const second = await aElsewhere.responses.create({
      model: MODEL,
      previous_response_id: first.id,
      input: "The cat said",
      max_output_tokens: 8,
      temperature: 0,
    });
    assert.equal(second.previous_response_id, first.id);
    assert.equal(second.conversation!.id, conversation);
    assert.ok(second.usage!.input_tokens > first.usage!.input_tokens, "the prompt holds the first exchange");
    assert.ok(
      second.usage!.input_tokens_details.cached_tokens >= first.usage!.input_tokens - 2,
      `the first exchange came from the slot's cache (${second.usage!.input_tokens_details.cached_tokens} of ${second.usage!.input_tokens})`,
    );
    // One conversation, as the native API sees it.
    const memory = await api("GET", `/v1/conversations/${conversation}/memory`);
    assert.deepEqual(
      memory.body.messages.map((m: { role: string; content: string }) => [m.role, m.content]),
      [
        ["user", "Once upon a time"],
        ["assistant", first.output_text],
        ["user", "The cat said"],
        ["assistant", second.output_text],
      ],
    );
    assert.equal(memory.body.system, "You tell stories.");
    const items = await a.responses.inputItems.list(second.id, { order: "asc" });
    assert.deepEqual(
      items.data.map((i) => (i.type === "message" ? [i.role, i.content.map((c) => ("text" in c ? c.text : "")).join("")] : [i.type])),
      [["user", "The cat said"]],
    );

    // A continuation retried under its Idempotency-Key is the same response, made once.
    const keyed = { headers: { "Idempotency-Key": "continue-once" } };
    const third = await a.responses.create({ model: MODEL, previous_response_id: second.id, input: "Once more", max_output_tokens: 4 }, keyed);
    const retried = await aElsewhere.responses.create({ model: MODEL, previous_response_id: second.id, input: "Once more", max_output_tokens: 4 }, keyed);
    assert.equal(retried.id, third.id);
    assert.equal(retried.output_text, third.output_text);
    assert.equal((await api("GET", `/v1/conversations/${conversation}`)).body.turns, 3);

    // Only the latest response of a conversation goes on: it does not branch.
    await assert.rejects(
      a.responses.create({ model: MODEL, previous_response_id: first.id, input: "Again", max_output_tokens: 4 }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && /not the latest response/.test(err.message),
    );
  });

  it("takes a whole input as the conversation's start: messages and function calls join its memory", async () => {
    const input: OpenAI.Responses.ResponseInput = [
      { role: "developer", content: "Answer briefly." },
      { role: "user", content: "What is the weather in Oslo?" },
      { type: "function_call", call_id: "call_abc", name: "get_weather", arguments: '{"city":"Oslo"}' },
      { type: "function_call_output", call_id: "call_abc", output: "Sunny, 21 degrees." },
    ];
    const tools: OpenAI.Responses.Tool[] = [
      { type: "function", name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }, strict: true },
      { type: "web_search" },
    ];
    const { data, response } = await a.responses.create({ model: MODEL, input, tools, max_output_tokens: 8, temperature: 0 }).withResponse();
    assert.ok(data.status === "completed" || data.status === "incomplete");
    // The hosted tool is not run here: left out, and said so.
    assert.equal(response.headers.get("x-kafka-llm-tools-left-out"), "web_search");
    assert.deepEqual(
      data.tools.map((t) => t.type),
      ["function"],
    );
    const memory = await api("GET", `/v1/conversations/${data.conversation!.id}/memory`);
    assert.deepEqual(
      memory.body.messages.map((m: { role: string; tool_calls?: unknown[]; tool_call_id?: string }) => [
        m.role,
        m.tool_calls?.length ?? 0,
        m.tool_call_id ?? null,
      ]),
      [["user", 0, null], ["assistant", 1, null], ["tool", 0, "call_abc"], ...(data.output_text ? [["assistant", 0, null]] : [])],
    );
    assert.equal(memory.body.system, "Answer briefly.");
  });

  it("makes a function call, and answers its output given with previous_response_id", async () => {
    const tools: OpenAI.Responses.Tool[] = [
      {
        type: "function",
        name: "get_weather",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
        strict: true,
      },
    ];
    const called = await a.responses.create({
      model: MODEL,
      input: "What is the weather in Oslo?",
      tools,
      tool_choice: { type: "function", name: "get_weather" },
      max_output_tokens: 60,
      temperature: 0,
    });
    assert.equal(called.status, "completed");
    const call = called.output.find((o): o is OpenAI.Responses.ResponseFunctionToolCall => o.type === "function_call");
    assert.ok(call, "a function_call item");
    assert.equal(call.name, "get_weather");
    assert.equal(typeof JSON.parse(call.arguments).city, "string");
    const answered = await a.responses.create({
      model: MODEL,
      previous_response_id: called.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "Sunny, 21 degrees." }],
      tools,
      tool_choice: "none",
      max_output_tokens: 8,
      temperature: 0,
    });
    assert.ok(answered.status === "completed" || answered.status === "incomplete");
    assert.ok(answered.usage!.input_tokens_details.cached_tokens > 0);
    // An output for a call nobody made is refused, naming it.
    await assert.rejects(
      a.responses.create({ model: MODEL, previous_response_id: answered.id, input: [{ type: "function_call_output", call_id: "call_nobody", output: "x" }] }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && /call_nobody/.test(err.message),
    );
  });

  it("streams OpenAI's events in sequence, and a stream resumed at the other replica goes on after starting_after", async () => {
    const stream = await a.responses.create({ model: MODEL, input: "Once upon a time", max_output_tokens: 24, temperature: 0, stream: true });
    const events: StreamEvent[] = [];
    for await (const e of stream) events.push(e as unknown as StreamEvent);
    assert.equal(events[0]!.type, "response.created");
    assert.ok(["response.completed", "response.incomplete"].includes(events.at(-1)!.type));
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    const types = events.map((e) => e.type);
    for (const t of [
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.done",
      "response.output_item.done",
    ])
      assert.ok(types.includes(t), `${t} in ${types.join(",")}`);
    const final = events.at(-1)!.response!;
    const text = events
      .filter((e) => e.type === "response.output_text.delta")
      .map((e) => e.delta)
      .join("");
    assert.equal(text, (final.output[0] as OpenAI.Responses.ResponseOutputMessage).content.map((c) => ("text" in c ? c.text : "")).join(""));

    // Resumed elsewhere after the 4th event: the same events from the 5th on.
    const res = await fetch(`${gatewayB.baseUrl}/v1/responses/${final.id}?stream=true&starting_after=3`, { headers: { authorization: `Bearer ${KEY_A}` } });
    assert.equal(res.status, 200);
    const resumed = parseSse(await res.text()).map((m) => JSON.parse(m.data) as StreamEvent);
    assert.deepEqual(
      resumed.map((e) => [e.sequence_number, e.type, e.delta ?? null]),
      events.slice(4).map((e) => [e.sequence_number, e.type, e.delta ?? null]),
    );
  });

  it("runs in the background: queued at once, polled to the end at the other replica, and cancelled", async () => {
    const queued = await a.responses.create({ model: MODEL, input: "Once upon a time", max_output_tokens: 24, temperature: 0, background: true });
    assert.ok(queued.status === "queued");
    assert.equal(queued.background, true);
    const done = await eventually(async () => {
      const r = await aElsewhere.responses.retrieve(queued.id);
      return r.status === "queued" || r.status === "in_progress" ? undefined : r;
    });
    assert.ok(done.status === "completed" || done.status === "incomplete");
    assert.ok(done.output_text.length > 0);

    // A long one, stopped: it ends cancelled with the text so far.
    const long = await a.responses.create({ model: MODEL, input: "Once upon a time", max_output_tokens: 4000, temperature: 1, background: true });
    await eventually(async () => ((await a.responses.retrieve(long.id)).status === "in_progress" ? true : undefined));
    const cancelled = await aElsewhere.responses.cancel(long.id);
    const ended =
      cancelled.status === "cancelled"
        ? cancelled
        : await eventually(async () => {
            const r = await a.responses.retrieve(long.id);
            return r.status === "cancelled" ? r : undefined;
          });
    assert.equal(ended.status, "cancelled");
    assert.ok(ended.usage == null || ended.usage.output_tokens < 4000);
  });

  it("keeps nothing with store: false, and deletes a stored response with its conversation", async () => {
    const unstored = await a.responses.create({ model: MODEL, input: "Hello", max_output_tokens: 4, store: false });
    assert.match(unstored.id, /^resp_n/);
    assert.equal((unstored as unknown as { store: boolean }).store, false);
    await assert.rejects(a.responses.retrieve(unstored.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
    await assert.rejects(
      a.responses.create({ model: MODEL, previous_response_id: unstored.id, input: "More" }),
      (err: unknown) => err instanceof OpenAI.NotFoundError,
    );

    const stored = await a.responses.create({ model: MODEL, input: "Hello", max_output_tokens: 4 });
    await a.responses.delete(stored.id);
    await eventually(async () => ((await api("GET", `/v1/conversations/${stored.conversation!.id}`)).status === 404 ? true : undefined));
    await assert.rejects(a.responses.retrieve(stored.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
  });

  it("keeps each tenant's responses to itself", async () => {
    const mine = await a.responses.create({ model: MODEL, input: "Hello", max_output_tokens: 4 });
    await assert.rejects(b.responses.retrieve(mine.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
    await assert.rejects(b.responses.cancel(mine.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
    await assert.rejects(
      b.responses.create({ model: MODEL, previous_response_id: mine.id, input: "Mine now" }),
      (err: unknown) => err instanceof OpenAI.NotFoundError,
    );
    // Tenant a's conversation did not move.
    assert.equal((await api("GET", `/v1/conversations/${mine.conversation!.id}`)).body.turns, 1);
  });

  it("serves OpenAI's Conversations API on the same conversations the native API and responses see", async () => {
    const conv = await a.conversations.create({ items: [{ type: "message", role: "user", content: "Hello there" }], metadata: { topic: "cats" } });
    assert.equal(conv.object, "conversation");
    assert.deepEqual(conv.metadata, { topic: "cats" });
    // A response in that conversation: its prompt holds the item, from the worker's memory.
    const replied = await a.responses.create({ model: MODEL, conversation: conv.id, input: "Tell me more", max_output_tokens: 6, temperature: 0 });
    assert.equal(replied.conversation!.id, conv.id);
    assert.match(replied.id, /^resp_x/);
    assert.equal((await aElsewhere.responses.retrieve(replied.id)).output_text, replied.output_text);

    const retrieved = await aElsewhere.conversations.retrieve(conv.id);
    assert.deepEqual(retrieved.metadata, { topic: "cats" });
    assert.ok(Math.abs(retrieved.created_at - Date.now() / 1000) < 600, "created_at in Unix seconds");
    const updated = await a.conversations.update(conv.id, { metadata: { topic: "dogs" } });
    assert.deepEqual(updated.metadata, { topic: "dogs" });
    assert.deepEqual((await aElsewhere.conversations.retrieve(conv.id)).metadata, { topic: "dogs" });

    const added = await a.conversations.items.create(conv.id, { items: [{ type: "message", role: "user", content: "A note" }] });
    assert.equal(added.data.length, 1);
    const listed = await a.conversations.items.list(conv.id, { order: "asc" });
    const texts = listed.data.map((i) => (i.type === "message" ? [i.role, i.content.map((c) => ("text" in c ? c.text : "")).join("")] : [i.type]));
    assert.deepEqual(texts.slice(0, 2), [
      ["user", "Hello there"],
      ["user", "Tell me more"],
    ]);
    assert.deepEqual(texts.at(-1), ["user", "A note"]);
    // The same items, with the same ids, as the response's input items.
    const inputs = await a.responses.inputItems.list(replied.id);
    assert.deepEqual(
      inputs.data.map((i) => i.id),
      [listed.data[1]!.id],
    );
    const item = await aElsewhere.conversations.items.retrieve(listed.data[0]!.id!, { conversation_id: conv.id });
    assert.equal(item.id, listed.data[0]!.id);

    // Deleting an item hides it from every read, and the memory forgets it.
    await a.conversations.items.delete(listed.data[0]!.id!, { conversation_id: conv.id });
    const after = await a.conversations.items.list(conv.id, { order: "asc" });
    assert.deepEqual(
      after.data.map((i) => i.id),
      listed.data.slice(1).map((i) => i.id),
    );
    const memory = await api("GET", `/v1/conversations/${conv.id}/memory`);
    assert.ok(!memory.body.messages.some((m: { content: string }) => m.content === "Hello there"));
    assert.ok(
      !(await api("GET", `/v1/conversations/${conv.id}/messages?from=beginning`)).body.messages.some((m: { content: string }) => m.content === "Hello there"),
    );
    await assert.rejects(
      a.conversations.items.retrieve(listed.data[0]!.id!, { conversation_id: conv.id }),
      (err: unknown) => err instanceof OpenAI.NotFoundError,
    );

    // Another tenant's conversation of the same id is another conversation: not found.
    await assert.rejects(b.conversations.retrieve(conv.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
    await assert.rejects(b.conversations.items.list(conv.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
    await assert.rejects(b.responses.create({ model: MODEL, conversation: conv.id, input: "Mine" }), (err: unknown) => err instanceof OpenAI.NotFoundError);

    const deleted = await a.conversations.delete(conv.id);
    assert.equal(deleted.deleted, true);
    await assert.rejects(a.conversations.retrieve(conv.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
    await assert.rejects(a.responses.retrieve(replied.id), (err: unknown) => err instanceof OpenAI.NotFoundError);
  });

  it("refuses what it cannot honour with a 400 that names it, and takes what changes nothing", async () => {
    const refused: Array<[Record<string, unknown>, RegExp]> = [
      [{ input: [{ type: "input_image", image_url: "x" }] }, /input_image/],
      [{ input: [{ role: "user", content: [{ type: "input_image", image_url: "x" }] }] }, /input_text/],
      [{ input: "x", previous_response_id: "resp_x", conversation: "c1" }, /previous_response_id and conversation/],
      [{ input: "x", background: true, store: false }, /background/],
      [{ input: "x", include: ["message.output_text.everything"] }, /cannot be included/],
      [{ input: "x", prompt: { id: "p" } }, /^prompt/],
      [{ input: "x", tools: [{ type: "function", name: "bad name!" }] }, /tools\.0\.function\.name|tools\.0/],
      [{ input: [{ role: "assistant", content: "hi" }] }, /last item/],
    ];
    for (const [body, message] of refused) {
      const res = await fetch(`${gatewayA.baseUrl}/v1/responses`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY_A}`, "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, ...body }),
      });
      const json = (await res.json()) as { error: { message: string; type: string } };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(json.error.message, message, JSON.stringify(body));
    }
    // What a client sends that changes nothing here is taken.
    const taken = await a.responses.create({
      model: MODEL,
      input: [{ type: "reasoning", id: "rs_1", summary: [] } as never, { role: "user", content: "Hi" }],
      reasoning: { summary: "auto" },
      include: ["reasoning.encrypted_content"],
      prompt_cache_key: "k",
      truncation: "auto",
      max_output_tokens: 4,
      store: false,
    });
    assert.ok(taken.status === "completed" || taken.status === "incomplete");
  });
});

describe("a background response when its worker dies", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  const workers = new Map<string, Service>();
  const prefix = uniquePrefix("gw-responses-kill");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    gateway = await startGateway({ ...common, GATEWAY_API_KEYS: `a:${KEY_A}`, MODEL_NAME: MODEL });
    const env = { SESSION_TIMEOUT_MS: "6000", HEARTBEAT_INTERVAL_MS: "1000", DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000" };
    for (const name of ["worker-a", "worker-b"]) workers.set(name, await startWorker(common, env, name));
  });

  after(async () => {
    await gateway?.stop();
    for (const w of workers.values()) await w.stop();
    await kafka?.stop();
  });

  it("is taken over by the other worker, polled to its end, and continued from", async () => {
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY_A, maxRetries: 0, timeout: 60_000 });
    const api = apiClient(gateway.baseUrl, KEY_A);
    const long = await client.responses.create({ model: MODEL, input: "A long story, please.", max_output_tokens: 1500, temperature: 0, background: true });
    const ref = parseResponseId(long.id)!;
    // Killed while it streams: the worker that runs it has sent text and not ended.
    const running = await untilStreaming(api, ref.requestId);
    const victim = running.worker_id as string;
    await workers.get(victim)!.stop("SIGKILL");
    workers.delete(victim);

    const done = await untilResponseEnds(() => client.responses.retrieve(long.id));
    assert.ok(done.status === "completed" || done.status === "incomplete", done.status);
    const status = (await api("GET", `/v1/requests/${ref.requestId}`)).body;
    assert.notEqual(status.worker_id, victim, "the survivor ran it again");
    assert.equal(status.reply, done.output_text);

    // The conversation holds the reply once, and goes on from it.
    const next = await client.responses.create({ model: MODEL, previous_response_id: long.id, input: "The end?", max_output_tokens: 4 });
    assert.ok(next.status === "completed" || next.status === "incomplete");
    const memory = (await api("GET", `/v1/conversations/${done.conversation!.id}/memory`)).body;
    assert.deepEqual(
      memory.messages.map((m: { role: string }) => m.role),
      ["user", "assistant", "user", "assistant"],
    );
    assert.equal(memory.messages[1].content, done.output_text);
  });
});
