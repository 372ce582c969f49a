/**
 * OpenAI's response objects for a turn: a `chat.completion` for a whole reply, and the
 * `chat.completion.chunk` stream (role first, then content, then finish_reason, then usage
 * when asked, then `data: [DONE]`).
 *
 * finish_reason: "stop" or "length" as the worker reports them; a cancelled reply ends
 * with "stop" (OpenAI has no word for it; the native API says "cancelled").
 */
import type { FinalEvent, Usage } from "../../contracts/records.js";

export type FinishReason = "stop" | "length";

export function finishReason(final: FinalEvent): FinishReason {
  return final.stop_reason === "length" ? "length" : "stop";
}

export function completionId(requestId: string): string {
  return `chatcmpl-${requestId}`;
}

export function openAiUsage(usage: Usage) {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
    prompt_tokens_details: { cached_tokens: usage.cached_prompt_tokens },
  };
}

export interface CompletionMeta {
  requestId: string;
  model: string;
  /** Unix seconds. */
  created: number;
}

export function completion(meta: CompletionMeta, final: FinalEvent) {
  return {
    id: completionId(meta.requestId),
    object: "chat.completion" as const,
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant" as const, content: final.reply, refusal: null },
        logprobs: null,
        finish_reason: finishReason(final),
      },
    ],
    usage: openAiUsage(final.usage),
    system_fingerprint: null,
  };
}

export function chunk(
  meta: CompletionMeta,
  delta: { role?: "assistant"; content?: string },
  finish: FinishReason | null,
  includeUsage: boolean,
) {
  return {
    id: completionId(meta.requestId),
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: null,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    // With include_usage, every chunk carries usage: null except the last one.
    ...(includeUsage ? { usage: null } : {}),
  };
}

/** The extra last chunk of include_usage: no choices, the usage. */
export function usageChunk(meta: CompletionMeta, usage: Usage) {
  return {
    id: completionId(meta.requestId),
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: null,
    choices: [],
    usage: openAiUsage(usage),
  };
}

export function sseData(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

export const SSE_DONE = "data: [DONE]\n\n";
