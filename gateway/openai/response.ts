/**
 * OpenAI's response objects for a turn: a `chat.completion` for a whole reply, and the
 * `chat.completion.chunk` stream (role first, then content, then finish_reason, then usage
 * when asked, then `data: [DONE]`).
 *
 * finish_reason: "stop", "length" or "tool_calls" as the worker reports them; a cancelled
 * reply ends with "stop" (OpenAI has no word for it; the native API says "cancelled").
 *
 * Tool calls stream as OpenAI streams them: per call, a chunk with its index, id, type and
 * name (arguments ""), then its arguments in fragments as the worker generates them.
 *
 * With logprobs, each content chunk carries the logprobs of its tokens, and the whole
 * completion those gathered from the reply's deltas (gateway/openai/logprobs.ts); `null`
 * where none were asked for or none are held (a replayed final).
 */
import type { Choice, FinalEvent, TokenLogprob, Usage } from "../../contracts/records/events.js";
import { chatLogprobs } from "./logprobs.js";

export type FinishReason = "stop" | "length" | "tool_calls";

export function finishReason(final: Pick<FinalEvent, "stop_reason">): FinishReason {
  if (final.stop_reason === "length" || final.stop_reason === "tool_calls") return final.stop_reason;
  return "stop";
}

/** The choices of a final event: its `choices` for n > 1, else the one it is. */
export function choicesOf(final: FinalEvent): Choice[] {
  return final.choices ?? [{ index: 0, reply: final.reply, stop_reason: final.stop_reason, ...(final.tool_calls ? { tool_calls: final.tool_calls } : {}) }];
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

/** `logprobs`: choice i's tokens, when asked for and held. */
export function completion(meta: CompletionMeta, final: FinalEvent, logprobs: (choice: Choice) => TokenLogprob[] | null = () => null) {
  return {
    id: completionId(meta.requestId),
    object: "chat.completion" as const,
    created: meta.created,
    model: meta.model,
    choices: choicesOf(final).map((c) => ({
      index: c.index,
      message: {
        role: "assistant" as const,
        // OpenAI sends null content beside tool calls when there is no text.
        content: c.tool_calls && c.reply === "" ? null : c.reply,
        refusal: null,
        ...(c.tool_calls ? { tool_calls: c.tool_calls } : {}),
      },
      logprobs: logprobsOf(logprobs(c)),
      finish_reason: finishReason(c),
    })),
    usage: openAiUsage(final.usage),
    system_fingerprint: null,
  };
}

export interface ChunkDelta {
  role?: "assistant";
  content?: string;
  tool_calls?: Array<{ index: number; id?: string; type?: "function"; function: { name?: string; arguments: string } }>;
}

export function chunk(
  meta: CompletionMeta,
  delta: ChunkDelta,
  finish: FinishReason | null,
  includeUsage: boolean,
  index = 0,
  logprobs: readonly TokenLogprob[] | null = null,
) {
  return {
    id: completionId(meta.requestId),
    object: "chat.completion.chunk" as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: null,
    choices: [{ index, delta, logprobs: logprobsOf(logprobs), finish_reason: finish }],
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

const logprobsOf = (tokens: readonly TokenLogprob[] | null) => (tokens === null ? null : chatLogprobs(tokens));
