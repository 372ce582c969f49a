/**
 * OpenAI's Responses API as real client libraries speak it, against a real gateway, broker
 * and worker: the OpenAI Agents SDK (an agent run with a function tool, whole-history and
 * chained with previousResponseId and conversationId, streamed), the Vercel AI SDK (generateText, streamText, a tool
 * step) and LangChain.js ChatOpenAI with useResponsesApi (invoke, stream, a bound tool).
 * The model is tiny and its text nonsense: the assertions are on structure, calls and usage.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createOpenAI } from "@ai-sdk/openai";
import { AIMessage, HumanMessage, ToolMessage, type AIMessageChunk } from "@langchain/core/messages";
import { tool as langchainTool } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import { Agent, OpenAIProvider, type AgentInputItem, Runner, setTracingDisabled, tool as agentTool } from "@openai/agents";
import { generateText, stepCountIs, streamText, tool as aiTool } from "ai";
import OpenAI from "openai";
import { z } from "zod";
import { apiClient, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "responses-clients-key-9";
const MODEL = "stories-260k";
const Weather = z.object({ city: z.string().max(24) });
const Forecast = z.object({ summary: z.string().max(40) });
const SUNNY = "Sunny, 21 degrees.";

describe("Responses API clients: OpenAI Agents SDK, Vercel AI SDK, LangChain.js", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let openai: OpenAI;
  let api: ReturnType<typeof apiClient>;
  let baseURL: string;
  const prefix = uniquePrefix("responses-clients");

  before(async () => {
    setTracingDisabled(true);
    kafka = await useKafka();
    gateway = await startGateway({ ...stackEnv(kafka, prefix), GATEWAY_API_KEYS: `t:${KEY}`, MODEL_NAME: MODEL });
    worker = await startWorker(stackEnv(kafka, prefix), { DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000", WORKER_SLOTS: "2" });
    baseURL = `${gateway.baseUrl}/v1`;
    openai = new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  /** The messages of a response's conversation, as the native API keeps them: [role, tool calls, tool_call_id]. */
  async function memoryOf(responseId: string): Promise<Array<[string, number, string | null]>> {
    const conversation = (await openai.responses.retrieve(responseId)).conversation!.id;
    const memory = await api("GET", `/v1/conversations/${conversation}/memory`);
    assert.equal(memory.status, 200, memory.text);
    return memory.body.messages.map((m: { role: string; tool_calls?: unknown[]; tool_call_id?: string }) => [
      m.role,
      m.tool_calls?.length ?? 0,
      m.tool_call_id ?? null,
    ]);
  }

  describe("OpenAI Agents SDK", () => {
    const calls: Array<z.infer<typeof Weather>> = [];
    const getWeather = agentTool({
      name: "get_weather",
      description: "The weather in a city",
      parameters: Weather,
      execute: async (args) => {
        calls.push(Weather.parse(args));
        return SUNNY;
      },
    });
    // The tool is forced, and its output is the run's final output: after a tool the SDK asks
    // again with tool_choice auto, and the tiny model rambles on to the token cap, which the SDK
    // takes for a failure (an incomplete response). The answer to the tool's output comes from a
    // second agent with a bounded structured output, which ends.
    const caller = new Agent({
      name: "Caller",
      instructions: "Look up the weather.",
      model: MODEL,
      tools: [getWeather],
      toolUseBehavior: "stop_on_first_tool",
      modelSettings: { toolChoice: "get_weather", temperature: 0, maxTokens: 60 },
    });
    const reporter = new Agent({
      name: "Reporter",
      instructions: "Report the weather.",
      model: MODEL,
      outputType: Forecast,
      modelSettings: { temperature: 0, maxTokens: 120 },
    });
    let runner: Runner;

    before(() => {
      runner = new Runner({ modelProvider: new OpenAIProvider({ baseURL, apiKey: KEY, useResponses: true }), tracingDisabled: true });
    });

    /** Runs the caller once: the tool ran with arguments that parse, and its output ended the run. */
    async function callTool(question: string) {
      const before = calls.length;
      const result = await runner.run(caller, question, { maxTurns: 2 });
      assert.equal(calls.length, before + 1, "the tool ran once");
      assert.equal(typeof calls.at(-1)!.city, "string");
      assert.deepEqual(
        result.newItems.map((i) => i.type),
        ["tool_call_item", "tool_call_output_item"],
      );
      assert.equal(result.finalOutput, SUNNY);
      assert.equal(result.rawResponses.length, 1);
      assert.ok(result.rawResponses[0]!.usage.inputTokens > 0 && result.rawResponses[0]!.usage.outputTokens > 0);
      assert.match(result.lastResponseId!, /^resp_/);
      return result;
    }

    it("runs an agent that calls a function tool, and hands the whole history to another for its answer", async () => {
      const called = await callTool("What is the weather in Oslo?");
      const callId = (called.newItems[0]!.rawItem as { callId: string }).callId;
      // Streamed: the text deltas are the structured output the run ends with.
      const answered = await runner.run(reporter, called.history, { maxTurns: 1, stream: true });
      let streamed = "";
      for await (const delta of answered.toTextStream()) streamed += delta;
      await answered.completed;
      assert.equal(answered.error, null);
      assert.deepEqual(Forecast.parse(answered.finalOutput), answered.finalOutput);
      assert.deepEqual(JSON.parse(streamed), answered.finalOutput);
      // Sent whole, the history starts a conversation that holds the call and its output.
      assert.deepEqual(await memoryOf(answered.lastResponseId!), [
        ["user", 0, null],
        ["assistant", 1, null],
        ["tool", 0, callId],
        ["assistant", 0, null],
      ]);
    });

    it("goes on from the tool call's response with previousResponseId (the tool's output joins that conversation), then with conversationId", async () => {
      const called = await callTool("What is the weather in Bergen?");
      const output = called.newItems[1]!.rawItem as AgentInputItem;
      const answered = await runner.run(reporter, [output], { maxTurns: 1, previousResponseId: called.lastResponseId });
      assert.deepEqual(Forecast.parse(answered.finalOutput), answered.finalOutput);
      const again = await runner.run(reporter, "And tomorrow?", { maxTurns: 1, previousResponseId: answered.lastResponseId });
      assert.deepEqual(Forecast.parse(again.finalOutput), again.finalOutput);
      // One conversation, each response a turn of it after the one before.
      const chain = [called.lastResponseId!, answered.lastResponseId!, again.lastResponseId!];
      const stored = await Promise.all(chain.map((id) => openai.responses.retrieve(id)));
      assert.equal(new Set(stored.map((r) => r.conversation!.id)).size, 1);
      assert.ok(stored[2]!.usage!.input_tokens_details.cached_tokens > 0, "the prompt went on from the worker's cache");
      const conversation = stored[0]!.conversation!.id;
      assert.equal((await api("GET", `/v1/conversations/${conversation}`)).body.turns, 3);
      // The SDK's other server-side state: a conversation named by its id takes the next turn.
      const more = await runner.run(reporter, "And the day after?", { maxTurns: 1, conversationId: conversation });
      assert.deepEqual(Forecast.parse(more.finalOutput), more.finalOutput);
      assert.equal((await openai.responses.retrieve(more.lastResponseId!)).conversation!.id, conversation);
      assert.equal((await api("GET", `/v1/conversations/${conversation}`)).body.turns, 4);
      assert.deepEqual(await memoryOf(more.lastResponseId!), [
        ["user", 0, null],
        ["assistant", 1, null],
        ["tool", 0, (output as { callId: string }).callId],
        ["assistant", 0, null],
        ["user", 0, null],
        ["assistant", 0, null],
        ["user", 0, null],
        ["assistant", 0, null],
      ]);
    });
  });

  describe("Vercel AI SDK", () => {
    let provider: ReturnType<typeof createOpenAI>;

    before(() => {
      provider = createOpenAI({ baseURL, apiKey: KEY });
    });

    it("generateText: text, finish reason and usage", async () => {
      const result = await generateText({
        model: provider.responses(MODEL),
        system: "You tell stories.",
        prompt: "Once upon a time",
        maxOutputTokens: 16,
        temperature: 0,
        maxRetries: 0,
      });
      assert.ok(result.text.length > 0);
      assert.ok(result.usage.inputTokens! > 0);
      assert.ok(result.usage.outputTokens! > 0);
      assert.equal(result.finishReason, result.usage.outputTokens! >= 16 ? "length" : "stop");
      const stored = await openai.responses.retrieve(result.response.id);
      assert.equal(stored.output_text, result.text);
      assert.equal(stored.usage!.output_tokens, result.usage.outputTokens);
    });

    it("streamText: the streamed text is the final text, with finish reason and usage", async () => {
      const result = streamText({ model: provider.responses(MODEL), prompt: "Once upon a time", maxOutputTokens: 24, temperature: 0, maxRetries: 0 });
      const chunks: string[] = [];
      for await (const chunk of result.textStream) chunks.push(chunk);
      assert.ok(chunks.length > 1, "more than one delta");
      const text = await result.text;
      assert.equal(chunks.join(""), text);
      const usage = await result.usage;
      assert.ok(usage.inputTokens! > 0 && usage.outputTokens! > 0);
      assert.equal(await result.finishReason, usage.outputTokens! >= 24 ? "length" : "stop");
      assert.equal((await openai.responses.retrieve((await result.response).id)).output_text, text);
    });

    it("a forced tool step, then an answer to its result", async () => {
      const seen: Array<z.infer<typeof Weather>> = [];
      const result = await generateText({
        model: provider.responses(MODEL),
        prompt: "What is the weather in Oslo?",
        tools: {
          get_weather: aiTool({
            description: "The weather in a city",
            inputSchema: Weather,
            execute: async (args) => {
              seen.push(Weather.parse(args));
              return SUNNY;
            },
          }),
        },
        toolChoice: { type: "tool", toolName: "get_weather" },
        prepareStep: ({ stepNumber }) => (stepNumber > 0 ? { toolChoice: "none" } : undefined),
        stopWhen: stepCountIs(2),
        maxOutputTokens: 60,
        temperature: 0,
        maxRetries: 0,
      });
      assert.equal(seen.length, 1);
      assert.equal(result.steps.length, 2);
      assert.equal(result.steps[0]!.finishReason, "tool-calls");
      assert.equal(result.steps[0]!.toolCalls[0]!.toolName, "get_weather");
      assert.equal(result.steps[0]!.toolResults[0]!.output, SUNNY);
      assert.ok(["stop", "length"].includes(result.finishReason));
      assert.ok(result.text.length > 0);
      assert.ok(result.totalUsage.inputTokens! > result.steps[0]!.usage.inputTokens!);
      // The second step sent the whole history: a conversation that holds the call and its output.
      assert.deepEqual(await memoryOf(result.response.id), [
        ["user", 0, null],
        ["assistant", 1, null],
        ["tool", 0, result.steps[0]!.toolCalls[0]!.toolCallId],
        ["assistant", 0, null],
      ]);
    });
  });

  describe("LangChain.js ChatOpenAI with useResponsesApi", () => {
    const llm = () =>
      new ChatOpenAI({ model: MODEL, apiKey: KEY, temperature: 0, maxTokens: 24, maxRetries: 0, useResponsesApi: true, configuration: { baseURL } });

    it("invokes: text, usage and the response's id", async () => {
      const answer = await llm().invoke("Once upon a time");
      assert.ok(answer.text.length > 0);
      assert.ok(answer.usage_metadata!.input_tokens > 0);
      assert.ok(answer.usage_metadata!.output_tokens > 0);
      const id = answer.response_metadata.id as string;
      assert.match(id, /^resp_/);
      assert.equal((await openai.responses.retrieve(id)).output_text, answer.text);
    });

    it("streams chunks whose concatenation is the stored response", async () => {
      let whole: AIMessageChunk | undefined;
      let n = 0;
      for await (const chunk of await llm().stream("Once upon a time")) {
        whole = whole ? whole.concat(chunk) : chunk;
        n++;
      }
      assert.ok(n > 1 && whole);
      assert.ok(whole.text.length > 0);
      assert.ok(whole.usage_metadata!.output_tokens > 0);
      const id = whole.response_metadata.id as string;
      assert.equal((await openai.responses.retrieve(id)).output_text, whole.text);
    });

    it("makes a forced, bound tool call with arguments that parse, and answers its result", async () => {
      const getWeather = langchainTool(async (args) => `${Weather.parse(args).city}: ${SUNNY}`, {
        name: "get_weather",
        description: "The weather in a city",
        schema: Weather,
      });
      const model = new ChatOpenAI({
        model: MODEL,
        apiKey: KEY,
        temperature: 0,
        maxTokens: 60,
        maxRetries: 0,
        useResponsesApi: true,
        configuration: { baseURL },
      });
      const question = new HumanMessage("Weather in Paris?");
      const ai = (await model.bindTools([getWeather], { tool_choice: "get_weather" }).invoke([question])) as AIMessage;
      assert.equal(ai.tool_calls?.length, 1);
      const call = ai.tool_calls![0]!;
      assert.equal(call.name, "get_weather");
      Weather.parse(call.args);
      const result = await getWeather.invoke(call);
      assert.ok(result instanceof ToolMessage);
      const answer = await model.bindTools([getWeather], { tool_choice: "none" }).invoke([question, ai, result]);
      assert.ok(answer.text.length > 0);
      assert.deepEqual(await memoryOf(answer.response_metadata.id as string), [
        ["user", 0, null],
        ["assistant", 1, null],
        ["tool", 0, call.id!],
        ["assistant", 0, null],
      ]);
    });
  });
});
