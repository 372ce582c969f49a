/**
 * chat.events: what a worker says about one request, from the start of an attempt through
 * its deltas to the one terminal event (a final or an error). The gateways read these and
 * pass them to clients as they come, so the final event's parts (usage, choices, timings)
 * are also the HTTP API's. Key: the conversation key (../conversation-key.ts), in the
 * partition the request's `events_partition` names when it names one.
 */
import { z } from "zod";
import { toolCallSchema } from "../generation-params.js";
import { MAX_CHOICES, MAX_DELTA_LOGPROBS, MAX_TOOLS, MAX_TOP_LOGPROBS } from "../limits.js";
import { SCHEMA_VERSION, conversationIdSchema, requestIdSchema, tenantSchema } from "./fields.js";

/** Why generation stopped. Names follow OpenAI's finish_reason where one exists. */
export const stopReasonSchema = z.enum(["stop", "length", "tool_calls", "cancelled", "error"]);
export type StopReason = z.infer<typeof stopReasonSchema>;

export const usageSchema = z.object({
  /** Tokens of the whole prompt (history, system prompt and the new message). */
  prompt_tokens: z.number().int().nonnegative(),
  /** Prompt tokens that were already in the KV cache and were not evaluated again. */
  cached_prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
});
export type Usage = z.infer<typeof usageSchema>;

export const choiceSchema = z.object({
  index: z
    .number()
    .int()
    .min(0)
    .max(MAX_CHOICES - 1),
  reply: z.string(),
  stop_reason: stopReasonSchema,
  tool_calls: z.array(toolCallSchema).optional(),
});
export type Choice = z.infer<typeof choiceSchema>;

/** All in milliseconds. */
export const timingsSchema = z.object({
  /** From the gateway accepting the request to the worker starting it. */
  queue_wait_ms: z.number().nonnegative(),
  /** From the worker starting the turn to the first generated token. */
  time_to_first_token_ms: z.number().nonnegative(),
  /** From the worker starting the turn to the last generated token. */
  generation_ms: z.number().nonnegative(),
});
export type Timings = z.infer<typeof timingsSchema>;

const eventBase = {
  v: z.literal(SCHEMA_VERSION),
  request_id: requestIdSchema,
  conversation_id: conversationIdSchema,
  tenant: tenantSchema,
  /** The attempt this event belongs to (see the start event). */
  attempt: z.string(),
  /** 0 for the start event, then +1 for each event of the same request, without gaps. */
  seq: z.number().int().nonnegative(),
  /** Milliseconds since the epoch when the worker produced the event. */
  at: z.number().int().nonnegative(),
};

/**
 * The first event of an attempt. When a worker dies mid-generation, the next owner runs the
 * request again under a new `attempt`, whose events start again at seq 0: a client that
 * sees a second start discards the partial reply it has. Final events are never repeated
 * with different content (RELIABILITY.md, "Guarantees": one answer). The worker sends it
 * with the attempt's first delta (one write), or by itself after DELTA_FLUSH_MS with none.
 */
export const startEventSchema = z.object({
  ...eventBase,
  type: z.literal("start"),
  worker_id: z.string(),
  /** The pool of the worker that runs the attempt (contracts/pools.ts); absent from workers before pools. */
  pool: z.string().max(64).optional(),
  /** The model name the attempt runs under: the pool's base model or one of its adapters. */
  model: z.string().max(256).optional(),
});
/** The choice an event belongs to, for a request with n > 1; absent means 0. */
const choiceIndex = z
  .number()
  .int()
  .min(0)
  .max(MAX_CHOICES - 1)
  .optional();
/**
 * A log probability: natural log, <= 0; a token the sampling ruled out is -9999 (OpenAI's
 * stand-in for minus infinity, which JSON cannot hold).
 */
const logprob = z.number().min(-9999).max(0);
/** A token's text is at most a few hundred characters in any vocabulary; bounded so a delta stays a record. */
const tokenText = z.string().max(1024);
/**
 * One generated token of a request with `params.logprobs`: its text (the text it added to
 * the reply: the token's texts join to the reply), its log probability and the most likely
 * alternatives at its position, most likely first.
 */
export const tokenLogprobSchema = z.object({
  token: tokenText,
  logprob,
  top_logprobs: z.array(z.object({ token: tokenText, logprob })).max(MAX_TOP_LOGPROBS),
});
export type TokenLogprob = z.infer<typeof tokenLogprobSchema>;

export const deltaEventSchema = z.object({
  ...eventBase,
  type: z.literal("delta"),
  text: z.string().min(1),
  /** Which choice the text belongs to, for a request with n > 1; absent means 0. */
  choice: choiceIndex,
  /**
   * With `params.logprobs`: the tokens of `text`, in order (their texts join to it). Only
   * deltas carry them, never the final event, which stays one bounded record whatever the
   * reply's length: a gateway gathers them from the attempt's deltas.
   */
  logprobs: z.array(tokenLogprobSchema).max(MAX_DELTA_LOGPROBS).optional(),
});
/**
 * A fragment of a tool call's arguments as the model writes them (OpenAI route with tools):
 * the first fragment of a call carries its id and function name. The final event's
 * tool_calls hold every call whole, with the same ids.
 */
export const toolCallDeltaEventSchema = z.object({
  ...eventBase,
  type: z.literal("tool_call_delta"),
  /** Which choice, for a request with n > 1; absent means 0. */
  choice: choiceIndex,
  /** The call's position among the reply's calls. */
  index: z
    .number()
    .int()
    .min(0)
    .max(MAX_TOOLS - 1),
  id: z.string().min(1).max(256).optional(),
  name: z.string().min(1).max(64).optional(),
  arguments: z.string(),
});
export const finalEventSchema = z.object({
  ...eventBase,
  type: z.literal("final"),
  reply: z.string(),
  stop_reason: stopReasonSchema,
  /** The calls the model made instead of (or after) replying; stop_reason is then tool_calls. */
  tool_calls: z.array(toolCallSchema).optional(),
  /**
   * Every choice of a request with n > 1, by index (`reply`, `stop_reason` and `tool_calls`
   * above are choice 0's); `usage.completion_tokens` counts them all.
   */
  choices: z.array(choiceSchema).optional(),
  usage: usageSchema,
  timings: timingsSchema,
});
export const errorEventSchema = z.object({
  ...eventBase,
  type: z.literal("error"),
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
});

/** A value on chat.events. */
export const chatEventSchema = z.discriminatedUnion("type", [startEventSchema, deltaEventSchema, toolCallDeltaEventSchema, finalEventSchema, errorEventSchema]);
export type ChatEvent = z.infer<typeof chatEventSchema>;
export type StartEvent = z.infer<typeof startEventSchema>;
export type DeltaEvent = z.infer<typeof deltaEventSchema>;
export type ToolCallDeltaEvent = z.infer<typeof toolCallDeltaEventSchema>;
export type FinalEvent = z.infer<typeof finalEventSchema>;
export type ErrorEvent = z.infer<typeof errorEventSchema>;

/** True for the event that ends a request's stream. */
export function isTerminalEvent(e: ChatEvent): e is FinalEvent | ErrorEvent {
  return e.type === "final" || e.type === "error";
}
