/**
 * What the gateway answers, as zod schemas: the response bodies of each route and the two
 * error bodies. They exist for the OpenAPI document (gateway/openapi/document.ts); the
 * routes build their answers by hand, and test/integration/openapi-fuzz.test.ts checks
 * that every answer matches these. Records' own schemas (usage, timings, messages) are
 * reused, so a field added to a record shows up here.
 *
 * Objects are not strict: a client must ignore fields it does not know, and a field the
 * gateway adds is not a breaking change.
 */
import { z } from "zod";
import { ERROR_CODES, type ErrorCode } from "../../contracts/errors.js";
import { conversationIdSchema, requestIdSchema } from "../../contracts/records/fields.js";
import { memoryMessageSchema } from "../../contracts/records/memory.js";
import { stopReasonSchema, timingsSchema, usageSchema } from "../../contracts/records/events.js";

const errorCodes = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

/** The native API's error body: {"error": {"code", "message", "retryable"}}. */
export const nativeErrorBody = z.object({
  error: z.object({
    code: z.enum(errorCodes),
    /** Says what to fix. */
    message: z.string(),
    retryable: z.boolean(),
  }),
});

/** OpenAI's error body, spoken by /v1/chat/completions and /v1/models. */
export const openAiErrorBody = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string(),
  }),
});

const links = {
  status_url: z.string(),
  events_url: z.string(),
};

export const openedConversation = z.object({
  id: conversationIdSchema,
  object: z.literal("conversation"),
  created_at: z.number().int().nonnegative(),
  metadata: z.record(z.string(), z.string()),
  request_id: requestIdSchema,
  messages_url: z.string(),
  ...links,
});

export const acceptedRequest = z.object({
  request_id: requestIdSchema,
  conversation_id: conversationIdSchema,
  ...links,
});

const millis = z.number().int().nonnegative();

const seconds = z.number().int().nonnegative();

/** OpenAI's conversation object, with the native summary (gateway/routes/conversations.ts). */
export const conversationSummary = z.object({
  id: conversationIdSchema,
  object: z.literal("conversation"),
  created_at: seconds,
  metadata: z.record(z.string(), z.string()),
  system: z.string().nullable(),
  message_count: z.number().int().nonnegative(),
  turns: z.number().int().nonnegative(),
  updated_at: seconds,
});

export const pendingConversation = conversationSummary.extend({ request_id: requestIdSchema, ...links });

export const deletedConversation = z.object({
  id: conversationIdSchema,
  object: z.literal("conversation.deleted"),
  conversation_id: conversationIdSchema,
  deleted: z.boolean(),
  request_id: requestIdSchema.optional(),
  status_url: z.string().optional(),
  events_url: z.string().optional(),
});

const conversationItem = z.object({
  id: z.string().regex(/^msg_/),
  type: z.literal("message"),
  status: z.literal("completed"),
  role: z.enum(["user", "assistant", "system"]),
  content: z.array(z.looseObject({ type: z.enum(["input_text", "output_text"]), text: z.string() })),
  created_at: seconds,
});

export const conversationItemList = z.object({
  object: z.literal("list"),
  data: z.array(conversationItem),
  first_id: z.string().nullable(),
  last_id: z.string().nullable(),
  has_more: z.boolean(),
  request_id: requestIdSchema.optional(),
  status_url: z.string().optional(),
  events_url: z.string().optional(),
});

export { conversationItem };

/** GET /messages: a page of the conversation's history (chat.history). */
export const historyPage = z.object({
  conversation_id: conversationIdSchema,
  messages: z.array(
    z.object({
      index: z.number().int().nonnegative().describe("The message's 0-based position in the conversation"),
      role: z.enum(["system", "user", "assistant"]).describe("system: a change of system prompt; assistant: the greeting and replies"),
      content: z.string(),
      created_at: millis,
      request_id: requestIdSchema,
    }),
  ),
  first_cursor: z.string().nullable().describe("Opaque; pass as before= to read older messages (null when no messages)"),
  last_cursor: z.string().nullable().describe("Opaque; pass as after= to read newer messages (null when no messages)"),
  has_more_before: z.boolean(),
  has_more_after: z.boolean(),
  total: z.number().int().nonnegative().describe("Messages in the whole conversation"),
});

/** POST /history, once applied. */
export const appendedHistory = z.object({
  conversation_id: conversationIdSchema,
  request_id: requestIdSchema,
  appended: z.number().int().positive(),
  total: z.number().int().nonnegative(),
});

/** GET /memory: the prompt memory (trimmed to MEMORY_MAX_TOKENS). */
export const conversationHistory = z.object({
  conversation_id: conversationIdSchema,
  system: z.string().nullable(),
  messages: z.array(memoryMessageSchema),
  total: z.number().int().nonnegative(),
  has_more: z.boolean(),
  turns: z.number().int().nonnegative(),
  updated_at: millis,
});

export const requestStatusName = z.enum(["queued", "running", "completed", "cancelled", "failed"]);

export const requestStatusBody = z.object({
  request_id: requestIdSchema,
  conversation_id: conversationIdSchema,
  status: requestStatusName,
  reply: z.string(),
  stop_reason: stopReasonSchema.nullable(),
  usage: usageSchema.nullable(),
  timings: timingsSchema.nullable(),
  error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }).nullable(),
  worker_id: z.string().nullable(),
});

export const cancelAccepted = z.object({ request_id: requestIdSchema, status: requestStatusName });

export const model = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: z.number().int(),
  owned_by: z.string(),
  /** An adapter's base model. */
  parent: z.string().optional(),
});
export const modelList = z.object({ object: z.literal("list"), data: z.array(model) });

const openAiUsage = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  total_tokens: z.number().int().nonnegative(),
  prompt_tokens_details: z.object({ cached_tokens: z.number().int().nonnegative() }),
});

export const chatCompletion = z.object({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      message: z.object({ role: z.literal("assistant"), content: z.string(), refusal: z.null() }),
      logprobs: z.null(),
      finish_reason: z.enum(["stop", "length"]),
    }),
  ),
  usage: openAiUsage,
  system_fingerprint: z.null(),
});

const responseItem = z.looseObject({ id: z.string(), type: z.enum(["message", "function_call"]), status: z.string() });

/** OpenAI's Response object (gateway/openai/responses-object.ts). */
export const response = z.looseObject({
  id: z.string().regex(/^resp_/),
  object: z.literal("response"),
  created_at: z.number().int(),
  status: z.enum(["queued", "in_progress", "completed", "incomplete", "cancelled", "failed"]),
  background: z.boolean(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  model: z.string(),
  output: z.array(responseItem),
  store: z.boolean(),
  usage: z
    .object({
      input_tokens: z.number().int().nonnegative(),
      input_tokens_details: z.object({ cached_tokens: z.number().int().nonnegative() }),
      output_tokens: z.number().int().nonnegative(),
      output_tokens_details: z.object({ reasoning_tokens: z.number().int().nonnegative() }),
      total_tokens: z.number().int().nonnegative(),
    })
    .nullable(),
  metadata: z.record(z.string(), z.string()),
});

export const deletedResponse = z.object({ id: z.string(), object: z.literal("response"), deleted: z.literal(true) });

export const inputItemList = z.object({
  object: z.literal("list"),
  data: z.array(z.looseObject({ id: z.string(), type: z.literal("message"), role: z.enum(["user", "assistant", "system"]) })),
  first_id: z.string().nullable(),
  last_id: z.string().nullable(),
  has_more: z.boolean(),
});

export const health = z.object({ status: z.enum(["ok", "failed"]), reason: z.string().optional() });
export const readiness = z.object({ status: z.enum(["ready", "starting"]) });
