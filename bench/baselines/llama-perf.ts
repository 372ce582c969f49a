/**
 * Child process for the llama-native scenario: loads the model as worker/llm.ts does, plus
 * llama.cpp's performance counters, runs the worker's generator for some turns and prints
 * one JSON line: llama.cpp's own decode rate and the generator's tokens/s per turn. A
 * process of its own because llama.cpp's log callback is process-wide: once another
 * model was loaded and disposed in the bench process, its counters no longer reach us.
 *
 * Env: MODEL, TURNS, MAX_TOKENS, BENCH_LLAMA_GPU, BENCH_LLAMA_THREADS.
 */
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { newConversation, promptFor } from "../../worker/conversation.js";
import { SequenceGenerator } from "../../worker/generator.js";
import { llamaSettings } from "../lib/llama-settings.js";
import { PROMPTS } from "../scenarios/route.js";

const modelPath = process.env.MODEL!;
const turns = Number(process.env.TURNS ?? "8");
const maxTokens = Number(process.env.MAX_TOKENS ?? "256");
const settings = llamaSettings();
const system = loadWorkerConfig({ MODEL: modelPath, WORKER_HTTP_HOST: "127.0.0.1" }).memory.systemPrompt;
const perf: string[] = [];
const llama = await getLlama({
  gpu: settings.gpu === "false" ? false : settings.gpu,
  build: "never",
  ...(settings.threads > 0 ? { maxThreads: settings.threads } : {}),
  logLevel: LlamaLogLevel.info,
  logger: (_level, message) => {
    if (message.includes("llama_perf_context_print")) perf.push(message.trim());
  },
});
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({
  contextSize: Math.min(2048, model.trainContextSize),
  sequences: 1,
  ...(settings.threads > 0 ? { threads: settings.threads } : {}),
  performanceTracking: true,
});
const generator = new SequenceGenerator(context.getSequence());
const perTurn: number[] = [];
let tokens = 0;
for (let i = 0; i < turns; i++) {
  const messages = promptFor(newConversation(`n-${i}`, "bench", Date.now()), PROMPTS[i % PROMPTS.length]!, system);
  const r = await generator.generate({ messages, params: { max_tokens: maxTokens }, defaultMaxTokens: maxTokens, onText: () => {} });
  perTurn.push((r.completionTokens / r.generationMs) * 1000);
  tokens += r.completionTokens;
}
await context.printTimings();
const evalLine = perf.find((l) => /\beval time\b/.test(l) && !/prompt eval/.test(l)) ?? "";
const llamaRate = Number(/([\d.]+) tokens per second/.exec(evalLine)?.[1] ?? Number.NaN);
process.stdout.write(`${JSON.stringify({ llamaRate, evalLine, perf, perTurn, meanTokens: tokens / turns })}\n`);
generator.dispose();
await context.dispose();
await model.dispose();
await llama.dispose();
