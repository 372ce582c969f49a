/**
 * Loads node-llama-cpp, the model and one context. GPU when there is one (or as
 * configured), else CPU with threads sized from the CPU quota.
 */
import path from "node:path";
import { getLlama, LlamaLogLevel, resolveModelFile, type Llama, type LlamaContext, type LlamaModel } from "node-llama-cpp";
import type { WorkerConfig } from "../contracts/config/worker.js";
import type { Logger } from "../platform/logger.js";
import { generationThreads } from "./cpu-quota.js";

export interface LoadedLlm {
  readonly llama: Llama;
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  /** A context per LoRA adapter (node-llama-cpp applies adapters per context), by the adapter's model name. */
  readonly adapterContexts: ReadonlyMap<string, LlamaContext>;
  readonly modelPath: string;
  readonly threads: number;
  readonly gpu: string | false;
  dispose(): Promise<void>;
}

/**
 * Resolves `source` to a local file: a path is used as it is; an `hf:` URI (or https URL)
 * is downloaded once into `directory` and reused from there.
 */
export async function resolveModelSource(source: string, directory: string, logger: Logger): Promise<string> {
  const isRemote = /^(hf:|https?:)/.test(source);
  if (!isRemote) return path.resolve(source);
  logger.info({ source, directory }, "resolving remote model (downloads once, then cached)");
  return resolveModelFile(source, { directory: path.resolve(directory), cli: false, verify: false });
}

export async function loadLlm(
  config: WorkerConfig["model"],
  logger: Logger,
  sequences = 1,
  adapters: { readonly list: readonly { readonly name: string; readonly source: string }[]; readonly sequences: number } = { list: [], sequences: 1 },
): Promise<LoadedLlm> {
  const threads = generationThreads(config.threads);
  const modelPath = await resolveModelSource(config.source, config.directory, logger);
  // build: "never": use the prebuilt binaries shipped in npm packages, never compile at run time.
  const llamaLog = logger.child({ component: "llama.cpp" });
  const llama = await getLlama({
    gpu: config.gpu,
    build: "never",
    maxThreads: threads,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (!text) return;
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) llamaLog.error(text);
      else llamaLog.debug(text);
    },
  });
  const model = await llama.loadModel({ modelPath });
  const contextOptions = {
    contextSize: Math.min(config.contextSize, model.trainContextSize),
    threads,
    // On a CPU, flash attention makes each evaluated token cost more the longer the
    // sequence (bench: 1.4-2.4x throughput and far flatter time to first token without it).
    flashAttention: llama.gpu === false ? false : ("auto" as const),
  };
  const context = await model.createContext({ ...contextOptions, sequences });
  logger.info({ modelPath, gpu: llama.gpu, threads, contextSize: context.contextSize, sequences }, "model loaded");
  const adapterContexts = new Map<string, LlamaContext>();
  for (const adapter of adapters.list) {
    const filePath = await resolveModelSource(adapter.source, config.directory, logger);
    adapterContexts.set(adapter.name, await model.createContext({ ...contextOptions, sequences: adapters.sequences, lora: { adapters: [{ filePath }] } }));
    logger.info({ adapter: adapter.name, filePath, sequences: adapters.sequences }, "LoRA adapter loaded");
  }
  return {
    llama,
    model,
    context,
    adapterContexts,
    modelPath,
    threads,
    gpu: llama.gpu,
    async dispose() {
      for (const c of adapterContexts.values()) await c.dispose();
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}
