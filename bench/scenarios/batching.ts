/**
 * 2. Batching: aggregate tokens/s of one worker for 1, 2, 4 and 8 concurrent
 * conversations (WORKER_SLOTS=8, each conversation on its own partition so the worker can
 * run them at once), beside the same concurrency on the same model called in-process
 * (one context of 8 sequences, as the worker has).
 */
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { newConversation, promptFor } from "../../worker/conversation.js";
import { loadInProcess } from "../baselines/in-process.js";
import { describeFlashAttention, otherFlashAttention, shippedFlashAttention, withFlashAttention } from "../variants/flash-attention.js";
import { BENCH_TENANT, BenchChat } from "../lib/kafka-chat.js";
import { describeLlama } from "../lib/llama-settings.js";
import { KeyMaker } from "../lib/partitions.js";
import type { Service } from "../../testkit/services.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt } from "../lib/scenario.js";
import { createTopics, stackSpec, startWorker } from "../lib/stack.js";
import { PROMPTS } from "./route.js";

/** BENCH_LEVELS=1,2,4,8,16 for a GPU (bench/gpu.sh); the worker gets as many slots as the largest level. */
const LEVELS = (process.env.BENCH_LEVELS ?? "1,2,4,8").split(",").map(Number);
const SLOTS = Math.max(...LEVELS);
const MAX_TOKENS = 128;

interface Level {
  concurrency: number;
  kafka: { tokensPerS: number; tokens: number; wallMs: number; turns: number };
  inProcess: { tokensPerS: number; tokens: number; wallMs: number; turns: number };
  inProcessOtherFa: { tokensPerS: number; tokens: number; wallMs: number; turns: number };
}

/** Runs `turnsPerLane` turns on each of `lanes` lanes at once; tokens over wall time. */
async function measure(lanes: number, turnsPerLane: number, turn: (lane: number, i: number) => Promise<number>) {
  const started = performance.now();
  const counts = await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      let tokens = 0;
      for (let i = 0; i < turnsPerLane; i++) tokens += await turn(lane, i);
      return tokens;
    }),
  );
  const wallMs = performance.now() - started;
  const tokens = counts.reduce((a, b) => a + b, 0);
  return { tokensPerS: (tokens / wallMs) * 1000, tokens, wallMs, turns: lanes * turnsPerLane };
}

export const batchingScenario: Scenario = {
  id: "batching",
  title: "2. Batching: aggregate tokens/s at 1, 2, 4, 8 concurrent conversations on one worker",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    // Each level runs about the same number of tokens per lane-slot, so the wall time per level is similar.
    const turnsAt = (c: number) => Math.max(2, Math.round((ctx.quick ? 12 : 48) / c));
    const system = loadWorkerConfig({ MODEL: ctx.model, WORKER_HTTP_HOST: "127.0.0.1" }).memory.systemPrompt;
    const spec = stackSpec(ctx.brokers, "batching", SLOTS);
    await createTopics(spec);
    const chat = new BenchChat(ctx.brokers, spec.topics);
    const inproc = await loadInProcess(ctx.model, SLOTS);
    // The same context with the flash attention setting worker/llm.ts does not ship (see kv-reuse).
    const shippedFa = await shippedFlashAttention(ctx.model);
    const otherFa = otherFlashAttention(shippedFa);
    const inprocOtherFa = await withFlashAttention(otherFa, () => loadInProcess(ctx.model, SLOTS));
    let worker: Service | null = null;
    try {
      worker = await startWorker(spec, ctx.model, "w-batching", { WORKER_SLOTS: String(SLOTS) });
      await chat.start();
      const keys = new KeyMaker("batch", SLOTS, BENCH_TENANT);
      let unique = 0;
      const kafkaTurn = async (lane: number, i: number) => {
        const t = await chat.finished(await chat.turn(keys.next(lane), PROMPTS[(lane + i) % PROMPTS.length]!, { params: { max_tokens: MAX_TOKENS } }));
        return t.final.usage.completion_tokens;
      };
      const inprocTurnOn = (model: typeof inproc) => async (lane: number, i: number) => {
        const id = `batch-inproc-${unique++}`;
        const messages = promptFor(newConversation(id, "bench", Date.now()), PROMPTS[(lane + i) % PROMPTS.length]!, system);
        return (await model.generate(id, messages, MAX_TOKENS)).completionTokens;
      };
      const inprocTurn = inprocTurnOn(inproc);
      const inprocOtherFaTurn = inprocTurnOn(inprocOtherFa);
      ctx.log("warm-up");
      await measure(SLOTS, 1, kafkaTurn);
      await measure(SLOTS, 1, inprocTurn);
      await measure(SLOTS, 1, inprocOtherFaTurn);

      const levels: Level[] = [];
      for (const c of LEVELS) {
        ctx.log(`${c} concurrent`);
        // In-process and Kafka alternate so drift of the machine hits both.
        const inProcess = await measure(c, turnsAt(c), inprocTurn);
        const kafka = await measure(c, turnsAt(c), kafkaTurn);
        const inProcessOtherFa = await measure(c, turnsAt(c), inprocOtherFaTurn);
        levels.push({ concurrency: c, kafka, inProcess, inProcessOtherFa });
      }
      const one = levels[0]!;
      const rows: Row[] = levels.map((l) => ({
        figure: `${l.concurrency} concurrent conversation${l.concurrency > 1 ? "s" : ""}: aggregate tokens/s through Kafka`,
        measured: `${fmt(l.kafka.tokensPerS, 0)} tok/s`,
        compared: `${fmt(l.kafka.tokensPerS / one.kafka.tokensPerS, 2)}x of 1 conversation; ${fmt(l.kafka.tokensPerS / l.inProcess.tokensPerS, 2)}x in-process at the same concurrency (${fmt(l.inProcess.tokensPerS, 0)} tok/s); in-process with ${describeFlashAttention(otherFa)}: ${fmt(l.inProcessOtherFa.tokensPerS, 0)} tok/s (${fmt(l.inProcessOtherFa.tokensPerS / l.inProcess.tokensPerS, 2)}x)`,
      }));
      return {
        rows,
        targets: [],
        notes: [
          `WORKER_SLOTS=${SLOTS} (one context of ${SLOTS} sequences; ${describeLlama()}), max_tokens=${MAX_TOKENS}, greedy; each turn a new conversation on the lane's own partition (${SLOTS} partitions).`,
          "Tokens/s = completion tokens of all turns of a level over the level's wall time; in-process runs the worker's generator on a context of the same shape in the bench process.",
          `The worker and the in-process baseline run with ${describeFlashAttention(shippedFa)} (what worker/llm.ts gives this machine); the last column is the same in-process context with ${describeFlashAttention(otherFa)}.`,
        ],
        raw: { slots: SLOTS, maxTokens: MAX_TOKENS, flashAttention: { shipped: shippedFa, other: otherFa }, levels },
      };
    } finally {
      await chat.stop().catch(() => {});
      await worker?.stop().catch(() => {});
      await inproc.dispose();
      await inprocOtherFa.dispose();
    }
  },
};
