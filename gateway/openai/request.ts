/**
 * POST /v1/chat/completions bodies: what is accepted, and how it becomes a turn request.
 *
 * Stateless by default, as OpenAI's API is: `messages` is the whole context, the last
 * message (a user's, or the tool results after the model's calls) is the turn, and nothing
 * is remembered. With the header X-Conversation-Id the server-side memory is used instead:
 * the last user message (or the trailing tool results) is the new turn, a system (or
 * developer) message sets the conversation's system prompt, and the earlier messages are
 * ignored because the server remembers them.
 *
 * Every parameter the record carries is validated by the record schema's own fields
 * (contracts/generation-params.ts). Parameters the server cannot honour are refused with a 400 naming
 * the parameter, rather than silently ignored; those that common clients send without being
 * asked and that change nothing about the reply (`user`, `metadata`, `store`, ...) are
 * accepted and ignored. docs/gateway.md lists every field.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { MAX_CONTEXT_MESSAGES, MAX_TOOLS } from "../../contracts/limits.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { generationParamFields, checkParamCombination, toolCallSchema } from "../../contracts/generation-params.js";
import { addGrammarBoundIssue } from "../../contracts/grammar-bounds.js";
import type { ContextMessage, TurnRequest } from "../../contracts/records/requests.js";
import { ApiError, parseInput } from "../errors.js";
import { paramsOf, stopInput, unionWithListError } from "../routes/schemas.js";

/** Parameters OpenAI defines that this server refuses when they are set, and why. */
const UNSUPPORTED = new Map<string, string>(
  Object.entries({
    functions: "the deprecated functions API is not supported; send tools",
    function_call: "the deprecated functions API is not supported; send tool_choice",
    audio: "audio output is not supported",
    modalities: "only text output is supported",
    prediction: "predicted outputs are not supported",
    web_search_options: "web search is not supported",
    reasoning_effort: "reasoning_effort is not supported (the model is not a reasoning model)",
    verbosity: "verbosity is not supported",
  }),
);

const textPart = z.object({ type: z.literal("text", { error: 'only "text" content parts are supported' }), text: z.string() }).strict();

const contentOf = (content: string | Array<{ text: string }> | null | undefined) =>
  content == null ? "" : typeof content === "string" ? content : content.map((p) => p.text).join("");

/** A tool call as clients echo it: the openai client's parse() helpers add parsed_arguments. */
const echoedToolCall = toolCallSchema
  .extend({ function: toolCallSchema.shape.function.extend({ parsed_arguments: z.unknown().optional() }) })
  .transform((c) => ({ id: c.id, type: c.type, function: { name: c.function.name, arguments: c.function.arguments } }));

function messageSchema(maxChars: number) {
  return z
    .object({
      role: z.enum(["system", "developer", "user", "assistant", "tool"], { error: 'must be "system", "developer", "user", "assistant" or "tool"' }),
      content: z.union([z.string(), z.array(textPart).max(64)], { error: unionWithListError("must be a string or an array of text parts") }).nullish(),
      name: z.string().max(256).optional(),
      tool_calls: z.array(echoedToolCall).max(MAX_TOOLS).nullish(),
      tool_call_id: z.string().min(1).max(256).optional(),
      // What clients echo back from an assistant message of ours (the openai client's
      // parse() adds `parsed`): accepted, ignored.
      refusal: z.string().nullish(),
      parsed: z.unknown().optional(),
      annotations: z.array(z.unknown()).nullish(),
      audio: z.null().optional(),
      function_call: z.null().optional(),
    })
    .strict()
    .transform((m): ContextMessage => ({
      role: m.role === "developer" ? "system" : m.role,
      content: contentOf(m.content),
      ...(m.tool_calls ? { tool_calls: m.tool_calls } : {}),
      ...(m.tool_call_id === undefined ? {} : { tool_call_id: m.tool_call_id }),
    }))
    .superRefine((m, ctx) => {
      if (m.content.length > maxChars)
        ctx.addIssue({ code: "custom", path: ["content"], message: `must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)` });
      if (m.role === "tool" && m.tool_call_id === undefined) ctx.addIssue({ code: "custom", path: ["tool_call_id"], message: "is required on a tool message" });
      if (m.role !== "tool" && m.tool_call_id !== undefined) ctx.addIssue({ code: "custom", path: ["tool_call_id"], message: "belongs on tool messages only" });
      if (m.role !== "assistant" && m.tool_calls !== undefined)
        ctx.addIssue({ code: "custom", path: ["tool_calls"], message: "belongs on assistant messages only" });
    });
}

const f = generationParamFields;

/** The body schema of POST /v1/chat/completions (exported for the OpenAPI document). */
export function bodySchema(maxChars: number) {
  return z
    .object({
      model: z.string().min(1, "must not be empty").max(256),
      messages: z
        .array(messageSchema(maxChars))
        .min(1, "must hold at least one message")
        .max(MAX_CONTEXT_MESSAGES + 1, `must hold at most ${MAX_CONTEXT_MESSAGES + 1} messages`),
      stream: z.boolean().nullish(),
      stream_options: z.object({ include_usage: z.boolean().nullish(), include_obfuscation: z.boolean().nullish() }).strict().nullish(),
      max_tokens: f.max_tokens.nullish(),
      max_completion_tokens: f.max_tokens.nullish(),
      temperature: f.temperature.nullish(),
      top_p: f.top_p.nullish(),
      top_k: f.top_k.nullish(),
      repeat_penalty: f.repeat_penalty.nullish(),
      presence_penalty: f.presence_penalty.nullish(),
      frequency_penalty: f.frequency_penalty.nullish(),
      seed: f.seed.nullish(),
      stop: stopInput.nullish(),
      response_format: f.response_format.nullish(),
      tools: f.tools.nullish(),
      tool_choice: f.tool_choice.nullish(),
      parallel_tool_calls: f.parallel_tool_calls.nullish(),
      n: f.n.nullish(),
      logprobs: z.boolean().nullish(),
      /** Alternatives per token, with logprobs: true. */
      top_logprobs: f.logprobs.nullish(),
      logit_bias: z.strictObject({}, { error: "logit_bias is not supported (only {} is accepted)" }).nullish(),
      // Sent by common clients without being asked; they change nothing about the reply.
      user: z.string().max(256).nullish(),
      metadata: z.record(z.string(), z.string().max(512)).nullish(),
      store: z.boolean().nullish(),
      service_tier: z.string().max(64).nullish(),
      prompt_cache_key: z.string().max(1024).nullish(),
      safety_identifier: z.string().max(256).nullish(),
    })
    .strict()
    .superRefine((b, ctx) => {
      checkParamCombination(
        { tools: b.tools ?? undefined, tool_choice: b.tool_choice ?? undefined, response_format: b.response_format ?? undefined, logprobs: logprobsParam(b) },
        ctx,
      );
      if (b.top_logprobs != null && b.logprobs !== true) ctx.addIssue({ code: "custom", path: ["top_logprobs"], message: "needs logprobs: true" });
      // What the schemas would cost the worker as a grammar (contracts/grammar-bounds.ts).
      addGrammarBoundIssue(b, ctx);
    });
}

export type ChatCompletionBody = z.infer<ReturnType<typeof bodySchema>>;

/** The record's `logprobs` (alternatives per token) for a body: present only with logprobs: true. */
function logprobsParam(b: { logprobs?: boolean | null | undefined; top_logprobs?: number | null | undefined }): number | undefined {
  return b.logprobs === true ? (b.top_logprobs ?? 0) : undefined;
}

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
  const messages = body.messages;
  const last = messages.at(-1)!;
  if (last.role !== "user" && last.role !== "tool") {
    throw new ApiError("invalid_request", 'messages: the last message must be the user\'s (role "user") or a tool result (role "tool")', { param: "messages" });
  }
  if (last.role === "user" && last.content.length === 0)
    throw new ApiError("invalid_request", "messages: the last user message must not be empty", { param: "messages" });
  const params = paramsOf({
    max_tokens: body.max_completion_tokens ?? body.max_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k,
    repeat_penalty: body.repeat_penalty,
    presence_penalty: body.presence_penalty,
    frequency_penalty: body.frequency_penalty,
    seed: body.seed,
    stop: body.stop,
    // {"type": "text"} is the default: not worth carrying.
    response_format: body.response_format?.type === "text" ? undefined : body.response_format,
    tools: body.tools,
    tool_choice: body.tool_choice,
    parallel_tool_calls: body.parallel_tool_calls,
    // n=1 is the default: not worth carrying.
    n: body.n === 1 ? undefined : body.n,
    logprobs: logprobsParam(body),
  });
  const base: Omit<TurnRequest, "conversation_id" | "content"> = {
    v: SCHEMA_VERSION,
    type: "turn",
    request_id: randomUUID(),
    tenant,
    ...(params === undefined ? {} : { params }),
    created_at: Date.now(),
  };
  if (conversationId === null) {
    checkToolResults(messages);
    const afterTools = last.role === "tool";
    const context = afterTools ? messages : messages.slice(0, -1);
    if (context.length > MAX_CONTEXT_MESSAGES) {
      throw new ApiError("invalid_request", `messages: at most ${MAX_CONTEXT_MESSAGES + 1} messages (${MAX_CONTEXT_MESSAGES} before the last)`, {
        param: "messages",
      });
    }
    return { ...base, conversation_id: randomUUID(), content: afterTools ? "" : last.content, context };
  }
  // With memory, the news is the last user message, or the tool results after the last
  // assistant message (they answer the calls of the conversation's last reply).
  let lastAssistant = messages.length - 1;
  while (lastAssistant >= 0 && messages[lastAssistant]!.role !== "assistant") lastAssistant--;
  const trailing = messages.slice(lastAssistant + 1);
  const toolResults =
    last.role === "tool" ? trailing.filter((m) => m.role === "tool").map((m) => ({ tool_call_id: m.tool_call_id!, content: m.content })) : undefined;
  if (toolResults !== undefined && trailing.some((m) => m.role === "user")) {
    throw new ApiError(
      "invalid_request",
      "messages: with X-Conversation-Id, tool results end the messages after the last assistant message; send the user message in a turn of its own",
      { param: "messages" },
    );
  }
  if (body.n != null && body.n > 1) {
    throw new ApiError("invalid_request", "n: more than one choice is not supported with X-Conversation-Id (the memory keeps one reply per turn)", {
      param: "n",
    });
  }
  const system = messages.filter((m) => m.role === "system").at(-1);
  return {
    ...base,
    conversation_id: conversationId,
    content: toolResults === undefined ? last.content : "",
    ...(toolResults === undefined ? {} : { tool_results: toolResults }),
    ...(system === undefined ? {} : { system: system.content }),
  };
}

/** Each tool message answers a call an earlier assistant message made. */
function checkToolResults(messages: readonly ContextMessage[]): void {
  const calls = new Set<string>();
  messages.forEach((m, i) => {
    for (const c of m.tool_calls ?? []) calls.add(c.id);
    if (m.role === "tool" && !calls.has(m.tool_call_id!)) {
      throw new ApiError("invalid_request", `messages.${i}.tool_call_id: answers no tool call of an earlier assistant message`, {
        param: `messages.${i}.tool_call_id`,
      });
    }
  });
}
