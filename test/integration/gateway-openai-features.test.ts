/**
 * The OpenAI parameters beyond plain chat (issue 16), driven by the official `openai`
 * client and LangChain.js against a real gateway, broker and two workers on stories260K:
 * stop sequences (also on the native API), seeded sampling on either worker, structured
 * outputs held to a JSON schema by a grammar, and forced tool calls with their results sent
 * back. A model that knows nothing still emits valid JSON and valid calls: the grammar
 * admits nothing else.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AIMessage, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { tool } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import OpenAI from "openai";
import { zodFunction, zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { apiClient, eventually, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "openai-features-key-7";
const MODEL = "stories-260k";

const Cat = z.object({
  name: z.string().max(16),
  age: z.number().int(),
  colour: z.enum(["black", "white", "ginger"]),
  indoor: z.boolean(),
});
const Weather = z.object({ city: z.string().max(24), unit: z.enum(["celsius", "fahrenheit"]) });

describe("OpenAI parameters: stop, seed, structured outputs, tools", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let workers: Service[];
  let client: OpenAI;
  let api: ReturnType<typeof apiClient>;
  const prefix = uniquePrefix("gw-openai-features");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix, 4);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `team:${KEY}`, MODEL_NAME: MODEL });
    workers = [
      await startWorker(common, { DELTA_FLUSH_MS: "10", WORKER_SLOTS: "4", SESSION_TIMEOUT_MS: "6000" }, "worker-a"),
      await startWorker(common, { DELTA_FLUSH_MS: "10", WORKER_SLOTS: "4", SESSION_TIMEOUT_MS: "6000" }, "worker-b"),
    ];
    client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    await gateway?.stop();
    for (const w of workers ?? []) await w.stop();
    await kafka?.stop();
  });

  const user = (content: string) => [{ role: "user" as const, content }];

  it("stops before the stop text, which is not in the reply (OpenAI route and native API)", async () => {
    const plain = await client.chat.completions.create({ model: MODEL, messages: user("Once upon a time"), max_tokens: 40, temperature: 0 });
    const text = plain.choices[0]!.message.content!;
    const words = text.split(" ").filter((w) => w.length >= 3);
    assert.ok(words.length >= 3, `a reply with words to stop at: ${JSON.stringify(text)}`);
    const stopAt = words[2]!;
    const stopped = await client.chat.completions.create({
      model: MODEL,
      messages: user("Once upon a time"),
      max_tokens: 40,
      temperature: 0,
      stop: [stopAt, "\u0000never"],
    });
    const reply = stopped.choices[0]!.message.content!;
    assert.equal(stopped.choices[0]!.finish_reason, "stop");
    assert.equal(reply, text.slice(0, text.indexOf(stopAt)), "the reply ends just before the stop text");

    // The native API: the same parameter, carried in the record. Two fresh conversations
    // have the same prompt: one says where to stop, the other stops there.
    const nativeTurn = async (conversation: string, extra: Record<string, unknown>) => {
      const posted = await api("POST", `/v1/conversations/${conversation}/messages`, { content: "Once upon a time", temperature: 0, max_tokens: 40, ...extra });
      assert.equal(posted.status, 202, posted.text);
      return eventually(
        async () => {
          const s = await api("GET", `/v1/requests/${posted.body.request_id}`);
          return s.body.status === "completed" ? s.body : undefined;
        },
        60_000,
        "the native turn",
      );
    };
    const nativePlain = (await nativeTurn(`native-plain-${prefix}`, {})).reply as string;
    const nativeStop = nativePlain.split(" ").filter((w) => w.length >= 3)[2]!;
    const status = await nativeTurn(`native-stop-${prefix}`, { stop: nativeStop });
    assert.equal(status.stop_reason, "stop");
    assert.equal(status.reply, nativePlain.slice(0, nativePlain.indexOf(nativeStop)));
    const bad = await api("POST", `/v1/conversations/native-stop-${prefix}/messages`, { content: "x", stop: ["a", "b", "c", "d", "e"] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /stop: must hold at most 4 stop texts/);
  });

  it("gives the same reply for the same seed on either worker, and another for another seed", async () => {
    const ask = async (seed: number, conversation: string) => {
      const { data, response } = await client.chat.completions
        .create({ model: MODEL, messages: user("The dog"), max_tokens: 24, temperature: 1, seed }, { headers: { "X-Conversation-Id": conversation } })
        .withResponse();
      const status = await api("GET", `/v1/requests/${response.headers.get("x-request-id")}`);
      return { reply: data.choices[0]!.message.content!, worker: status.body.worker_id as string };
    };
    // Fresh conversations spread over the partitions, so both workers answer some.
    const seen = new Map<string, string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const { reply, worker } = await ask(1234, `seed-${prefix}-${i}`);
      const before = [...seen.values()][0];
      if (before !== undefined) assert.equal(reply, before, `worker ${worker} generated another reply for the same seed`);
      seen.set(worker, reply);
    }
    assert.deepEqual([...seen.keys()].sort(), ["worker-a", "worker-b"], "both workers answered");
    const other = await ask(99, `seed-${prefix}-other`);
    assert.notEqual(other.reply, [...seen.values()][0], "another seed, another reply");
  });

  it("holds a reply to a JSON schema (zodResponseFormat, streamed too) and refuses a schema no reply could be checked against", async () => {
    const completion = await client.chat.completions.parse({
      model: MODEL,
      messages: user("Describe a cat."),
      max_tokens: 120,
      temperature: 0,
      response_format: zodResponseFormat(Cat, "cat"),
    });
    const choice = completion.choices[0]!;
    assert.equal(choice.finish_reason, "stop");
    assert.deepEqual(Cat.parse(JSON.parse(choice.message.content!)), choice.message.parsed);

    const stream = client.chat.completions.stream({
      model: MODEL,
      messages: user("Another cat, please."),
      max_tokens: 120,
      temperature: 0.8,
      seed: 5,
      response_format: zodResponseFormat(Cat, "cat"),
    });
    let deltas = 0;
    stream.on("content", () => deltas++);
    const final = await stream.finalChatCompletion();
    assert.ok(deltas > 1, "the JSON streams as content deltas");
    Cat.parse(final.choices[0]!.message.parsed);

    await assert.rejects(
      client.chat.completions.create({
        model: MODEL,
        messages: user("x"),
        response_format: {
          type: "json_schema",
          json_schema: { name: "n", schema: { type: "object", properties: { n: { $ref: "https://example.com/n.json" } } } },
        },
      }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.BadRequestError, String(err));
        assert.equal(err.param, "response_format.json_schema.schema.properties.n.$ref");
        assert.match(err.message, /only references inside the schema are supported/);
        return true;
      },
    );
  });

  it("takes a tool schema with exclusiveMaximum and a pattern (Pydantic's gt/lt), and ends with arguments that satisfy it or an error naming the keyword", async (t) => {
    // What Pydantic writes for Field(pattern=...) and Field(gt=0, lt=8): refused with a 400 before (issue 25).
    const parameters = {
      type: "object",
      properties: {
        city: { type: "string", pattern: "^[A-Z][a-z]{1,15}$", title: "City" },
        days: { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 8, title: "Days" },
      },
      required: ["city", "days"],
      title: "Forecast",
    };
    const ask = (seed: number) =>
      client.chat.completions.create({
        model: MODEL,
        messages: user("The weather in Oslo for three days?"),
        max_tokens: 60,
        temperature: 0.8,
        seed,
        tools: [{ type: "function", function: { name: "forecast", parameters } }],
        tool_choice: { type: "function", function: { name: "forecast" } },
      });
    const outcomes = { satisfied: 0, refused: 0 };
    for (const seed of [1, 2, 3, 4]) {
      try {
        const choice = (await ask(seed)).choices[0]!;
        if (choice.finish_reason === "length") continue;
        assert.equal(choice.finish_reason, "tool_calls");
        const call = choice.message.tool_calls![0]!;
        assert.ok(call.type === "function" && call.function.name === "forecast");
        const args = JSON.parse(call.function.arguments) as { city: string; days: number };
        assert.match(args.city, /^[A-Z][a-z]{1,15}$/);
        assert.ok(Number.isInteger(args.days) && args.days > 0 && args.days < 8, String(args.days));
        outcomes.satisfied++;
      } catch (err) {
        // A tiny model writes what the grammar admits; the check after it says which keyword failed.
        assert.ok(err instanceof OpenAI.APIError && !(err instanceof OpenAI.BadRequestError), String(err));
        assert.match(
          err.message,
          /the arguments of forecast do not satisfy its parameters: \/(city must match pattern|days must be [<>]) .*\((pattern|exclusiveMaximum|exclusiveMinimum) /,
        );
        outcomes.refused++;
      }
    }
    t.diagnostic(`calls that satisfied the schema: ${outcomes.satisfied}, failed by the check: ${outcomes.refused}`);
    assert.ok(outcomes.satisfied + outcomes.refused > 0, "some call ran to its end");
  });

  it("holds a json_object reply to JSON", async () => {
    const c = await client.chat.completions.create({
      model: MODEL,
      messages: user("A cat as JSON."),
      max_tokens: 200,
      temperature: 0,
      response_format: { type: "json_object" },
    });
    const text = c.choices[0]!.message.content!;
    assert.match(text, /^\s*\{/, "the grammar admits only a JSON object");
    // A reply cut by max_tokens is unfinished JSON, as with OpenAI; a finished one parses.
    if (c.choices[0]!.finish_reason === "stop") assert.equal(typeof JSON.parse(text), "object");
    else assert.equal(c.choices[0]!.finish_reason, "length");
  });

  it("structures output through LangChain's withStructuredOutput", async () => {
    const llm = new ChatOpenAI({
      model: MODEL,
      apiKey: KEY,
      temperature: 0,
      maxTokens: 120,
      maxRetries: 0,
      configuration: { baseURL: `${gateway.baseUrl}/v1` },
    });
    const cat = await llm.withStructuredOutput(Cat, { name: "cat", method: "jsonSchema" }).invoke("Describe a cat.");
    assert.deepEqual(Cat.parse(cat), cat);
  });

  const weatherTool = zodFunction({ name: "get_weather", parameters: Weather, description: "The weather in a city" });

  it("makes a forced call to a named function with valid arguments, and answers its result (openai tool helpers)", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = user("What is the weather in Oslo?");
    const called = await client.chat.completions.parse({
      model: MODEL,
      messages,
      max_tokens: 80,
      temperature: 0,
      tools: [weatherTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const choice = called.choices[0]!;
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    const call = choice.message.tool_calls![0]!;
    assert.equal(call.type, "function");
    assert.ok(call.type === "function" && call.function.name === "get_weather");
    assert.match(call.id, /^call_/);
    assert.deepEqual(Weather.parse(JSON.parse(call.function.arguments)), call.function.parsed_arguments);

    // The result goes back into the prompt with the model's template; the model replies in text.
    const answered = await client.chat.completions.create({
      model: MODEL,
      messages: [...messages, choice.message, { role: "tool", tool_call_id: call.id, content: "Sunny, 21 degrees." }],
      max_tokens: 16,
      temperature: 0,
      tools: [weatherTool],
      tool_choice: "none",
    });
    assert.ok(answered.choices[0]!.finish_reason === "stop" || answered.choices[0]!.finish_reason === "length");
    assert.ok(answered.choices[0]!.message.content!.length > 0);
    const alone = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 1, temperature: 0, tools: [weatherTool], tool_choice: "none" });
    assert.ok(answered.usage!.prompt_tokens > alone.usage!.prompt_tokens + 10, "the call and its result are in the prompt");
  });

  it("keeps tool calls and results in a conversation's memory and history (X-Conversation-Id)", async () => {
    const conversation = `tools-memory-${prefix}`;
    const headers = { "X-Conversation-Id": conversation };
    const messages: OpenAI.ChatCompletionMessageParam[] = user("What is the weather in Rome?");
    const called = await client.chat.completions.create(
      { model: MODEL, messages, max_tokens: 80, temperature: 0, tools: [weatherTool], tool_choice: "required" },
      { headers },
    );
    const call = called.choices[0]!.message.tool_calls![0]!;
    assert.equal(called.choices[0]!.finish_reason, "tool_calls");
    assert.ok(call.type === "function");
    const answered = await client.chat.completions.create(
      {
        model: MODEL,
        messages: [...messages, called.choices[0]!.message, { role: "tool", tool_call_id: call.id, content: "Rainy." }],
        max_tokens: 12,
        temperature: 0,
        tools: [weatherTool],
        tool_choice: "none",
      },
      { headers },
    );
    const reply = answered.choices[0]!.message.content!;
    assert.ok(reply.length > 0);
    // The prompt memory keeps tool calls and results (the history keeps text messages).
    const history = await api("GET", `/v1/conversations/${conversation}/memory`);
    assert.equal(history.status, 200, history.text);
    const shape = history.body.messages.map((m: { role: string; content: string; tool_calls?: Array<{ id: string }>; tool_call_id?: string }) => [
      m.role,
      m.content,
      m.tool_calls?.[0]?.id ?? m.tool_call_id ?? null,
    ]);
    assert.deepEqual(shape, [
      ["user", "What is the weather in Rome?", null],
      ["assistant", "", call.id],
      ["tool", "Rainy.", call.id],
      ["assistant", reply, null],
    ]);
    assert.equal(history.body.messages[1].tool_calls[0].function.arguments, call.function.arguments);
  });

  it("streams a forced call as OpenAI does: index, id and name, then argument fragments", async () => {
    const timeTool = {
      type: "function" as const,
      function: {
        name: "get_time",
        parameters: { type: "object", properties: { zone: { type: "string", maxLength: 12 } }, required: ["zone"], additionalProperties: false },
      },
    };
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: user("Weather or time?"),
      max_tokens: 80,
      temperature: 0,
      stream: true,
      tools: [weatherTool, timeTool],
      tool_choice: "required",
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    assert.ok(calls.length >= 2);
    const head = calls[0]!;
    assert.equal(head.index, 0);
    assert.match(head.id!, /^call_/);
    assert.ok(head.function!.name === "get_weather" || head.function!.name === "get_time", head.function!.name);
    const args = calls
      .filter((c) => c.index === 0)
      .map((c) => c.function?.arguments ?? "")
      .join("");
    (head.function!.name === "get_weather" ? Weather : z.object({ zone: z.string() }).strict()).parse(JSON.parse(args));
    assert.equal(
      chunks
        .filter((c) => c.choices[0]?.finish_reason)
        .map((c) => c.choices[0]!.finish_reason)
        .join(),
      "tool_calls",
    );
  });

  it("streams a named call's arguments in fragments as they are generated, adding up to the call", async () => {
    const stream = client.chat.completions.stream({
      model: MODEL,
      messages: user("What is the weather in Bergen?"),
      max_tokens: 80,
      temperature: 0,
      tools: [weatherTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const fragments: string[] = [];
    const ids = new Set<string>();
    stream.on("chunk", (c) => {
      for (const call of c.choices[0]?.delta.tool_calls ?? []) {
        assert.equal(call.index, 0);
        if (call.id) ids.add(call.id);
        if (call.function?.arguments) fragments.push(call.function.arguments);
      }
    });
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]!;
    assert.ok(call.type === "function");
    assert.ok(fragments.length >= 2, `arguments in fragments, not whole at the end: ${JSON.stringify(fragments)}`);
    assert.equal(fragments.join(""), call.function.arguments);
    assert.deepEqual([...ids], [call.id], "one id, sent with the call's first chunk");
    Weather.parse(JSON.parse(call.function.arguments));
  });

  it("documents the tools in the prompt with tool_choice auto", async () => {
    const without = await client.chat.completions.create({ model: MODEL, messages: user("Hi"), max_tokens: 4, temperature: 0 });
    const withTools = await client.chat.completions.create({ model: MODEL, messages: user("Hi"), max_tokens: 4, temperature: 0, tools: [weatherTool] });
    assert.ok(withTools.usage!.prompt_tokens > without.usage!.prompt_tokens + 10, "the chat wrapper wrote the functions into the prompt");
    for (const call of withTools.choices[0]!.message.tool_calls ?? []) {
      assert.ok(call.type === "function" && call.function.name === "get_weather");
      Weather.parse(JSON.parse(call.function.arguments));
    }
  });

  it("binds tools in LangChain: a forced call, then its ToolMessage answered", async () => {
    const getWeather = tool(async ({ city }) => `Sunny in ${city}`, { name: "get_weather", description: "The weather in a city", schema: Weather });
    const llm = new ChatOpenAI({
      model: MODEL,
      apiKey: KEY,
      temperature: 0,
      maxTokens: 80,
      maxRetries: 0,
      configuration: { baseURL: `${gateway.baseUrl}/v1` },
    });
    const question = new HumanMessage("Weather in Paris?");
    const ai = (await llm.bindTools([getWeather], { tool_choice: "get_weather" }).invoke([question])) as AIMessage;
    assert.equal(ai.tool_calls?.length, 1);
    const call = ai.tool_calls![0]!;
    assert.equal(call.name, "get_weather");
    Weather.parse(call.args);
    const result = await getWeather.invoke(call);
    assert.ok(result instanceof ToolMessage);
    const answer = await llm.bindTools([getWeather], { tool_choice: "none" }).invoke([question, ai, result]);
    assert.equal(typeof answer.content, "string");
    assert.ok((answer.content as string).length > 0);
  });

  it("generates n choices side by side, each with its index, streamed by index", async () => {
    const whole = await client.chat.completions.create({ model: MODEL, messages: user("The cat"), max_tokens: 24, temperature: 1, seed: 7, n: 4 });
    assert.deepEqual(
      whole.choices.map((c) => c.index),
      [0, 1, 2, 3],
    );
    for (const c of whole.choices) assert.ok(c.message.content!.length > 0 && (c.finish_reason === "stop" || c.finish_reason === "length"));
    assert.equal(new Set(whole.choices.map((c) => c.message.content)).size, 4, "choice i samples with seed + i: four different replies");
    const status = await api("GET", `/v1/requests/${whole.id.replace(/^chatcmpl-/, "")}`);
    assert.equal(whole.usage!.completion_tokens, status.body.usage.completion_tokens);
    assert.ok(whole.usage!.completion_tokens > 24, "completion tokens count every choice");

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: user("The cat"),
      max_tokens: 24,
      temperature: 1,
      seed: 7,
      n: 2,
      stream: true,
    });
    const texts = ["", ""];
    const finishes: number[] = [];
    for await (const c of stream) {
      for (const choice of c.choices) {
        if (choice.delta.content) {
          texts[choice.index] += choice.delta.content;
        }
        if (choice.finish_reason) finishes.push(choice.index);
      }
    }
    assert.ok(
      texts.every((t) => t.length > 0),
      JSON.stringify(texts),
    );
    assert.deepEqual(finishes.sort(), [0, 1]);
    assert.notEqual(texts[0], texts[1]);
  });

  it("accepts and ignores what clients send unasked; refuses an unknown field by name", async () => {
    const ok = await client.chat.completions.create({
      model: MODEL,
      messages: user("Hi"),
      max_tokens: 4,
      user: "u-42",
      metadata: { team: "a" },
      store: false,
      service_tier: "auto",
      parallel_tool_calls: true,
    } as never);
    assert.equal((ok as OpenAI.ChatCompletion).object, "chat.completion");
    await assert.rejects(
      client.chat.completions.create({ model: MODEL, messages: user("Hi"), colour: "red" } as never),
      (err: unknown) => err instanceof OpenAI.BadRequestError && /Unrecognized key.*colour/.test(err.message),
    );
    await assert.rejects(
      client.chat.completions.create({ model: MODEL, messages: user("Hi"), top_logprobs: 2 }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === "top_logprobs" && /needs logprobs: true/.test(err.message),
    );
  });

  // Last: it kills a worker.
  it("gives the same seeded reply after a takeover: the next owner re-runs it with the seed the record carries", async () => {
    const body = { model: MODEL, messages: user("Tom and Sue went to the beach."), max_tokens: 400, temperature: 1 };
    // A seed whose reply runs long enough to be killed in the middle of.
    let seed = 0;
    let alone: OpenAI.ChatCompletion | undefined;
    for (const candidate of [11, 12, 13, 14, 15, 16, 17, 18]) {
      const c = await client.chat.completions.create({ ...body, seed: candidate });
      if (c.usage!.completion_tokens >= 200) {
        [seed, alone] = [candidate, c];
        break;
      }
    }
    assert.ok(alone, "a seed with a reply of 200 tokens or more");
    const { data: stream, response } = await client.chat.completions.create({ ...body, seed, stream: true }).withResponse();
    const requestId = response.headers.get("x-request-id")!;
    let text = "";
    let killed: string | undefined;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? "";
      if (killed === undefined && text.length > 0) {
        killed = (await api("GET", `/v1/requests/${requestId}`)).body.worker_id as string;
        await workers.find((w) => w.name === killed)!.stop("SIGKILL");
      }
    }
    const status = await api("GET", `/v1/requests/${requestId}`);
    assert.equal(status.body.status, "completed");
    assert.notEqual(status.body.worker_id, killed, "the other worker finished it");
    assert.equal(status.body.reply, alone.choices[0]!.message.content, "the same reply as alone, on the first worker");
    assert.equal(text, status.body.reply, "the stream went on where it stopped");
  });
});
