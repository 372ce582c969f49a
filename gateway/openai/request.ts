/**
 * POST /v1/chat/completions bodies: what is accepted, and how it becomes a turn request.
 *
 * Stateless by default, as OpenAI's API is: `messages` is the whole context, the last
 * message (a user's) is the turn, and nothing is remembered. With the header
 * X-Conversation-Id the server-side memory is used instead: the last user message is the
 * new turn, a system (or developer) message sets the conversation's system prompt, and the
 * earlier messages are ignored because the server remembers them.
 *
 * Features the server cannot honour are refused with a 400 naming the parameter, rather
 * than silently ignored: a client relying on tools or stop sequences should know.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { SCHEMA_VERSION, type TurnRequest } from "../../contracts/records.js";
import { ApiError, parseInput } from "../errors.js";
import { generationParamShape, paramsOf } from "../routes/schemas.js";

/** Parameters OpenAI defines that this server does not support, and why. */
const UNSUPPORTED = new Map<string, string>(Object.entries({
  tools: "tool calling is not supported",
  tool_choice: "tool calling is not supported",
  parallel_tool_calls: "tool calling is not supported",
  functions: "function calling is not supported",
  function_call: "function calling is not supported",
  stop: "stop sequences are not supported",
  logit_bias: "logit_bias is not supported",
  top_logprobs: "logprobs are not supported",
  seed: "seeded sampling is not supported",
  audio: "audio output is not supported",
  modalities: "only text output is supported",
  prediction: "predicted outputs are not supported",
  web_search_options: "web search is not supported",
  reasoning_effort: "reasoning_effort is not supported",
  verbosity: "verbosity is not supported",
  store: "stored completions are not supported",
  metadata: "stored completions are not supported",
  service_tier: "service tiers are not supported",
  prompt_cache_key: "prompt_cache_key is not supported",
  safety_identifier: "safety_identifier is not supported",
}));

const textPart = z
  .object({ type: z.literal("text", { errorMap: () => ({ message: 'only "text" content parts are supported' }) }), text: z.string() })
  .strict();

function messageSchema(maxChars: number) {
  return z
    .object({
      role: z.enum(["system", "developer", "user", "assistant"], {
        errorMap: () => ({ message: 'must be "system", "developer", "user" or "assistant" (tool messages are not supported)' }),
      }),
      content: z.union([z.string(), z.array(textPart).max(64)], {
        errorMap: (issue, ctx) => ({ message: issue.code === "invalid_union" ? "must be a string or an array of text parts" : ctx.defaultError }),
      }),
      name: z.string().max(256).optional(),
    })
    .strict()
    .transform((m) => ({ role: m.role, content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("") }))
    .refine((m) => m.content.length <= maxChars, { message: `content must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`, path: ["content"] });
}

const neutral = <T extends z.Primitive>(value: T, message: string) => z.literal(value, { errorMap: () => ({ message }) }).nullish();

/** The body schema of POST /v1/chat/completions (exported for the OpenAPI document). */
export function bodySchema(maxChars: number) {
  return z
    .object({
      model: z.string({ required_error: "is required" }).min(1, "must not be empty").max(256),
      messages: z.array(messageSchema(maxChars), { required_error: "is required" }).min(1, "must hold at least one message").max(513, "must hold at most 513 messages"),
      stream: z.boolean().nullish(),
      stream_options: z.object({ include_usage: z.boolean().optional(), include_obfuscation: z.boolean().optional() }).strict().nullish(),
      max_tokens: generationParamShape.max_tokens.nullish(),
      max_completion_tokens: generationParamShape.max_tokens.nullish(),
      temperature: generationParamShape.temperature.nullish(),
      top_p: generationParamShape.top_p.nullish(),
      top_k: generationParamShape.top_k.nullish(),
      repeat_penalty: generationParamShape.repeat_penalty.nullish(),
      n: neutral(1, "only n=1 is supported"),
      presence_penalty: neutral(0, "is not supported (use repeat_penalty)"),
      frequency_penalty: neutral(0, "is not supported (use repeat_penalty)"),
      logprobs: neutral(false, "logprobs are not supported"),
      response_format: z
        .object({ type: z.literal("text", { errorMap: () => ({ message: 'only {"type": "text"} is supported' }) }) })
        .strict()
        .nullish(),
      user: z.string().max(256).optional(),
    })
    .strict();
}

export type ChatCompletionBody = z.infer<ReturnType<typeof bodySchema>>;

export interface CompletionInput {
  body: ChatCompletionBody;
  stream: boolean;
  includeUsage: boolean;
}

/** Validates a body; every failure names its parameter. */
export function parseCompletionBody(raw: Record<string, unknown>, maxChars: number): CompletionInput {
  for (const key of Object.keys(raw)) {
    const why = UNSUPPORTED.get(key);
    if (why !== undefined && raw[key] !== null && raw[key] !== undefined) throw new ApiError("invalid_request", `${key}: ${why}`, { param: key });
  }
  const body = parseInput(bodySchema(maxChars), raw, "body");
  if (body.max_tokens != null && body.max_completion_tokens != null && body.max_tokens !== body.max_completion_tokens) {
    throw new ApiError("invalid_request", "max_tokens and max_completion_tokens disagree: send one of them", { param: "max_completion_tokens" });
  }
  return { body, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true };
}

/**
 * The turn request for a body. `conversationId` null = stateless: a fresh id of its own
 * (spreading stateless turns over the partitions) and the messages before the last as
 * the context.
 */
export function toTurnRequest(input: CompletionInput, tenant: string, conversationId: string | null): TurnRequest {
  const { body } = input;
  const messages = body.messages.map((m) => ({ role: m.role === "developer" ? ("system" as const) : m.role, content: m.content }));
  const last = messages.at(-1)!;
  if (last.role !== "user") throw new ApiError("invalid_request", "messages: the last message must be the user's (role \"user\")", { param: "messages" });
  if (last.content.length === 0) throw new ApiError("invalid_request", "messages: the last user message must not be empty", { param: "messages" });
  const params = paramsOf({
    max_tokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    temperature: body.temperature ?? undefined,
    top_p: body.top_p ?? undefined,
    top_k: body.top_k ?? undefined,
    repeat_penalty: body.repeat_penalty ?? undefined,
  });
  const base: Omit<TurnRequest, "conversation_id"> = {
    v: SCHEMA_VERSION,
    type: "turn",
    request_id: randomUUID(),
    tenant,
    content: last.content,
    ...(params === undefined ? {} : { params }),
    created_at: Date.now(),
  };
  if (conversationId === null) {
    const context = messages.slice(0, -1);
    if (context.length > 512) throw new ApiError("invalid_request", "messages: at most 513 messages (512 before the last)", { param: "messages" });
    return { ...base, conversation_id: randomUUID(), context };
  }
  const system = messages.filter((m) => m.role === "system").at(-1);
  return { ...base, conversation_id: conversationId, ...(system === undefined ? {} : { system: system.content }) };
}
