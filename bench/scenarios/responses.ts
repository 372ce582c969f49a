/**
 * 15. The OpenAI Responses API (issue 25) against the chat completion it stands beside, on
 * one worker and one gateway, through plain fetch (no SDK: the client's own work stays out).
 *
 *   per call   the same prompt (the worker's system prompt, then PROMPTS[i]), max tokens
 *              and temperature 0 sent, not streamed, one at a time, as three pairs:
 *                stateless     POST /v1/chat/completions with the whole context, and
 *                              POST /v1/responses with store: false (instructions + input);
 *                opening       a completion with a new X-Conversation-Id, and a response
 *                              with store: true (each opens a conversation);
 *                continuing    a completion on one conversation (X-Conversation-Id) and a
 *                              response continuing one chain (previous_response_id), a turn
 *                              each per round: the response's gateway first asks the owning
 *                              worker for the conversation's state (to find the latest
 *                              response) before it produces the turn.
 *              Interleaved (each round sends the six, the pairs' order swapped every other
 *              round), so load from other processes falls on both sides of a pair alike;
 *              the figure is wall time per call at the client, the ratio
 *              response / completion of the same run, and the median of each round's
 *              difference (response - completion, sent back to back).
 *   chain      20 turns of one previous_response_id chain (store: true): each turn's
 *              usage.input_tokens_details.cached_tokens / usage.input_tokens, the share
 *              of the prompt found in the slot's KV cache; beside it, turn by turn, the
 *              same 20 user messages sent as a stateless client does, store: false with
 *              the whole conversation so far (its own earlier replies included) as the
 *              input each time. Evaluated tokens are input_tokens - cached_tokens.
 *
 * The worker has WORKER_SLOTS=8, so the two conversations that go on (with their own
 * slots) keep them while the one-call requests take the least recently used of the rest,
 * and MEMORY_MAX_TOKENS large enough that the 20-turn chain is never trimmed (a trim drops
 * the prompt's oldest messages, and so the cached prefix).
 */
import { randomUUID } from "node:crypto";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import type { Service } from "../../testkit/services.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt, ms } from "../lib/scenario.js";
import { createTopics, stackSpec, startGateway, startWorker } from "../lib/stack.js";
import { median, summarize, type Summary } from "../lib/stats.js";
import { PROMPTS } from "./route.js";

const MODEL = "stories-260k";
const PARTITIONS = 4;
const SLOTS = 8;
/**
 * The remembered messages' content tokens (the chat template's come on top, about as many
 * again): the 20-turn chain (about 460) is never trimmed, and the 40-round conversations of
 * the per-call pairs are trimmed (both alike) before their prompt outgrows stories260K's
 * 2,048-token context a slot.
 */
const MEMORY_MAX_TOKENS = 700;
/** Max tokens of every call: short replies, so the figures are the route's cost more than generation's. */
const CALL_MAX_TOKENS = 16;
/** Max output tokens of a chain turn: 20 turns of prompt and reply fit the context. */
const CHAIN_MAX_TOKENS = 8;
const CHAIN_TURNS = 20;
const REPORTED_TURNS = [1, 5, 10, 15, 20];

type Variant = "completion" | "response-stateless" | "completion-open" | "response-open" | "completion-conversation" | "response-chain";
const PAIRS: Array<[Variant, Variant, string]> = [
  ["completion", "response-stateless", "stateless: completion with the whole context vs response with store: false"],
  ["completion-open", "response-open", "opening a conversation: completion with a new X-Conversation-Id vs response with store: true"],
  ["completion-conversation", "response-chain", "continuing: completion on one X-Conversation-Id vs response with previous_response_id"],
];

interface Usage {
  input: number;
  cached: number;
  output: number;
}

interface Call {
  ms: number;
  usage: Usage;
  text: string;
  id: string;
  /** Bytes of the request's body. */
  bodyBytes: number;
}

class HttpError extends Error {}

async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ json: Record<string, unknown>; ms: number; bodyBytes: number }> {
  const text = JSON.stringify(body);
  const t0 = performance.now();
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: text });
  const json = (await res.json()) as Record<string, unknown>;
  const elapsed = performance.now() - t0;
  if (res.status !== 200) throw new HttpError(`POST ${url}: ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
  return { json, ms: elapsed, bodyBytes: Buffer.byteLength(text) };
}

async function completion(baseUrl: string, messages: Array<{ role: string; content: string }>, maxTokens: number, conversationId?: string): Promise<Call> {
  const r = await post(
    `${baseUrl}/v1/chat/completions`,
    { model: MODEL, messages, max_tokens: maxTokens, temperature: 0 },
    conversationId === undefined ? {} : { "x-conversation-id": conversationId },
  );
  const usage = r.json.usage as { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
  const choices = r.json.choices as Array<{ message: { content: string | null } }>;
  return {
    ms: r.ms,
    usage: { input: usage.prompt_tokens, cached: usage.prompt_tokens_details?.cached_tokens ?? 0, output: usage.completion_tokens },
    text: choices[0]?.message.content ?? "",
    id: String(r.json.id),
    bodyBytes: r.bodyBytes,
  };
}

async function response(baseUrl: string, body: Record<string, unknown>): Promise<Call> {
  const r = await post(`${baseUrl}/v1/responses`, { model: MODEL, temperature: 0, ...body });
  const usage = r.json.usage as { input_tokens: number; output_tokens: number; input_tokens_details: { cached_tokens: number } };
  const output = r.json.output as Array<{ type: string; content?: Array<{ type: string; text: string }> }>;
  const text = output
    .filter((o) => o.type === "message")
    .flatMap((o) => o.content ?? [])
    .map((c) => c.text)
    .join("");
  return {
    ms: r.ms,
    usage: { input: usage.input_tokens, cached: usage.input_tokens_details.cached_tokens, output: usage.output_tokens },
    text,
    id: String(r.json.id),
    bodyBytes: r.bodyBytes,
  };
}

interface ChainTurn {
  turn: number;
  inputTokens: number;
  cachedTokens: number;
  share: number;
  evaluated: number;
  bodyBytes: number;
  ms: number;
}

const turnOf = (turn: number, c: Call): ChainTurn => ({
  turn,
  inputTokens: c.usage.input,
  cachedTokens: c.usage.cached,
  share: c.usage.input > 0 ? c.usage.cached / c.usage.input : 0,
  evaluated: c.usage.input - c.usage.cached,
  bodyBytes: c.bodyBytes,
  ms: c.ms,
});

const pct = (share: number) => `${fmt(100 * share, 0)}%`;
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

export const responsesScenario: Scenario = {
  id: "responses",
  title: "15. Responses API: a response's cost over the same chat completion; a previous_response_id chain's cached prompt vs a stateless client's",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const rounds = ctx.quick ? 8 : 40;
    const chainTurns = ctx.quick ? 6 : CHAIN_TURNS;
    const system = loadWorkerConfig({ MODEL: ctx.model, WORKER_HTTP_HOST: "127.0.0.1" }).memory.systemPrompt;
    const spec = stackSpec(ctx.brokers, "responses", PARTITIONS);
    await createTopics(spec);
    const children: Service[] = [];
    try {
      ctx.log("starting worker and gateway");
      const worker = await startWorker(spec, ctx.model, "w-responses", { WORKER_SLOTS: String(SLOTS), MEMORY_MAX_TOKENS: String(MEMORY_MAX_TOKENS) });
      children.push(worker);
      const gateway = await startGateway(spec, { MODEL_NAME: MODEL });
      children.push(gateway);
      const base = gateway.baseUrl;
      const loaded = worker.logs.find((l) => l.record.msg === "model loaded")?.record;
      const contextSize = typeof loaded?.contextSize === "number" ? loaded.contextSize : null;

      // --- per call ---
      const conversation = `bench-responses-${randomUUID()}`;
      let chainHead: string | null = null;
      const send: Record<Variant, (i: number) => Promise<Call>> = {
        completion: (i) =>
          completion(
            base,
            [
              { role: "system", content: system },
              { role: "user", content: PROMPTS[i % PROMPTS.length]! },
            ],
            CALL_MAX_TOKENS,
          ),
        "response-stateless": (i) =>
          response(base, { instructions: system, input: PROMPTS[i % PROMPTS.length]!, max_output_tokens: CALL_MAX_TOKENS, store: false }),
        "completion-open": (i) =>
          completion(
            base,
            [
              { role: "system", content: system },
              { role: "user", content: PROMPTS[i % PROMPTS.length]! },
            ],
            CALL_MAX_TOKENS,
            `bench-open-${randomUUID()}`,
          ),
        "response-open": (i) => response(base, { instructions: system, input: PROMPTS[i % PROMPTS.length]!, max_output_tokens: CALL_MAX_TOKENS, store: true }),
        "completion-conversation": (i) =>
          completion(
            base,
            [
              { role: "system", content: system },
              { role: "user", content: PROMPTS[i % PROMPTS.length]! },
            ],
            CALL_MAX_TOKENS,
            conversation,
          ),
        "response-chain": async (i) => {
          const c = await response(base, {
            ...(chainHead === null ? { instructions: system } : { previous_response_id: chainHead }),
            input: PROMPTS[i % PROMPTS.length]!,
            max_output_tokens: CALL_MAX_TOKENS,
            store: true,
          });
          chainHead = c.id;
          return c;
        },
      };
      const calls: Record<Variant, Call[]> = {
        completion: [],
        "response-stateless": [],
        "completion-open": [],
        "response-open": [],
        "completion-conversation": [],
        "response-chain": [],
      };
      // A warm-up round (the gateway's and worker's first requests of each kind), not counted.
      for (const [a, b] of PAIRS) {
        await send[a](0);
        await send[b](0);
      }
      ctx.log(`per call: ${rounds} rounds of ${PAIRS.length} pairs, one call at a time`);
      for (let i = 1; i <= rounds; i++) {
        // The conversations that go on first, so their slots are never the least recently used.
        for (const [a, b] of [PAIRS[2]!, PAIRS[0]!, PAIRS[1]!]) {
          const order = i % 2 === 0 ? [a, b] : [b, a];
          for (const v of order) calls[v].push(await send[v](i));
        }
      }
      const wall = Object.fromEntries(Object.entries(calls).map(([v, cs]) => [v, summarize(cs.map((c) => c.ms))])) as Record<Variant, Summary>;
      const meanOf = (v: Variant, f: (u: Usage) => number) => sum(calls[v].map((c) => f(c.usage))) / calls[v].length;

      // --- chain vs stateless ---
      ctx.log(`chain: ${chainTurns} turns with previous_response_id, and the same turns stateless (store: false, whole input)`);
      const chainPrompts = Array.from({ length: chainTurns }, (_, t) => `${PROMPTS[t % PROMPTS.length]!} (${t + 1})`);
      const chain: ChainTurn[] = [];
      const stateless: ChainTurn[] = [];
      let previous: string | null = null;
      const history: Array<{ role: "user" | "assistant"; content: string }> = [];
      for (let t = 0; t < chainTurns; t++) {
        const c = await response(base, {
          ...(previous === null ? { instructions: system } : { previous_response_id: previous }),
          input: chainPrompts[t]!,
          max_output_tokens: CHAIN_MAX_TOKENS,
          store: true,
        });
        previous = c.id;
        chain.push(turnOf(t + 1, c));
        history.push({ role: "user", content: chainPrompts[t]! });
        const s = await response(base, { instructions: system, input: history, max_output_tokens: CHAIN_MAX_TOKENS, store: false });
        stateless.push(turnOf(t + 1, s));
        // An empty reply is no message a client could send back.
        history.push({ role: "assistant", content: s.text === "" ? "..." : s.text });
      }
      const last = chain.at(-1)!;
      const lastStateless = stateless.at(-1)!;
      const evaluated = { chain: sum(chain.map((c) => c.evaluated)), stateless: sum(stateless.map((c) => c.evaluated)) };
      const inputs = { chain: sum(chain.map((c) => c.inputTokens)), stateless: sum(stateless.map((c) => c.inputTokens)) };
      const series = (turns: ChainTurn[]) =>
        turns
          .filter((t) => REPORTED_TURNS.includes(t.turn) || t.turn === turns.length)
          .map((t) => `${t.turn}: ${pct(t.share)}`)
          .join(", ");

      // Each round's response beside its completion, sent back to back: load that drifts over
      // the run falls on both, so the median of these moves less than the p50s' ratio.
      const paired = Object.fromEntries(PAIRS.map(([a, b]) => [b, median(calls[b].map((c, i) => c.ms - calls[a][i]!.ms))])) as Partial<Record<Variant, number>>;
      const rows: Row[] = PAIRS.flatMap(([a, b, what]): Row[] => [
        {
          figure: `${what}: wall time per call, response (p50 / p95)`,
          measured: `${ms(wall[b].p50)} / ${ms(wall[b].p95)}`,
          compared: `completion ${ms(wall[a].p50)} / ${ms(wall[a].p95)}: ×${fmt(wall[b].p50 / wall[a].p50, 2)} at p50, ×${fmt(wall[b].p95 / wall[a].p95, 2)} at p95; median of each round's difference ${fmt(paired[b]!, 1)} ms (${rounds} calls each; prompt tokens ${fmt(meanOf(b, (u) => u.input))} vs ${fmt(meanOf(a, (u) => u.input))}, reply tokens ${fmt(meanOf(b, (u) => u.output))} vs ${fmt(meanOf(a, (u) => u.output))})`,
        },
      ]);
      rows.push(
        {
          figure: `previous_response_id chain, turn ${last.turn}: cached_tokens / input_tokens`,
          measured: `${pct(last.share)} (${last.cachedTokens} of ${last.inputTokens})`,
          compared: `the same turn stateless (store: false, whole input): ${pct(lastStateless.share)} (${lastStateless.cachedTokens} of ${lastStateless.inputTokens})`,
        },
        {
          figure: "cached share by turn, chain",
          measured: series(chain),
          compared: `stateless: ${series(stateless)}`,
        },
        {
          figure: `tokens evaluated over ${chainTurns} turns (input - cached), chain`,
          measured: `${evaluated.chain} of ${inputs.chain} input tokens; turn ${last.turn}: ${last.evaluated}`,
          compared: `stateless: ${evaluated.stateless} of ${inputs.stateless} (×${fmt(evaluated.stateless / Math.max(1, evaluated.chain), 2)}); turn ${lastStateless.turn}: ${lastStateless.evaluated}`,
        },
        {
          figure: `request body at turn ${last.turn}, chain`,
          measured: `${last.bodyBytes} B`,
          compared: `stateless (the whole conversation each time): ${lastStateless.bodyBytes} B`,
        },
      );
      const trimmed = chain.some((t, i) => i > 0 && t.inputTokens < chain[i - 1]!.inputTokens);
      const broken: string[] = [];
      if (trimmed) broken.push(`the chain's memory was trimmed within ${chainTurns} turns: raise MEMORY_MAX_TOKENS`);
      if (chain.slice(1).some((t) => t.cachedTokens === 0))
        broken.push("a previous_response_id turn after the first found nothing of its prompt in the slot's KV cache");
      return {
        rows,
        targets: [],
        notes: [
          `One worker (WORKER_SLOTS=${SLOTS}, MEMORY_MAX_TOKENS=${MEMORY_MAX_TOKENS}, one CPU thread, context ${contextSize ?? "?"} tokens a slot) and one gateway (GATEWAY_AUTH=none); plain fetch, non-streamed, temperature 0; max tokens ${CALL_MAX_TOKENS} per call and ${CHAIN_MAX_TOKENS} per chain turn.`,
          `Per call: ${rounds} rounds after a warm-up round; each round sends the six calls one at a time, the continuing pair first, the order within each pair swapped every other round. The ratios are of one run; the machine's load moves absolute times.`,
          "Chain vs stateless: turn by turn (chain turn t, then stateless turn t). A stateless turn has no conversation of its own: it takes the least recently used free slot of its tenant, and is cached as far as that slot's tokens match its prompt. The chain's turns go back to the slot holding their conversation.",
        ],
        raw: {
          rounds,
          maxTokens: { call: CALL_MAX_TOKENS, chain: CHAIN_MAX_TOKENS },
          worker: { slots: SLOTS, memoryMaxTokens: MEMORY_MAX_TOKENS, contextSize },
          wall,
          pairedMedianDifferenceMs: paired,
          calls: Object.fromEntries(Object.entries(calls).map(([v, cs]) => [v, cs.map((c) => ({ ms: Math.round(c.ms * 100) / 100, ...c.usage }))])),
          chain,
          stateless,
          evaluated,
          inputs,
        },
        broken,
      };
    } finally {
      for (const c of children.reverse()) await c.stop();
    }
  },
};
