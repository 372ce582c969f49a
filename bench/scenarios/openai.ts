/**
 * 9. The OpenAI parameters' cost (issue 16), through the real gateway's OpenAI route with
 * the official client, against one worker with 4 slots:
 *
 *   grammar    the same prompts streamed with a JSON-schema response_format and without
 *              (temperature 0, the same max_tokens): time to first token (client side, to
 *              the first content chunk) and tokens/s after it. The schema's grammar is
 *              built once per worker (cached), so a warm-up request goes first.
 *   choices    n=4 in one request against four separate requests sent at once (each on its
 *              own partition, so the worker runs them side by side): wall time and
 *              aggregate tokens/s. The prompts are the same (the stateless n=4 request
 *              carries the system prompt the separate turns get from memory).
 *   seed       the same seeded request (temperature 1) alone, and while three other
 *              requests generate on the same worker: how often the reply is the one it
 *              gives alone. llama.cpp batches the sequences together, and a batch's shape
 *              can change the floating-point sums, hence the sampled token.
 */
import OpenAI from "openai";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { KeyMaker } from "../lib/partitions.js";
import { LOCAL_TENANT } from "../../gateway/auth.js";
import type { Service } from "../../testkit/services.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt, ms } from "../lib/scenario.js";
import { createTopics, stackSpec, startGateway, startWorker } from "../lib/stack.js";
import { summarize, type Summary } from "../lib/stats.js";
import { PROMPTS } from "./route.js";

const SLOTS = 4;
const PARTITIONS = 8;
const MAX_TOKENS = 64;
/** Room for a whole JSON reply: stories260K's small vocabulary spends a token on every few characters. */
const GRAMMAR_MAX_TOKENS = 200;
const MODEL = "stories-260k";

const CAT_SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 16 },
    age: { type: "integer" },
    colour: { enum: ["black", "white", "ginger"] },
    indoor: { type: "boolean" },
  },
  required: ["name", "age", "colour", "indoor"],
  additionalProperties: false,
};

interface Streamed {
  ttftMs: number;
  totalMs: number;
  tokens: number;
  text: string;
}

async function streamOnce(
  client: OpenAI,
  body: Omit<OpenAI.ChatCompletionCreateParamsStreaming, "model" | "stream">,
  headers?: Record<string, string>,
): Promise<Streamed> {
  const sentAt = performance.now();
  let first: number | undefined;
  let text = "";
  let tokens = 0;
  const stream = await client.chat.completions.create(
    { ...body, model: MODEL, stream: true, stream_options: { include_usage: true } },
    headers ? { headers } : undefined,
  );
  for await (const chunk of stream) {
    const content = chunk.choices[0]?.delta.content;
    if (content) {
      first ??= performance.now();
      text += content;
    }
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  const end = performance.now();
  return { ttftMs: (first ?? end) - sentAt, totalMs: end - sentAt, tokens, text };
}

interface GrammarFigures {
  ttft: Summary;
  tokensPerS: Summary;
  meanTokens: number;
  validJson: number;
  requests: number;
}

function grammarFigures(samples: Streamed[], json: boolean): GrammarFigures {
  return {
    ttft: summarize(samples.map((s) => s.ttftMs)),
    // After the first token: replies of different lengths are compared on decoding alone.
    tokensPerS: summarize(samples.map((s) => ((s.tokens - 1) / Math.max(1e-3, s.totalMs - s.ttftMs)) * 1000)),
    meanTokens: samples.reduce((a, s) => a + s.tokens, 0) / samples.length,
    validJson: json
      ? samples.filter((s) => {
          try {
            JSON.parse(s.text);
            return true;
          } catch {
            return false;
          }
        }).length
      : 0,
    requests: samples.length,
  };
}

export const openaiScenario: Scenario = {
  id: "openai",
  title: "9. OpenAI parameters: JSON-schema grammar vs none, n=4 vs four requests, seeds beside other sequences",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const rounds = ctx.quick ? 8 : 32;
    const choiceRounds = ctx.quick ? 3 : 10;
    const seedRounds = ctx.quick ? 4 : 12;
    const system = loadWorkerConfig({ MODEL: ctx.model, WORKER_HTTP_HOST: "127.0.0.1" }).memory.systemPrompt;
    const spec = stackSpec(ctx.brokers, "openai", PARTITIONS);
    await createTopics(spec);
    const children: Service[] = [];
    try {
      ctx.log("starting worker and gateway");
      children.push(await startWorker(spec, ctx.model, "w-openai", { WORKER_SLOTS: String(SLOTS) }));
      const gateway = await startGateway(spec, { MODEL_NAME: MODEL });
      children.push(gateway);
      const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: "none", maxRetries: 0, timeout: 120_000 });
      const messages = (i: number): OpenAI.ChatCompletionMessageParam[] => [
        { role: "system", content: system },
        { role: "user", content: PROMPTS[i % PROMPTS.length]! },
      ];
      const schemaFormat = { type: "json_schema" as const, json_schema: { name: "cat", schema: CAT_SCHEMA, strict: true } };

      // Grammar vs none, interleaved so load changes hit both alike; one warm-up each.
      await streamOnce(client, { messages: messages(0), max_tokens: GRAMMAR_MAX_TOKENS, temperature: 0 });
      await streamOnce(client, { messages: messages(0), max_tokens: GRAMMAR_MAX_TOKENS, temperature: 0, response_format: schemaFormat });
      const plain: Streamed[] = [];
      const schema: Streamed[] = [];
      ctx.log(`grammar: ${rounds} requests each way`);
      for (let i = 0; i < rounds; i++) {
        plain.push(await streamOnce(client, { messages: messages(i), max_tokens: GRAMMAR_MAX_TOKENS, temperature: 0 }));
        schema.push(await streamOnce(client, { messages: messages(i), max_tokens: GRAMMAR_MAX_TOKENS, temperature: 0, response_format: schemaFormat }));
      }
      const none = grammarFigures(plain, false);
      const withSchema = grammarFigures(schema, true);

      // n=4 vs four separate requests at once, each on its own partition.
      const keys = new KeyMaker("openai", PARTITIONS, LOCAL_TENANT);
      const nWall: number[] = [];
      const nTokens: number[] = [];
      const sepWall: number[] = [];
      const sepTokens: number[] = [];
      ctx.log(`choices: ${choiceRounds} rounds of n=4 and of four requests`);
      for (let r = 0; r < choiceRounds; r++) {
        const prompt = PROMPTS[r % PROMPTS.length]!;
        let started = performance.now();
        const whole = await client.chat.completions.create({
          model: MODEL,
          messages: [
            { role: "system", content: system },
            { role: "user", content: prompt },
          ],
          max_tokens: MAX_TOKENS,
          temperature: 1,
          seed: r,
          n: 4,
        });
        nWall.push(performance.now() - started);
        nTokens.push(whole.usage!.completion_tokens);
        started = performance.now();
        const separate = await Promise.all(
          Array.from({ length: 4 }, (_, i) =>
            client.chat.completions.create(
              { model: MODEL, messages: [{ role: "user", content: prompt }], max_tokens: MAX_TOKENS, temperature: 1, seed: r + i },
              { headers: { "X-Conversation-Id": keys.next((r * 4 + i) % PARTITIONS) } },
            ),
          ),
        );
        sepWall.push(performance.now() - started);
        sepTokens.push(separate.reduce((a, c) => a + c.usage!.completion_tokens, 0));
      }
      const rate = (tokens: number[], wall: number[]) => (tokens.reduce((a, b) => a + b, 0) / wall.reduce((a, b) => a + b, 0)) * 1000;

      // The same seeded request alone, then beside three others.
      ctx.log(`seed: ${seedRounds} rounds alone and batched`);
      let same = 0;
      for (let r = 0; r < seedRounds; r++) {
        const seeded = { messages: messages(r), max_tokens: MAX_TOKENS, temperature: 1, seed: 1000 + r };
        const alone = await streamOnce(client, seeded);
        const [batched] = await Promise.all([
          streamOnce(client, seeded),
          ...Array.from({ length: 3 }, (_, i) =>
            streamOnce(
              client,
              { messages: [{ role: "user", content: PROMPTS[(r + i + 1) % PROMPTS.length]! }], max_tokens: MAX_TOKENS, temperature: 1 },
              { "X-Conversation-Id": keys.next((r + i + 1) % PARTITIONS) },
            ),
          ),
        ]);
        if (batched!.text === alone.text) same++;
      }

      const rows: Row[] = [
        {
          figure: "time to first token, no grammar (p50 / p95)",
          measured: `${ms(none.ttft.p50)} / ${ms(none.ttft.p95)}`,
          compared: `${none.requests} streamed requests, max_tokens ${GRAMMAR_MAX_TOKENS}`,
        },
        {
          figure: "time to first token, JSON-schema grammar (p50 / p95)",
          measured: `${ms(withSchema.ttft.p50)} / ${ms(withSchema.ttft.p95)}`,
          compared: `×${fmt(withSchema.ttft.p50 / none.ttft.p50, 2)} at p50`,
        },
        {
          figure: "tokens/s after the first token, no grammar (p50)",
          measured: fmt(none.tokensPerS.p50),
          compared: `${fmt(none.meanTokens)} tokens per reply`,
        },
        {
          figure: "tokens/s after the first token, JSON-schema grammar (p50)",
          measured: fmt(withSchema.tokensPerS.p50),
          compared: `×${fmt(withSchema.tokensPerS.p50 / none.tokensPerS.p50, 2)}; ${fmt(withSchema.meanTokens)} tokens per reply; ${withSchema.validJson}/${withSchema.requests} parse as JSON`,
        },
        {
          figure: "n=4 in one request: wall time (p50), tokens/s",
          measured: `${ms(summarize(nWall).p50)}, ${fmt(rate(nTokens, nWall))}`,
          compared: `${choiceRounds} requests`,
        },
        {
          figure: "four separate requests at once: wall time (p50), tokens/s",
          measured: `${ms(summarize(sepWall).p50)}, ${fmt(rate(sepTokens, sepWall))}`,
          compared: `n=4 takes ×${fmt(summarize(nWall).p50 / summarize(sepWall).p50, 2)} the wall time`,
        },
        {
          figure: "seeded reply unchanged beside 3 other sequences",
          measured: `${same}/${seedRounds}`,
          compared: "alone, the same seed always gives the same reply (tests)",
        },
      ];
      const broken = withSchema.validJson === withSchema.requests ? [] : [`${withSchema.requests - withSchema.validJson} JSON-schema replies did not parse`];
      return {
        rows,
        targets: [],
        notes: [
          `One worker (WORKER_SLOTS=${SLOTS}, one CPU thread) and the gateway; requests through the openai client on the OpenAI route.`,
          "The grammar's cost is the per-token work llama.cpp does to mask the vocabulary, plus a reply shaped by the schema (its token count differs from the free reply's).",
        ],
        raw: { none, withSchema, choices: { nWall, nTokens, sepWall, sepTokens }, seed: { same, rounds: seedRounds } },
        broken,
      };
    } finally {
      for (const c of children.reverse()) await c.stop();
    }
  },
};
