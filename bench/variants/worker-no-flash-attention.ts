/** The real worker (worker/main.ts) with flash attention off: the proposed fix for CPU workers. */
import { forceFlashAttention } from "./flash-attention.js";

forceFlashAttention(false);
await import("../../worker/main.js");
