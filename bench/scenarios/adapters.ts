/**
 * 27 (item 3). What a LoRA adapter costs next to its base model, as a pool serves it: a
 * context of its own (node-llama-cpp applies adapters per context, worker/llm.ts) whose
 * every matrix product adds the adapter's low-rank B·A. In-process on one CPU thread, with a
 * random-weight llama (bench/lib/gguf-random.ts) of a CPU-sized shape and random adapters of
 * rank 8 and 32 on all seven projections of every block: the base context's and each
 * adapter context's prompt evaluation and decode rate, measured alternately in one run
 * (ratios, not absolute figures, are what carries over), plus the adapter's load time and
 * file size. GPU figures need bench/gpu.sh on a lent device.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, type LlamaModel } from "node-llama-cpp";
import { writeRandomGguf, writeRandomLora, type LlamaShape } from "../lib/gguf-random.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt } from "../lib/scenario.js";
import { median } from "../lib/stats.js";

/** Some 30M parameters: big enough that the matrix products dominate, small enough for a CPU run. */
const SHAPE: LlamaShape = { embd: 512, layers: 8, heads: 8, kvHeads: 4, ff: 1536, vocab: 8192, context: 2048, ropeBase: 10_000, tiedEmbeddings: false };
const PROMPT_WORDS = 48;
const DECODE_TOKENS = 64;

interface Run {
  promptMs: number;
  decodeTokensPerS: number;
}

/** One greedy generation in a fresh sequence of `context`: prompt evaluation time, then DECODE_TOKENS decode steps. */
async function generate(model: LlamaModel, context: Awaited<ReturnType<LlamaModel["createContext"]>>): Promise<Run> {
  const sequence = context.getSequence();
  try {
    const prompt = [model.tokens.bos!, ...model.tokenize(Array.from({ length: PROMPT_WORDS }, (_, i) => `word${i % 50}`).join(" "))];
    const started = performance.now();
    let firstAt = 0;
    let n = 0;
    for await (const _token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
      if (n === 0) firstAt = performance.now();
      if (++n === DECODE_TOKENS + 1) break;
    }
    const ended = performance.now();
    return { promptMs: firstAt - started, decodeTokensPerS: (DECODE_TOKENS / (ended - firstAt)) * 1000 };
  } finally {
    await sequence.dispose();
  }
}

export const adaptersScenario: Scenario = {
  id: "adapters",
  title: "27c. A LoRA adapter next to its base model: prompt evaluation, decode rate, load (one CPU thread)",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const rounds = ctx.quick ? 3 : 12;
    const dir = mkdtempSync(path.join(os.tmpdir(), "bench-adapters-"));
    const llama = await getLlama({ gpu: false, build: "never", maxThreads: 1 });
    try {
      const modelFile = path.join(dir, "model.gguf");
      writeRandomGguf({ shape: SHAPE, type: "q8_0", path: modelFile, seed: 1 });
      const model = await llama.loadModel({ modelPath: modelFile });
      const ranks = [8, 32];
      const adapters = ranks.map((rank) => {
        const file = path.join(dir, `lora-r${rank}.gguf`);
        writeRandomLora({ shape: SHAPE, rank, path: file, seed: rank });
        return { rank, file };
      });
      const options = { contextSize: 1024, threads: 1, flashAttention: false, sequences: 1 } as const;
      const base = await model.createContext(options);
      const loaded = [];
      for (const a of adapters) {
        const t = performance.now();
        const context = await model.createContext({ ...options, lora: { adapters: [{ filePath: a.file }] } });
        loaded.push({ ...a, context, loadMs: performance.now() - t, bytes: statSync(a.file).size });
      }
      const baseLoadStart = performance.now();
      const spare = await model.createContext(options);
      const baseContextMs = performance.now() - baseLoadStart;
      await spare.dispose();

      // Warm each once, then alternate: base, r8, r32, base, ...
      await generate(model, base);
      for (const l of loaded) await generate(model, l.context);
      const runs = { base: [] as Run[], ...Object.fromEntries(loaded.map((l) => [`r${l.rank}`, [] as Run[]])) } as Record<string, Run[]>;
      for (let r = 0; r < rounds; r++) {
        runs.base!.push(await generate(model, base));
        for (const l of loaded) runs[`r${l.rank}`]!.push(await generate(model, l.context));
      }
      // The best of the rounds: on a shared machine interference only ever slows a round down.
      const med = (k: string, f: keyof Run) => (f === "promptMs" ? Math.min : Math.max)(...runs[k]!.map((x) => x[f]));
      const baseDecode = med("base", "decodeTokensPerS");
      const basePrompt = med("base", "promptMs");
      const rows: Row[] = [
        {
          figure: `base model: decode, prompt of ${PROMPT_WORDS} words`,
          measured: `${fmt(baseDecode, 0)} tok/s, prompt ${fmt(basePrompt, 1)} ms`,
          compared: "baseline",
        },
      ];
      for (const l of loaded) {
        const k = `r${l.rank}`;
        rows.push({
          figure: `adapter rank ${l.rank} (all 7 projections): decode, prompt`,
          measured: `${fmt(med(k, "decodeTokensPerS"), 0)} tok/s, prompt ${fmt(med(k, "promptMs"), 1)} ms`,
          compared: `${fmt(med(k, "decodeTokensPerS") / baseDecode, 2)}x decode, ${fmt(med(k, "promptMs") / basePrompt, 2)}x prompt time`,
        });
        rows.push({
          figure: `adapter rank ${l.rank}: file, context with it`,
          measured: `${fmt(l.bytes / 1e6, 1)} MB, ${fmt(l.loadMs, 0)} ms`,
          compared: `${fmt((l.bytes / statSync(modelFile).size) * 100, 1)}% of the model file; a base context: ${fmt(baseContextMs, 0)} ms`,
        });
      }
      for (const l of loaded) await l.context.dispose();
      await base.dispose();
      await model.dispose();
      return {
        rows,
        targets: [],
        notes: [
          `A random-weight llama (${SHAPE.layers} blocks of ${SHAPE.embd}, q8_0, ${fmt(statSync(modelFile).size / 1e6, 0)} MB) and F32 random adapters; ${rounds} alternating rounds of one generation each, the best round of each (interference from other work only slows a round; medians in the JSON), one sequence, one thread. An adapter's context also holds a KV cache of its own (ADAPTER_SLOTS sequences of CONTEXT_SIZE): the memory a pool pays per adapter beyond its file.`,
        ],
        raw: {
          shape: SHAPE,
          rounds,
          runs,
          medians: Object.fromEntries(
            Object.entries(runs).map(([k, r]) => [
              k,
              { decodeTokensPerS: median(r.map((x) => x.decodeTokensPerS)), promptMs: median(r.map((x) => x.promptMs)) },
            ]),
          ),
          adapters: loaded.map((l) => ({ rank: l.rank, bytes: l.bytes, loadMs: l.loadMs })),
          baseContextMs,
        },
      };
    } finally {
      await llama.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
