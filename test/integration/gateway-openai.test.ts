/**
 * The OpenAI-compatible endpoint driven by the official `openai` npm client (baseURL =
 * gateway + /v1) against a real gateway, broker and worker: models, whole and streamed
 * completions with usage, stateless versus server-side memory (X-Conversation-Id),
 * OpenAI-shaped errors, and a client that leaves mid-stream cancelling its request.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { apiClient, eventually, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { parseSse } from "../helpers/sse.js";

const KEY = "openai-test-key-42";
const MODEL = "stories-260k";

describe("OpenAI-compatible API", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let client: OpenAI;
  let api: ReturnType<typeof apiClient>;
  const prefix = uniquePrefix("gw-openai");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `team:${KEY}`, MODEL_NAME: MODEL, SSE_KEEPALIVE_MS: "200" });
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000", WORKER_SLOTS: "2" });
    client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("lists the model", async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    assert.deepEqual(
      models.map((m) => [m.id, m.object, m.owned_by]),
      [[MODEL, "model", "kafka-llm"]],
    );
    assert.equal((await client.models.retrieve(MODEL)).id, MODEL);
    await assert.rejects(client.models.retrieve("gpt-9"), (err: unknown) => err instanceof OpenAI.NotFoundError);
  });

  it("answers a whole completion with usage, statelessly", async () => {
    const { data, response } = await client.chat.completions
      .create({
        model: MODEL,
        messages: [
          { role: "system", content: "You tell stories." },
          { role: "user", content: "Hi." },
          { role: "assistant", content: "Hello!" },
          { role: "user", content: [{ type: "text", text: "Tell me about a cat." }] },
        ],
        max_tokens: 16,
        temperature: 0,
      })
      .withResponse();
    assert.equal(data.object, "chat.completion");
    assert.equal(data.model, MODEL);
    assert.equal(data.choices.length, 1);
    const choice = data.choices[0]!;
    assert.equal(choice.message.role, "assistant");
    assert.ok(choice.message.content && choice.message.content.length > 0);
    assert.ok(choice.finish_reason === "stop" || choice.finish_reason === "length");
    assert.ok(data.usage!.completion_tokens > 0 && data.usage!.completion_tokens <= 16);
    assert.equal(data.usage!.total_tokens, data.usage!.prompt_tokens + data.usage!.completion_tokens);

    // The native API knows the same request; its throwaway conversation stored nothing.
    const requestId = response.headers.get("x-request-id")!;
    assert.equal(data.id, `chatcmpl-${requestId}`);
    const status = await api("GET", `/v1/requests/${requestId}`);
    assert.equal(status.body.status, "completed");
    assert.equal(status.body.reply, choice.message.content);
    assert.ok(status.body.usage.prompt_tokens > 20, "the whole messages array was the prompt");
    assert.equal((await api("GET", `/v1/conversations/${status.body.conversation_id}/messages`)).status, 404);
  });

  it("streams chunks in OpenAI's format: role first, content, finish_reason, usage, [DONE]", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: MODEL,
        messages: [{ role: "user", content: "Once upon a time" }],
        max_tokens: 40,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
    assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === MODEL));
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(finishes.length, 1, "one chunk carries finish_reason");
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, [], "the usage chunk has no choices");
    assert.ok(last.usage!.completion_tokens > 0);
    assert.ok(
      chunks.slice(0, -1).every((c) => c.usage === null),
      "usage is null on every other chunk",
    );

    const status = await api("GET", `/v1/requests/${response.headers.get("x-request-id")}`);
    assert.equal(text, status.body.reply, "the chunks add up to the reply");
    assert.equal(last.usage!.completion_tokens, status.body.usage.completion_tokens);

    // On the wire: every data line is JSON except the final [DONE].
    const raw = await fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, stream: true }),
    });
    const data = parseSse(await raw.text()).map((m) => m.data);
    assert.equal(data.at(-1), "[DONE]");
    for (const d of data.slice(0, -1)) JSON.parse(d);
  });

  it("uses server-side memory with X-Conversation-Id: the last user message is the turn", async () => {
    const headers = { "X-Conversation-Id": "oa-memory-1" };
    const first = await client.chat.completions.create(
      {
        model: MODEL,
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "My name is Tim." },
        ],
        max_tokens: 8,
      },
      { headers },
    );
    const second = await client.chat.completions.create(
      // Earlier messages are the server's to remember: what the client resends is ignored.
      {
        model: MODEL,
        messages: [
          { role: "user", content: "ignored" },
          { role: "user", content: "What is my name?" },
        ],
        max_tokens: 8,
      },
      { headers },
    );
    const history = await api("GET", "/v1/conversations/oa-memory-1/memory");
    assert.equal(history.status, 200, history.text);
    assert.deepEqual(
      history.body.messages.map((m: { role: string; content: string }) => [m.role, m.content]),
      [
        ["user", "My name is Tim."],
        ["assistant", first.choices[0]!.message.content],
        ["user", "What is my name?"],
        ["assistant", second.choices[0]!.message.content],
      ],
    );
    assert.equal(history.body.system, "Be brief.");
    assert.ok(second.usage!.prompt_tokens > first.usage!.prompt_tokens, "the second turn's prompt holds the first");
  });

  it("refuses what it cannot do with OpenAI-shaped 400s naming the parameter", async () => {
    const base = { model: MODEL, messages: [{ role: "user" as const, content: "Hi" }] };
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ n: 5 }, "n", /n: must be <= 4/],
      [
        { tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { x: { $ref: "#/$defs/nope" } } } } }] },
        "tools.0.function.parameters.properties.x.$ref",
        /not a schema of this document/,
      ],
      [{ stop: ["a", "b", "c", "d", "e"] }, "stop", /at most 4 stop texts/],
      [{ max_tokens: 0 }, "max_tokens", /max_tokens: must be >= 1/],
      [{ temperature: 9 }, "temperature", /temperature: must be <= 2/],
      [{ messages: [{ role: "assistant", content: "Hi" }] }, "messages", /last message must be the user's/],
      [{ messages: [{ role: "tool", content: "x", tool_call_id: "1" }] }, "messages.0.tool_call_id", /answers no tool call/],
      [{ messages: [] }, "messages", /at least one message/],
      [{ frequency_penalty: 2.5 }, "frequency_penalty", /must be <= 2/],
      [{ response_format: { type: "yaml" } }, "response_format.type", /"text", "json_object" or "json_schema"/],
    ];
    for (const [extra, param, message] of cases) {
      await assert.rejects(client.chat.completions.create({ ...base, ...extra } as never), (err: unknown) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `${JSON.stringify(extra)}: ${String(err)}`);
        assert.equal(err.type, "invalid_request_error");
        assert.equal(err.param, param, JSON.stringify(extra));
        assert.match(err.message, message);
        return true;
      });
    }
    await assert.rejects(
      client.chat.completions.create(base, { headers: { "X-Conversation-Id": "bad id!" } }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === "X-Conversation-Id",
    );
    const stranger = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: "wrong-key", maxRetries: 0 });
    await assert.rejects(stranger.chat.completions.create(base), (err: unknown) => {
      assert.ok(err instanceof OpenAI.AuthenticationError);
      assert.equal(err.type, "authentication_error");
      return true;
    });
  });

  it("cancels the request when the client leaves mid-stream", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "Tell me a very long story." }], max_tokens: 1900, stream: true })
      .withResponse();
    const requestId = response.headers.get("x-request-id")!;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) break; // leaving the loop aborts the stream
    }
    const status = await eventually(
      async () => {
        const s = await api("GET", `/v1/requests/${requestId}`);
        return s.body.status === "running" || s.body.status === "queued" ? undefined : s.body;
      },
      30_000,
      "the request to end",
    );
    assert.equal(status.status, "cancelled", "the worker stopped the generation");
    assert.ok(status.usage.completion_tokens < 1900);
    const metrics = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    assert.match(metrics, /kafka_llm_gateway_cancels_total\{origin="disconnect"\} 1/);
  });
});
