/**
 * The shapes of bench/lib/gguf-random.ts are the published models' (parameter counts of
 * their model cards), and its vocabulary and tensor sizes are what llama.cpp expects.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { llamaTensors, parameterCount, SHAPES, spmVocabulary } from "../../../bench/lib/gguf-random.js";

describe("random GGUF shapes", () => {
  it("1b and 8b have Llama 3.2 1B's and Llama 3.1 8B's parameter counts", () => {
    assert.equal((parameterCount(SHAPES["1b"]!) / 1e9).toFixed(2), "1.24");
    assert.equal((parameterCount(SHAPES["8b"]!) / 1e9).toFixed(2), "8.03");
  });

  it("Q8_0 stores 32 values in 34 bytes, F16 in 2 bytes each; norms stay F32", () => {
    const q8 = llamaTensors(SHAPES["8b"]!, "q8_0");
    const f16 = llamaTensors(SHAPES["8b"]!, "f16");
    const embd = q8.find((t) => t.name === "token_embd.weight")!;
    assert.deepEqual(embd.dims, [4096, 128_256]);
    assert.equal(embd.bytes, ((4096 * 128_256) / 32) * 34);
    assert.equal(f16.find((t) => t.name === "token_embd.weight")!.bytes, 4096 * 128_256 * 2);
    assert.equal(q8.find((t) => t.name === "blk.0.attn_k.weight")!.dims[1], 1024, "8 KV heads of 128");
    assert.equal(q8.find((t) => t.name === "blk.31.ffn_down.weight")!.dims[0], 14_336);
    assert.equal(q8.find((t) => t.name === "output_norm.weight")!.ggmlType, 0);
    assert.equal(llamaTensors(SHAPES["1b"]!, "q8_0").filter((t) => t.name === "output.weight").length, 0, "1B ties its output to token_embd");
    const total = q8.reduce((n, t) => n + t.bytes, 0) / 2 ** 30;
    assert.ok(total > 7.9 && total < 8.0, `8B in Q8_0 is about 7.95 GiB (got ${total.toFixed(2)})`);
  });

  it("refuses a shape a block does not divide", () => {
    assert.throws(() => llamaTensors({ ...SHAPES.tiny!, embd: 48, heads: 4, kvHeads: 2 }, "q8_0"), /48 is not a multiple of q8_0's block of 32/);
  });

  it("the vocabulary has control, byte and normal tokens, exactly as many as asked", () => {
    const v = spmVocabulary(1000);
    assert.equal(v.tokens.length, 1000);
    assert.equal(new Set(v.tokens).size, 1000, "no duplicate pieces");
    assert.deepEqual(v.tokens.slice(0, 3), ["<unk>", "<s>", "</s>"]);
    assert.equal(v.tokens.filter((_, i) => v.types[i] === 6).length, 256);
    assert.ok(v.tokens.includes("▁a") && v.tokens.includes("z"));
    assert.throws(() => spmVocabulary(100), /at least/);
  });
});
