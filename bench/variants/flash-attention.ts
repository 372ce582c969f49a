/**
 * Flash attention for the model contexts this process creates, to measure both settings
 * whatever worker/llm.ts ships: node-llama-cpp's default is "auto", which llama.cpp turns
 * on for the CPU too. Bench-only.
 */
import { LlamaModel } from "node-llama-cpp";
import { createLogger } from "../../platform/logger.js";
import { loadLlm } from "../../worker/llm.js";
import { modelConfig } from "../baselines/in-process.js";

export type FlashAttention = boolean | "auto";
type CreateContext = LlamaModel["createContext"];
const original: CreateContext = LlamaModel.prototype.createContext;

export function forceFlashAttention(mode: FlashAttention | null): void {
  LlamaModel.prototype.createContext =
    mode === null
      ? original
      : function (this: LlamaModel, options?: Parameters<CreateContext>[0]) {
          return original.call(this, { ...options, flashAttention: mode });
        };
}

/** Runs `load` with flash attention forced to `mode`, then restores what the code asks for. */
export async function withFlashAttention<T>(mode: FlashAttention, load: () => Promise<T>): Promise<T> {
  forceFlashAttention(mode);
  try {
    return await load();
  } finally {
    forceFlashAttention(null);
  }
}

/** What worker/llm.ts gives a context here: true, false or "auto". */
export async function shippedFlashAttention(model: string): Promise<FlashAttention> {
  const llm = await loadLlm(modelConfig(model), createLogger("bench", "fatal"), 1);
  try {
    return llm.context.flashAttention;
  } finally {
    await llm.dispose();
  }
}

/** The setting to measure beside the shipped one. */
export function otherFlashAttention(shipped: FlashAttention): FlashAttention {
  return shipped === false ? "auto" : false;
}

export function describeFlashAttention(mode: FlashAttention): string {
  return mode === "auto" ? "flash attention auto (on for CPU)" : mode ? "flash attention on" : "flash attention off";
}
