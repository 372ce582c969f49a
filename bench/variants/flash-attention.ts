/**
 * Sets flash attention for the model contexts this process creates. worker/llm.ts leaves
 * node-llama-cpp's default ("auto"), which llama.cpp turns on for the CPU as well; on
 * stories260K with one thread that makes every token cost more the longer the sequence
 * is (see docs/benchmarks.md). Bench-only, to measure the proposed fix: pass
 * `flashAttention: false` on CPU.
 */
import { LlamaModel } from "node-llama-cpp";

type CreateContext = LlamaModel["createContext"];
const original: CreateContext = LlamaModel.prototype.createContext;

export function forceFlashAttention(enabled: boolean | null): void {
  LlamaModel.prototype.createContext =
    enabled === null
      ? original
      : function (this: LlamaModel, options?: Parameters<CreateContext>[0]) {
          return original.call(this, { ...options, flashAttention: enabled });
        };
}

/** Runs `load` with flash attention forced to `enabled`, then restores the default. */
export async function withFlashAttention<T>(enabled: boolean, load: () => Promise<T>): Promise<T> {
  forceFlashAttention(enabled);
  try {
    return await load();
  } finally {
    forceFlashAttention(null);
  }
}
