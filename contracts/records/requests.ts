/**
 * chat.requests: everything that changes a conversation (a turn, an open, an append, a
 * delete) goes through this topic, so the worker that owns the conversation's partition
 * applies it in order with the conversation's turns. The gateway writes these records and
 * the workers read them; a record that fails this schema is dead-lettered with the reason
 * (./dead-letter.ts). Key: the conversation key (../conversation-key.ts).
 */
import { z } from "zod";
import { generationParamsSchema, toolCallSchema } from "../generation-params.js";
import { MAX_APPEND_MESSAGES, MAX_CONTENT_CHARS, MAX_CONTEXT_MESSAGES, MAX_TOOLS } from "../limits.js";
import { SCHEMA_VERSION, conversationIdSchema, metadataSchema, offsetSchema, requestIdSchema, tenantSchema } from "./fields.js";
import { historyMessageSchema } from "./history.js";
import { modelNameSchema, poolNameSchema } from "../pools.js";
import { conversationStateSchema } from "./memory.js";

const requestBase = {
  v: z.literal(SCHEMA_VERSION),
  request_id: requestIdSchema,
  conversation_id: conversationIdSchema,
  tenant: tenantSchema,
  /** Milliseconds since the epoch when the gateway accepted the request. */
  created_at: z.number().int().nonnegative(),
  /**
   * The chat.events partition every event of this request goes to (the gateway replica that
   * accepted it reads that partition). Absent, or not a partition of chat.events: the
   * producer's partitioner by the conversation key.
   */
  events_partition: z.number().int().nonnegative().optional(),
  /**
   * The model the client named (the OpenAI `model`): the pool's base model or one of its
   * adapters (contracts/pools.ts). It chose the topic the record is on; absent: the pool's
   * base model.
   */
  model: modelNameSchema.optional(),
};

/**
 * A message of a stateless turn's context. An assistant message may carry the tool calls it
 * made (its content may then be empty); a tool message answers one of them by id.
 */
export const contextMessageSchema = z
  .object({
    role: z.enum(["system", "user", "assistant", "tool"]),
    content: z.string().max(MAX_CONTENT_CHARS),
    tool_calls: z.array(toolCallSchema).min(1).max(MAX_TOOLS).optional(),
    tool_call_id: z.string().min(1).max(256).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.tool_calls !== undefined && m.role !== "assistant")
      ctx.addIssue({ code: "custom", path: ["tool_calls"], message: "only assistant messages carry tool calls" });
    if ((m.tool_call_id !== undefined) !== (m.role === "tool"))
      ctx.addIssue({ code: "custom", path: ["tool_call_id"], message: "a tool message, and only a tool message, needs tool_call_id" });
  });
export type ContextMessage = z.infer<typeof contextMessageSchema>;

/**
 * A user turn: generate the assistant's reply to `content` with the conversation's memory.
 * A stateless turn whose context ends with tool results (the model's turn after its tool
 * calls) has an empty `content`: there is no new user message.
 */
export const turnRequestSchema = z
  .object({
    ...requestBase,
    type: z.literal("turn"),
    content: z.string().max(MAX_CONTENT_CHARS),
    /** Replaces the conversation's system prompt from this turn on. */
    system: z.string().max(MAX_CONTENT_CHARS).optional(),
    params: generationParamsSchema.optional(),
    /**
     * Stateless turn (OpenAI-style): these messages are the whole context; the memory is
     * neither read nor written. `content` is then the last user message.
     */
    context: z.array(contextMessageSchema).max(MAX_CONTEXT_MESSAGES).optional(),
    /**
     * A turn with memory that answers the tool calls of the conversation's last reply: these
     * results are the new messages, and `content` is empty.
     */
    tool_results: z
      .array(z.object({ tool_call_id: z.string().min(1).max(256), content: z.string().max(MAX_CONTENT_CHARS) }).strict())
      .min(1)
      .max(MAX_TOOLS)
      .optional(),
    /**
     * A turn with memory whose request brought more than its news (the Responses API's
     * `input` items): messages, with their tool calls and results, that join the
     * conversation before `content` or `tool_results`, in the memory and the history, as if
     * appended just before. No system messages: a change of system prompt is `system`.
     */
    prelude: z.array(contextMessageSchema).min(1).max(MAX_CONTEXT_MESSAGES).optional(),
    /**
     * A change of model to another pool (contracts/pools.ts): the record is on the topic of
     * the pool the conversation is in, whose owner applies what came before it, then puts
     * the turn, without move_to and with `carry`, on the named pool's topic.
     */
    move_to: poolNameSchema.optional(),
    /** A moved turn: the conversation's state as its last pool left it, which the new pool's owner takes as its own. */
    carry: conversationStateSchema.optional(),
  })
  .strict();

function checkTurnContent(t: z.infer<typeof turnRequestSchema>, ctx: z.RefinementCtx): void {
  if (t.tool_results !== undefined && t.context !== undefined)
    ctx.addIssue({
      code: "custom",
      path: ["tool_results"],
      message: "belongs to turns with memory; a stateless turn carries tool results in its context",
    });
  if (t.prelude !== undefined && t.context !== undefined)
    ctx.addIssue({ code: "custom", path: ["prelude"], message: "belongs to turns with memory; a stateless turn's earlier messages are its context" });
  t.prelude?.forEach((m, i) => {
    if (m.role === "system") ctx.addIssue({ code: "custom", path: ["prelude", i, "role"], message: "a system prompt goes in `system`, not the prelude" });
  });
  const afterTools = t.context?.at(-1)?.role === "tool" || t.tool_results !== undefined;
  if (t.content.length === 0 && !afterTools) ctx.addIssue({ code: "custom", path: ["content"], message: "must not be empty" });
  if (t.content.length > 0 && afterTools) ctx.addIssue({ code: "custom", path: ["content"], message: "must be empty after tool results" });
}

/** Opens a conversation: stores the system prompt and, when asked, the fixed greeting. */
export const openRequestSchema = z
  .object({
    ...requestBase,
    type: z.literal("open"),
    greeting: z.boolean(),
    system: z.string().max(MAX_CONTENT_CHARS).optional(),
    metadata: metadataSchema.optional(),
  })
  .strict();

/**
 * Appends messages to a conversation without generating a reply (POST /history; what
 * LangChain's addMessages does): into the history and the prompt memory, in order with the
 * conversation's turns. A `system` message changes the conversation's system prompt.
 */
export const appendRequestSchema = z
  .object({
    ...requestBase,
    type: z.literal("append"),
    messages: z.array(historyMessageSchema).min(1).max(MAX_APPEND_MESSAGES),
  })
  .strict();

/** Deletes a conversation: the worker writes a tombstone to chat.memory. */
export const deleteRequestSchema = z.object({ ...requestBase, type: z.literal("delete") }).strict();

/**
 * Changes a conversation without a reply (OpenAI's Conversations API): replaces its
 * metadata, and/or deletes one of its items: the history message at `hide.index`, which the
 * gateway read (its request and role name it in the memory), is hidden from every history
 * read and dropped from the memory. The history itself is append-only: the text stays in
 * chat.history until its retention removes it.
 */
export const updateRequestSchema = z
  .object({
    ...requestBase,
    type: z.literal("update"),
    metadata: metadataSchema.optional(),
    hide: z
      .object({
        index: offsetSchema,
        request_id: requestIdSchema,
        role: z.enum(["system", "user", "assistant"]),
        content: z.string().max(MAX_CONTENT_CHARS),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((u) => u.metadata !== undefined || u.hide !== undefined, { message: "must change the metadata or delete an item", path: ["metadata"] });

/** A value on chat.requests. */
export const chatRequestSchema = z
  .discriminatedUnion("type", [turnRequestSchema, openRequestSchema, appendRequestSchema, deleteRequestSchema, updateRequestSchema])
  .superRefine((r, ctx) => (r.type === "turn" ? checkTurnContent(r, ctx) : undefined));
export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type TurnRequest = z.infer<typeof turnRequestSchema>;
export type OpenRequest = z.infer<typeof openRequestSchema>;
export type DeleteRequest = z.infer<typeof deleteRequestSchema>;
export type AppendRequest = z.infer<typeof appendRequestSchema>;
export type UpdateRequest = z.infer<typeof updateRequestSchema>;
