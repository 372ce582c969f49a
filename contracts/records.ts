/**
 * Record schemas of every topic, with runtime validation. Values are UTF-8 JSON.
 * Field names are snake_case because they are also the HTTP API's names.
 * `v` is the schema version: readers reject versions they do not know.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { MAX_APPEND_MESSAGES, MAX_CHOICES, MAX_CONTENT_CHARS, MAX_CONTEXT_MESSAGES, MAX_TOOLS } from "./limits.js";
import { generationParamsSchema, toolCallSchema } from "./generation-params.js";

export * from "./limits.js";
export * from "./generation-params.js";

export const SCHEMA_VERSION = 1;

/** Conversation ids are partition keys and URL path segments: keep them printable and short. */
export const conversationIdSchema = z
  .string()
  .min(1, "must not be empty")
  .max(128, "must be at most 128 characters")
  .regex(/^[A-Za-z0-9._:-]+$/, "may contain only letters, digits, '.', '_', ':' and '-'");

export const requestIdSchema = z
  .string()
  .min(1, "must not be empty")
  .max(128, "must be at most 128 characters")
  .regex(/^[A-Za-z0-9._:-]+$/, "may contain only letters, digits, '.', '_', ':' and '-'");

/** Who a conversation belongs to: the API key's tenant ("local" when auth is off). */
export const tenantSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/, "may contain only letters, digits, '.', '_' and '-'");

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
   * producer's partitioner by conversation id.
   */
  events_partition: z.number().int().nonnegative().optional(),
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
  })
  .strict();

function checkTurnContent(t: z.infer<typeof turnRequestSchema>, ctx: z.RefinementCtx): void {
  if (t.tool_results !== undefined && t.context !== undefined)
    ctx.addIssue({
      code: "custom",
      path: ["tool_results"],
      message: "belongs to turns with memory; a stateless turn carries tool results in its context",
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
  })
  .strict();

/** A message as the history keeps it: `system` is a change of system prompt. */
export const historyMessageSchema = z
  .object({
    role: z.enum(["system", "user", "assistant"]),
    content: z.string().max(MAX_CONTENT_CHARS),
  })
  .strict();
export type HistoryMessage = z.infer<typeof historyMessageSchema>;

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
 * chat.requests: everything that changes a conversation goes through this topic, so the
 * owning worker applies it in order with the conversation's turns. Key: conversation_id.
 */
export const chatRequestSchema = z
  .discriminatedUnion("type", [turnRequestSchema, openRequestSchema, appendRequestSchema, deleteRequestSchema])
  .superRefine((r, ctx) => (r.type === "turn" ? checkTurnContent(r, ctx) : undefined));
export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type TurnRequest = z.infer<typeof turnRequestSchema>;
export type OpenRequest = z.infer<typeof openRequestSchema>;
export type DeleteRequest = z.infer<typeof deleteRequestSchema>;
export type AppendRequest = z.infer<typeof appendRequestSchema>;

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
 * with different content (see RELIABILITY in README). The worker sends it with the
 * attempt's first delta (one write), or by itself after DELTA_FLUSH_MS with none.
 */
export const startEventSchema = z.object({
  ...eventBase,
  type: z.literal("start"),
  worker_id: z.string(),
});
/** The choice an event belongs to, for a request with n > 1; absent means 0. */
const choiceIndex = z
  .number()
  .int()
  .min(0)
  .max(MAX_CHOICES - 1)
  .optional();
export const deltaEventSchema = z.object({
  ...eventBase,
  type: z.literal("delta"),
  text: z.string().min(1),
  /** Which choice the text belongs to, for a request with n > 1; absent means 0. */
  choice: choiceIndex,
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

/** chat.events: what a worker says about one request. Key: conversation_id. */
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

/** chat.control: instructions every worker reads. Key: request_id. */
export const controlRecordSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    type: z.literal("cancel"),
    request_id: requestIdSchema,
    tenant: tenantSchema,
    reason: z.string().max(500).optional(),
    at: z.number().int().nonnegative(),
  })
  .strict();
export type ControlRecord = z.infer<typeof controlRecordSchema>;

/** How many applied request ids a conversation remembers (with where their terminal events are). */
export const APPLIED_WINDOW = 32;

export const memoryMessageSchema = z
  .object({
    /** "tool": a tool's result, answering one of the tool calls of the assistant message before it. */
    role: z.enum(["user", "assistant", "tool"]),
    content: z.string(),
    /** The calls an assistant message made (OpenAI route with tools). */
    tool_calls: z.array(toolCallSchema).optional(),
    /** The call a tool message answers. */
    tool_call_id: z.string().min(1).max(256).optional(),
    /** The request that added it; absent for the greeting. */
    request_id: requestIdSchema.optional(),
    at: z.number().int().nonnegative(),
  })
  .strict();
export type MemoryMessage = z.infer<typeof memoryMessageSchema>;

const offsetSchema = z.number().int().nonnegative();

/**
 * Where a conversation's history chain ends (see HistoryRecord): its partition of
 * chat.history, how many records and messages it holds, and `fingers[k]`, the offset of
 * the newest record whose seq is a multiple of 2^k (fingers[0] is the newest record).
 * `epoch` names the chain: a conversation deleted and opened again starts a new one.
 */
export const historyHeadSchema = z
  .object({
    epoch: z.string().min(1).max(32),
    partition: z.number().int().nonnegative(),
    records: z.number().int().positive(),
    messages: z.number().int().nonnegative(),
    fingers: z.array(offsetSchema).min(1).max(64),
  })
  .strict();
export type HistoryHead = z.infer<typeof historyHeadSchema>;

/**
 * chat.history: the messages one applied request added to a conversation, appended once.
 * Key: conversation_id. Kafka has no index by key, so records link themselves: `links[k]`
 * is the offset (same partition) of the newest earlier record of this chain whose seq is a
 * multiple of 2^k, a skip list that finds any record from the head (in the memory record)
 * in O(log n) hops. A record that no memory record's chain reaches (its worker died before
 * writing memory) is never read: that is what keeps the history exactly-once.
 */
export const historyRecordSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    type: z.literal("history"),
    conversation_id: conversationIdSchema,
    tenant: tenantSchema,
    epoch: z.string().min(1).max(32),
    /** This record's 0-based position in the chain. */
    seq: z.number().int().nonnegative(),
    /** The 0-based position in the conversation of this record's first message. */
    index: z.number().int().nonnegative(),
    request_id: requestIdSchema,
    /** Milliseconds since the epoch when the worker applied the request (non-decreasing along the chain). */
    at: z.number().int().nonnegative(),
    messages: z.array(historyMessageSchema).min(1),
    links: z.array(offsetSchema).max(64),
  })
  .strict();
export type HistoryRecord = z.infer<typeof historyRecordSchema>;

/**
 * A final event as the newest applied entry keeps it: `reply` (and any `choices[i].reply`)
 * left out when it is the assistant message of the history record the state's head
 * (history.fingers[0]) points at, which holds it already. Filled in from there when sent.
 */
export const finalSummarySchema = finalEventSchema.extend({
  reply: z.string().optional(),
  choices: z.array(choiceSchema.extend({ reply: z.string().optional() })).optional(),
});
export type FinalSummary = z.infer<typeof finalSummarySchema>;

/**
 * One request a conversation applied, and where its terminal event is on chat.events:
 * `events.offset` is that event's offset when `exact`, else the offset of the first event
 * its last attempt wrote, which its terminal event follows (a lower bound). Only the newest
 * entry keeps its terminal event (`final`, a summary: see finalSummarySchema; an error
 * whole), so that a final the worker never got to send can still be sent. Nothing here
 * grows with the number of turns or the length of a reply.
 */
export const appliedEntrySchema = z
  .object({
    request_id: requestIdSchema,
    events: z.object({ partition: z.number().int().nonnegative(), offset: offsetSchema }).strict(),
    exact: z.literal(true).optional(),
    final: z.union([finalSummarySchema, errorEventSchema]).optional(),
  })
  .strict();

/** An entry as records written before bounded entries hold it: the whole terminal event. Still honoured; converted on the next write. */
export const legacyAppliedEntrySchema = z.object({ request_id: requestIdSchema, final: z.union([finalEventSchema, errorEventSchema]) });

export const anyAppliedEntrySchema = z.union([appliedEntrySchema, legacyAppliedEntrySchema]);
export type AppliedEntry = z.infer<typeof appliedEntrySchema>;
export type LegacyAppliedEntry = z.infer<typeof legacyAppliedEntrySchema>;
export type AnyAppliedEntry = z.infer<typeof anyAppliedEntrySchema>;

/**
 * A request applied before the newest, compactly: `[digest, partition, offset, exact]`, the
 * digest of its request id (requestIdDigest), and where its terminal event is on chat.events,
 * as in an AppliedEntry (`exact` 1: the terminal event's own offset; 0: a lower bound). At
 * turn 40 of a chat these were most of a record as objects with whole ids (about 77 bytes
 * each against 27); a replay compares digests (72 bits: a collision among a window of 32 is
 * some 10^-20) and reads the terminal event, whose own request id is checked, back from there.
 */
export const pastAppliedEntrySchema = z.tuple([z.string().length(12), z.number().int().nonnegative(), offsetSchema, z.union([z.literal(0), z.literal(1)])]);
export type PastAppliedEntry = z.infer<typeof pastAppliedEntrySchema>;

/** The digest a PastAppliedEntry keeps of a request id: the first 72 bits of its SHA-256, base64url. */
export function requestIdDigest(requestId: string): string {
  return createHash("sha256").update(requestId, "utf8").digest("base64url").slice(0, 12);
}

/**
 * chat.memory: a conversation's state, the whole of it in each record (the topic is
 * compacted, so the latest record per key is the state). Key: conversation_id; a null
 * value (tombstone) deletes the conversation.
 */
export const conversationStateSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    type: z.literal("conversation"),
    conversation_id: conversationIdSchema,
    tenant: tenantSchema,
    system: z.string().optional(),
    /** Oldest first, trimmed to the token budget (oldest whole messages dropped first). */
    messages: z.array(memoryMessageSchema),
    /**
     * The last APPLIED_WINDOW requests applied to this state, and where each one's terminal
     * event is: a replayed request found here is re-announced, never run again. Oldest
     * first; the newest an AppliedEntry, those before it PastAppliedEntry tuples (records
     * written before bounded entries hold legacy entries, converted on the next write).
     */
    applied: z.array(z.union([anyAppliedEntrySchema, pastAppliedEntrySchema])),
    /** The end of the conversation's chain in chat.history; absent until it has a message. */
    history: historyHeadSchema.optional(),
    /** Requests applied since the conversation was opened; grows by one per turn. */
    turns: z.number().int().nonnegative(),
    created_at: z.number().int().nonnegative(),
    updated_at: z.number().int().nonnegative(),
  })
  .strict();
export type ConversationState = z.infer<typeof conversationStateSchema>;

/**
 * chat.memory, key `#handover:<request_id>`: a reply that a worker giving its partition up
 * (a scale event, a SIGTERM) stopped at a token boundary once its drain bound passed. The
 * partition's next owner continues it under the same attempt, its events numbered on from
 * `next_seq`, so the client sees one unbroken reply; it then writes a tombstone here.
 * Conversation ids cannot contain '#', so these keys never collide with conversations.
 */
export const HANDOVER_KEY_PREFIX = "#handover:";
export const handoverSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    type: z.literal("handover"),
    request_id: requestIdSchema,
    conversation_id: conversationIdSchema,
    tenant: tenantSchema,
    attempt: z.string(),
    /** The seq the continuation's first event takes. */
    next_seq: z.number().int().positive(),
    /** The reply so far, every character of it already sent as deltas. */
    reply: z.string(),
    usage: usageSchema,
    time_to_first_token_ms: z.number().nonnegative(),
    generation_ms: z.number().nonnegative(),
    /** When the turn started on its first worker (ms since the epoch), for queue_wait_ms. */
    started_at: z.number().int().nonnegative(),
    /** The worker that handed over. */
    worker_id: z.string(),
  })
  .strict();
export type Handover = z.infer<typeof handoverSchema>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * A decode reason fit for a log line: without a quoted value (", received 'x'"), which may be
 * a client's text. zod 4's messages name the received type, never the value (zod 3's enum
 * and literal messages quoted it), so this is a guard for messages of that form. The dead
 * letter keeps the reason whole.
 */
export function loggableReason(reason: string): string {
  return reason.replace(/, received '[^']*'/g, "");
}

/**
 * zod's own messages, except that a missing field says so: zod 4 reports one as "Invalid
 * input: expected string, received undefined". Give it to every parse whose issues are
 * shown to someone (`schema.safeParse(value, { error: requiredMessage })`); a schema's own
 * message, where it has one, still comes first.
 */
export const requiredMessage: z.core.$ZodErrorMap = (issue) =>
  issue.input === undefined && (issue.code === "invalid_type" || issue.code === "invalid_value") ? "is required" : undefined;

/** Formats zod issues as "path: message; path: message". */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.map(String).join(".") : "(root)"}: ${i.message}`).join("; ");
}

/**
 * Decodes a record value (bytes) as UTF-8 JSON and validates it. Never throws: a record
 * that cannot be used comes back with a reason fit for a dead-letter header.
 */
export function decodeRecord<T>(schema: z.ZodType<T>, bytes: Buffer | null): ParseResult<T> {
  if (bytes === null) return { ok: false, reason: "record has no value" };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, reason: "value is not valid UTF-8" };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // Some JSON.parse messages quote the start of the input ("Unexpected token 'p', "plain
    // text"... is not valid JSON"), and reasons are logged: say where, never what.
    const at = /at position (\d+)/.exec((err as Error).message)?.[1];
    return { ok: false, reason: at === undefined ? "value is not JSON" : `value is not JSON (error at character ${at})` };
  }
  const parsed = schema.safeParse(json, { error: requiredMessage });
  if (!parsed.success) return { ok: false, reason: `schema: ${describeIssues(parsed.error)}` };
  return { ok: true, value: parsed.data };
}

export function encodeRecord(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}
