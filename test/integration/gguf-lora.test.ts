/**
 * A random LoRA adapter (bench/lib/gguf-random.ts's writeRandomLora) for the tiny random
 * llama model: its GGUF says what llama.cpp's LoRA loader asks for (general.type
 * "adapter", adapter.type "lora", adapter.lora.alpha, `<weight>.lora_a` of ne [n_in, r]
 * and `.lora_b` of ne [r, n_out]); node-llama-cpp loads it into a context
 * (`createContext({ lora })`), and the adapter is really applied: 8 greedy tokens differ
 * from the base model's, the same adapter gives the same tokens again, and at scale 0 it
 * gives the base model's tokens back.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { getLlama, readGgufFileInfo, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { loraTensors, SHAPES, writeRandomGguf, writeRandomLora, type WeightType } from "../../bench/lib/gguf-random.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "gguf-lora-"));
const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
const tiny = SHAPES.tiny!;

/** The first 8 tokens greedy decoding picks after one prompt, in a fresh context (with the adapter at `scale`, when given). */
async function greedy(model: LlamaModel, adapter?: { filePath: string; scale: number }): Promise<Token[]> {
  const context = await model.createContext({
    contextSize: 512,
    threads: 1,
    flashAttention: false,
    ...(adapter ? { lora: { adapters: [adapter] } } : {}),
  });
  try {
    // The sequence's own token loop: LlamaCompletion's onToken holds back tokens it
    // cannot yet show as text (part of a UTF-8 character), so its count is not the decode's;
    // an end-of-text token (random weights pick one now and then) is yielded, not an end.
    const tokens: Token[] = [];
    for await (const token of context
      .getSequence()
      .evaluate([model.tokens.bos!, ...model.tokenize("Once upon a time")], { temperature: 0, yieldEogToken: true })) {
      tokens.push(token);
      if (tokens.length === 8) break;
    }
    return tokens;
  } finally {
    await context.dispose();
  }
}

describe("a random LoRA adapter (tiny shape) loads in node-llama-cpp and changes what the model generates", { timeout: 60_000 }, () => {
  let llama: Llama;
  before(async () => {
    llama = await getLlama({ gpu: false, build: "never", maxThreads: 1 });
  });
  after(async () => {
    await llama?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("metadata and tensors as llama.cpp's LoRA loader reads them; one seed, the same bytes", async () => {
    const file = path.join(dir, "lora.gguf");
    const bytes = writeRandomLora({ shape: tiny, rank: 8, path: file, seed: 7, targets: ["attn_k", "ffn_down", "output"], alpha: 16 });
    assert.equal(readFileSync(file).length, bytes);

    const info = await readGgufFileInfo(file);
    const meta = info.metadata as unknown as {
      general: { architecture: string; type: string };
      adapter: { type: string; lora: { alpha: number } };
    };
    assert.equal(meta.general.architecture, "llama");
    assert.equal(meta.general.type, "adapter");
    assert.equal(meta.adapter.type, "lora");
    assert.equal(meta.adapter.lora.alpha, 16);
    const dims = new Map(info.tensorInfo?.map((t) => [t.name, t.dimensions.map(Number)]));
    assert.equal(dims.size, 2 * (1 + 2 * 2), "an A and a B for output.weight and for 2 targets in each of 2 blocks");
    // ne order: A is [n_in, r], B is [r, n_out]; attn_k's outputs are head_dim × kv heads = 32.
    assert.deepEqual(dims.get("blk.0.attn_k.weight.lora_a"), [64, 8]);
    assert.deepEqual(dims.get("blk.0.attn_k.weight.lora_b"), [8, 32]);
    assert.deepEqual(dims.get("blk.1.ffn_down.weight.lora_a"), [128, 8]);
    assert.deepEqual(dims.get("blk.1.ffn_down.weight.lora_b"), [8, 64]);
    assert.deepEqual(dims.get("output.weight.lora_b"), [8, 512]);

    const again = path.join(dir, "lora-again.gguf");
    const other = path.join(dir, "lora-other.gguf");
    writeRandomLora({ shape: tiny, rank: 8, path: again, seed: 7, targets: ["attn_k", "ffn_down", "output"], alpha: 16 });
    writeRandomLora({ shape: tiny, rank: 8, path: other, seed: 8, targets: ["attn_k", "ffn_down", "output"], alpha: 16 });
    assert.equal(sha(again), sha(file));
    assert.notEqual(sha(other), sha(file));

    assert.equal(loraTensors(tiny, 4).length, 2 * 7 * 2, "by default each block's 7 projections");
    assert.throws(() => loraTensors(tiny, 0), /rank/);
    assert.throws(() => loraTensors(SHAPES["1b"]!, 4, ["output"]), /token_embd/);
  });

  for (const type of ["q8_0", "f16"] as const satisfies readonly WeightType[]) {
    it(`${type} base model: greedy tokens differ with the adapter, are reproducible, and are the base's at scale 0`, async () => {
      const modelPath = path.join(dir, `tiny-${type}.gguf`);
      const filePath = path.join(dir, `lora-${type}.gguf`);
      writeRandomGguf({ shape: tiny, type, path: modelPath, seed: 7 });
      writeRandomLora({ shape: tiny, rank: 8, path: filePath, seed: 7 });
      const model = await llama.loadModel({ modelPath });
      try {
        const base = await greedy(model);
        const adapted = await greedy(model, { filePath, scale: 1 });
        const again = await greedy(model, { filePath, scale: 1 });
        const off = await greedy(model, { filePath, scale: 0 });
        assert.equal(base.length, 8);
        assert.equal(adapted.length, 8);
        assert.notDeepEqual(adapted, base, "the adapter changes the greedy completion");
        assert.notEqual(model.detokenize(adapted, true), model.detokenize(base, true));
        assert.deepEqual(again, adapted, "the same adapter, the same tokens");
        assert.deepEqual(off, base, "at scale 0 the adapter adds nothing");
      } finally {
        await model.dispose();
      }
    });
  }
});
