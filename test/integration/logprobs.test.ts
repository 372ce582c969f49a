/**
 * Token logprobs through the gateway with the official openai client, on stories260K:
 * chat completions (whole and streamed) and the Responses API with
 * include message.output_text.logprobs. The worker generates them with its own loop on the
 * slot's sequence (worker/logprob-generation.ts); greedy, so its reply is the one LlamaChat
 * gives without logprobs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "logprobs-test-key-42";
const MODEL = "stories-260k";
const messages = [{ role: "user" as const, content: "Tell me a story about a cat." }];

interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] | null }>;
}

/** What every token of a reply with top_logprobs 2 must satisfy. */
function checkTokens(tokens: readonly TokenLogprob[], text: string, what: string): void {
  assert.ok(tokens.length > 0, `${what}: tokens`);
  assert.equal(tokens.map((t) => t.token).join(""), text, `${what}: the tokens join to the text`);
  assert.deepEqual(Buffer.from(tokens.flatMap((t) => t.bytes ?? [])).toString("utf8"), text, `${what}: and their bytes to its UTF-8`);
  for (const t of tokens) {
    assert.ok(t.logprob <= 0, `${what}: logprob ${t.logprob} <= 0`);
    assert.equal(t.top_logprobs.length, 2, `${what}: two alternatives`);
    assert.ok(t.top_logprobs[0]!.logprob >= t.top_logprobs[1]!.logprob, `${what}: most likely first`);
    // Greedy: the token taken is the most likely one.
    assert.equal(t.logprob, t.top_logprobs[0]!.logprob, `${what}: greedy takes the top alternative`);
  }
}

describe("token logprobs (stories260K)", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let client: OpenAI;
  const prefix = uniquePrefix("logprobs");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `team:${KEY}`, MODEL_NAME: MODEL, SSE_KEEPALIVE_MS: "200" });
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000", WORKER_SLOTS: "2" });
    client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("gives each token's logprob and two alternatives on a whole completion, the reply unchanged by asking", async () => {
    const body = { model: MODEL, messages, max_tokens: 40, temperature: 0 };
    const plain = await client.chat.completions.create(body);
    assert.equal(plain.choices[0]!.logprobs, null, "none unasked");
    const withLogprobs = await client.chat.completions.create({ ...body, logprobs: true, top_logprobs: 2 });
    const choice = withLogprobs.choices[0]!;
    assert.equal(choice.message.content, plain.choices[0]!.message.content, "the logprobs loop generates what LlamaChat does");
    assert.equal(choice.finish_reason, plain.choices[0]!.finish_reason);
    assert.equal(withLogprobs.usage!.completion_tokens, plain.usage!.completion_tokens);
    checkTokens(choice.logprobs!.content!, choice.message.content!, "whole");
  });

  it("streams each chunk's tokens with it", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 40,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    });
    let content = "";
    const tokens: TokenLogprob[] = [];
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c?.delta.content) continue;
      content += c.delta.content;
      assert.ok(c.logprobs?.content, "a content chunk carries logprobs");
      assert.equal(c.logprobs.content.map((t) => t.token).join(""), c.delta.content, "the chunk's tokens join to its content");
      tokens.push(...(c.logprobs.content as TokenLogprob[]));
    }
    checkTokens(tokens, content, "streamed");
  });

  it("refuses logprobs with tools, naming the parameter", async () => {
    await assert.rejects(
      client.chat.completions.create({
        model: MODEL,
        messages,
        logprobs: true,
        tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }],
      }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === "logprobs" && /cannot be combined with tools/.test(err.message),
    );
  });

  it("gives the output text's logprobs on /v1/responses with include message.output_text.logprobs, whole and streamed", async () => {
    const body = {
      model: MODEL,
      input: "Tell me a story about a dog.",
      max_output_tokens: 40,
      temperature: 0,
      store: false,
      include: ["message.output_text.logprobs" as const],
      top_logprobs: 2,
    };
    const whole = await client.responses.create(body);
    const message = whole.output.find((o) => o.type === "message")!;
    const part = message.content[0]! as OpenAI.Responses.ResponseOutputText;
    assert.equal(part.text, whole.output_text);
    checkTokens(part.logprobs as TokenLogprob[], part.text, "responses whole");

    const stream = await client.responses.create({ ...body, stream: true });
    let text = "";
    const tokens: TokenLogprob[] = [];
    let done: OpenAI.Responses.ResponseTextDoneEvent | null = null;
    for await (const event of stream) {
      if (event.type === "response.output_text.delta") {
        text += event.delta;
        assert.equal(event.logprobs.map((t) => t.token).join(""), event.delta, "a delta's tokens join to it");
        tokens.push(...(event.logprobs as TokenLogprob[]));
      } else if (event.type === "response.output_text.done") done = event;
    }
    assert.equal(text, part.text, "greedy: the same text streamed");
    checkTokens(tokens, text, "responses streamed");
    assert.deepEqual(done?.logprobs, tokens, "the done event holds them all");
  });
});
