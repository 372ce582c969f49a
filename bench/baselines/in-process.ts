/**
 * The baseline every route is compared with: the worker's own model loading, slot pool and
 * generator (worker/llm.ts, worker/slot-pool.ts, worker/generator.ts) called in this
 * process, with no Kafka and no HTTP between the caller and the tokens.
 */
import type { WorkerConfig } from "../../contracts/config/worker.js";
import { SequenceGenerator, type ChatMessage, type GenerateResult } from "../../worker/generator.js";
import { loadLlm, type LoadedLlm } from "../../worker/llm.js";
import { SlotPool } from "../../worker/slot-pool.js";
import { createLogger } from "../../platform/logger.js";
import { llamaSettings } from "../lib/llama-settings.js";

export interface InProcessModel {
  readonly llm: LoadedLlm;
  readonly slots: SlotPool<SequenceGenerator>;
  /** Generates on a free slot (the conversation's own when it holds one), as a worker turn does; all as one tenant. */
  generate(conversationId: string, messages: readonly ChatMessage[], maxTokens: number, onText?: (text: string) => void): Promise<GenerateResult>;
  countTokens(text: string): number;
  dispose(): Promise<void>;
}

/** Model settings as a worker gets them from its env (CONTEXT_SIZE default 2048, capped by the model). */
export function modelConfig(model: string): WorkerConfig["model"] {
  const { gpu, threads } = llamaSettings();
  return { source: model, directory: ".cache/models", gpu: gpu === "false" ? false : gpu, threads, contextSize: 2048 };
}

export async function loadInProcess(model: string, slots: number): Promise<InProcessModel> {
  const logger = createLogger("bench", "error");
  const llm = await loadLlm(modelConfig(model), logger, slots);
  const generators = Array.from({ length: slots }, () => new SequenceGenerator(llm.context.getSequence()));
  const pool = new SlotPool(generators, { clear: (g) => g.clearCache() });
  return {
    llm,
    slots: pool,
    async generate(conversationId, messages, maxTokens, onText = () => {}) {
      const slot = await pool.acquire({ key: conversationId, tenant: "bench" });
      try {
        return await slot.generator.generate({ messages, params: { max_tokens: maxTokens }, defaultMaxTokens: maxTokens, onText });
      } finally {
        pool.release(slot);
      }
    },
    countTokens: (text) => llm.model.tokenize(text).length,
    async dispose() {
      for (const g of generators) g.dispose();
      await llm.dispose();
    },
  };
}
