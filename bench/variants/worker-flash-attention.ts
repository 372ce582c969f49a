/**
 * The real worker (worker/main.ts) with flash attention forced by BENCH_FLASH_ATTENTION
 * (on, off or auto), to measure the setting worker/llm.ts does not ship.
 */
import { forceFlashAttention } from "./flash-attention.js";

const mode = process.env.BENCH_FLASH_ATTENTION;
if (mode !== "on" && mode !== "off" && mode !== "auto") throw new Error(`BENCH_FLASH_ATTENTION must be on, off or auto, not ${mode}`);
forceFlashAttention(mode === "auto" ? "auto" : mode === "on");
await import("../../worker/main.js");
