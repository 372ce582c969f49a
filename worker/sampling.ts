/**
 * A request's sampling parameters as node-llama-cpp's generateResponse options.
 *
 * presence_penalty and frequency_penalty have OpenAI's meaning, which is llama.cpp's:
 * a token's logit is lowered by presence_penalty once it has appeared and by
 * frequency_penalty times the number of its appearances, counted over the last 64 tokens
 * (node-llama-cpp's repeat-penalty window). repeat_penalty (llama.cpp's multiplicative
 * penalty) applies over the same window.
 */
import type { LLamaChatGenerateResponseOptions } from "node-llama-cpp";
import type { GenerationParams } from "../contracts/generation-params.js";
import { stopTriggers } from "./stop-triggers.js";

export type SamplingOptions = Pick<LLamaChatGenerateResponseOptions, "temperature" | "topP" | "topK" | "seed" | "repeatPenalty" | "customStopTriggers">;

/** The seed as the sampler takes it: an unsigned 32-bit integer (any integer, modulo 2^32). */
export function samplerSeed(seed: number): number {
  return Number(BigInt.asUintN(32, BigInt(seed)));
}

export function samplingOptions(p: GenerationParams, extraStops?: readonly string[]): SamplingOptions {
  const penalty = {
    ...(p.repeat_penalty === undefined ? {} : { penalty: p.repeat_penalty }),
    ...(p.presence_penalty === undefined ? {} : { presencePenalty: p.presence_penalty }),
    ...(p.frequency_penalty === undefined ? {} : { frequencyPenalty: p.frequency_penalty }),
  };
  const stops = stopTriggers(p.stop, extraStops);
  return {
    temperature: p.temperature,
    topP: p.top_p,
    topK: p.top_k,
    ...(p.seed === undefined ? {} : { seed: samplerSeed(p.seed) }),
    ...(Object.keys(penalty).length === 0 ? {} : { repeatPenalty: penalty }),
    ...(stops === undefined ? {} : { customStopTriggers: stops }),
  };
}
