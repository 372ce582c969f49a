/**
 * How every model in a benchmark run is loaded: CPU with one thread by default (the
 * 2-core machines these numbers come from; llama.cpp spins its threads, so never more
 * threads than cores), or what bench/gpu.sh asks for. From the environment, once:
 *   BENCH_LLAMA_GPU      LLAMA_GPU for workers and in-process models (default "false")
 *   BENCH_LLAMA_THREADS  LLAMA_THREADS (default 1; 0 = the worker's own choice)
 *   BENCH_MODEL          a GGUF path instead of stories260K
 */
export interface LlamaSettings {
  gpu: "auto" | "cuda" | "vulkan" | "metal" | "false";
  threads: number;
}

export function llamaSettings(): LlamaSettings {
  const gpu = (process.env.BENCH_LLAMA_GPU ?? "false") as LlamaSettings["gpu"];
  if (!["auto", "cuda", "vulkan", "metal", "false"].includes(gpu)) throw new Error(`BENCH_LLAMA_GPU: ${gpu} is not auto, cuda, vulkan, metal or false`);
  const threads = Number(process.env.BENCH_LLAMA_THREADS ?? "1");
  if (!Number.isInteger(threads) || threads < 0) throw new Error(`BENCH_LLAMA_THREADS: ${process.env.BENCH_LLAMA_THREADS} is not a whole number`);
  return { gpu, threads };
}

/** A short description for reports. */
export function describeLlama(s: LlamaSettings = llamaSettings()): string {
  return s.gpu === "false"
    ? `CPU, ${s.threads === 0 ? "threads from the CPU quota" : `${s.threads} thread${s.threads === 1 ? "" : "s"}`} per model`
    : `GPU (${s.gpu})`;
}
