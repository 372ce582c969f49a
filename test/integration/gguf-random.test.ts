/**
 * The GPU bench's model generator (bench/gguf-random.ts) on CPU, with a tiny shape: the
 * file it writes is a llama model that node-llama-cpp (llama.cpp) loads, whose
 * vocabulary tokenizes any text and gives it back, and that generates: through
 * node-llama-cpp's completion and through the worker's own generator (the chat path
 * bench/gpu.sh measures), in F16 and Q8_0. The same seed writes the same bytes, so a
 * greedy generation is reproducible.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { getLlama, LlamaCompletion, readGgufFileInfo, type Llama } from "node-llama-cpp";
import { SHAPES, writeRandomGguf, type WeightType } from "../../bench/lib/gguf-random.js";
import { SequenceGenerator } from "../../worker/generator.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "gguf-random-"));
const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

describe("a random-weight llama GGUF (tiny shape) loads and generates in node-llama-cpp", { timeout: 120_000 }, () => {
  let llama: Llama;
  before(async () => {
    llama = await getLlama({ gpu: false, build: "never", maxThreads: 1 });
  });
  after(async () => {
    await llama?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const type of ["q8_0", "f16"] as const satisfies readonly WeightType[]) {
    it(`${type}: llama metadata and tensors, a tokenizer that round-trips, 8 greedy tokens, a worker reply`, async () => {
      const file = path.join(dir, `tiny-${type}.gguf`);
      const bytes = writeRandomGguf({ shape: SHAPES.tiny!, type, path: file, seed: 7 });
      assert.equal(readFileSync(file).length, bytes);

      const info = await readGgufFileInfo(file);
      const meta = info.metadata as unknown as { general: { architecture: string }; llama: { block_count: number; embedding_length: number } };
      assert.equal(meta.general.architecture, "llama");
      assert.equal(meta.llama.block_count, 2);
      assert.equal(meta.llama.embedding_length, 64);
      assert.equal(info.tensorInfo?.length, 3 + 2 * 9, "token_embd, output_norm, output and 9 tensors per layer");

      const model = await llama.loadModel({ modelPath: file });
      const context = await model.createContext({ contextSize: 512, sequences: 2, threads: 1, flashAttention: false });
      try {
        assert.equal(model.fileInsights.totalLayers, 3, "2 blocks and the output layer, as llama.cpp counts them");
        for (const text of ["Hello world, once upon a time!", "Ünïcödé ✓ works too"]) {
          assert.equal(model.detokenize(model.tokenize(text)), text, `the vocabulary gives back ${JSON.stringify(text)}`);
        }
        const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
        const first = await completion.generateCompletionWithMeta("Once upon a time", { maxTokens: 8, temperature: 0 });
        assert.equal(first.metadata.stopReason, "maxTokens", "random weights still run to the token limit");
        completion.dispose({ disposeSequence: true });

        const generator = new SequenceGenerator(context.getSequence());
        const reply = await generator.generate({
          messages: [{ role: "user", content: "Tell me a story." }],
          params: { temperature: 0, max_tokens: 8 },
          defaultMaxTokens: 8,
          onText: () => {},
        });
        generator.dispose();
        assert.ok(reply.completionTokens > 0, "the worker's generator produced tokens");
      } finally {
        await context.dispose();
        await model.dispose();
      }

      // Reproducible: the same seed writes the same file; another seed, other weights.
      const again = path.join(dir, `tiny-${type}-again.gguf`);
      const other = path.join(dir, `tiny-${type}-other.gguf`);
      writeRandomGguf({ shape: SHAPES.tiny!, type, path: again, seed: 7 });
      writeRandomGguf({ shape: SHAPES.tiny!, type, path: other, seed: 8 });
      assert.equal(sha(again), sha(file));
      assert.notEqual(sha(other), sha(file));
    });
  }
});
