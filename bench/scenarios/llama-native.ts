/**
 * 8 (first half). A worker's tokens/s against llama.cpp's own figure for the same model
 * file: llama.cpp's decode rate from its performance counters (llama_perf_context_print,
 * "eval time … tokens per second": decode steps only), the worker's generator called
 * in-process (completion tokens over its generation time: prompt, sampling and
 * node-llama-cpp included), and a real worker through Kafka (completion tokens over the
 * client's wall time per turn). One conversation at a time, one sequence, 256 tokens.
 * On CPU this is part of the default run; bench/gpu.sh runs it on a GPU.
 */
import { spawnSync } from "node:child_process";
import { BenchChat } from "../lib/kafka-chat.js";
import { describeLlama, llamaSettings } from "../lib/llama-settings.js";
import { REPO_ROOT, type Service } from "../../testkit/services.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt } from "../lib/scenario.js";
import { createTopics, stackSpec, startWorker } from "../lib/stack.js";
import { median } from "../lib/stats.js";
import { PROMPTS } from "./route.js";

const MAX_TOKENS = 256;

export const llamaNativeScenario: Scenario = {
  id: "llama-native",
  title: "8a. Worker tokens/s vs llama.cpp's own figure for the same model file (one sequence)",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const turns = ctx.quick ? 4 : 12;
    const settings = llamaSettings();
    const child = spawnSync(process.execPath, ["--import", "tsx", "bench/baselines/llama-perf.ts"], {
      cwd: REPO_ROOT,
      env: { ...process.env, MODEL: ctx.model, TURNS: String(turns), MAX_TOKENS: String(MAX_TOKENS) },
      encoding: "utf8",
      timeout: 300_000,
    });
    const line = child.stdout
      .trim()
      .split("\n")
      .reverse()
      .find((l) => l.startsWith("{"));
    if (child.status !== 0 || !line) throw new Error(`llama-perf failed (${child.status}): ${child.stderr.slice(-2000)}`);
    const measured = JSON.parse(line) as { llamaRate: number; evalLine: string; perf: string[]; perTurn: number[]; meanTokens: number };
    const { llamaRate, evalLine, perf, meanTokens } = measured;
    const inProcess = measured.perTurn;
    if (!Number.isFinite(llamaRate)) throw new Error(`llama.cpp printed no eval rate: ${perf.join(" | ")}`);

    const spec = stackSpec(ctx.brokers, "native", 1);
    await createTopics(spec);
    const chat = new BenchChat(ctx.brokers, spec.topics);
    let worker: Service | null = null;
    const viaKafka: number[] = [];
    try {
      worker = await startWorker(spec, ctx.model, "w-native", { WORKER_SLOTS: "1" });
      await chat.start();
      await chat.finished(await chat.turn("warm", PROMPTS[0]!, { params: { max_tokens: 16 } }));
      for (let i = 0; i < turns; i++) {
        const t = await chat.finished(await chat.turn(`k-${i}`, PROMPTS[i % PROMPTS.length]!, { params: { max_tokens: MAX_TOKENS } }));
        viaKafka.push((t.final.usage.completion_tokens / (t.finalAt - t.sentAt)) * 1000);
      }
    } finally {
      await chat.stop().catch(() => {});
      await worker?.stop().catch(() => {});
    }
    const inProc = median(inProcess);
    const kafka = median(viaKafka);
    const rows: Row[] = [
      { figure: "llama.cpp's own decode rate (llama_perf_context_print eval)", measured: `${fmt(llamaRate, 0)} tok/s`, compared: "baseline" },
      {
        figure: "worker's generator in-process (median per turn)",
        measured: `${fmt(inProc, 0)} tok/s`,
        compared: `${fmt(inProc / llamaRate, 2)}x llama.cpp's figure`,
      },
      {
        figure: "a worker through Kafka, client wall time per turn (median)",
        measured: `${fmt(kafka, 0)} tok/s`,
        compared: `${fmt(kafka / llamaRate, 2)}x llama.cpp's figure`,
      },
    ];
    return {
      rows,
      targets: [],
      notes: [
        `${describeLlama(settings)}, ${turns} turns of up to ${MAX_TOKENS} tokens (${fmt(meanTokens, 0)} on average), one sequence. llama.cpp's figure counts decode steps only; the generator's adds prompt evaluation, sampling and node-llama-cpp; the Kafka figure adds the route (and flash attention as node-llama-cpp's default sets it, like the other two).`,
        `llama.cpp said: ${evalLine}`,
      ],
      raw: { turns, maxTokens: MAX_TOKENS, llamaEvalTokensPerS: llamaRate, inProcessTokensPerS: inProcess, viaKafkaTokensPerS: viaKafka, perf },
    };
  },
};
