/**
 * chat.memory: a conversation's state, the whole of it in each record, so the topic is
 * compacted and the latest record per key is the state. The worker that owns a partition
 * of chat.requests owns the same partition here (co-partitioned): it restores the
 * partition's states on assignment and writes one per applied request. The same topic
 * carries handovers, a reply a worker giving its partition up stopped mid-way, under keys
 * no conversation can have.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { toolCallSchema } from "../generation-params.js";
import { choiceSchema, errorEventSchema, finalEventSchema, usageSchema } from "./events.js";
import { MAX_HIDDEN_ITEMS } from "../limits.js";
import { SCHEMA_VERSION, conversationIdSchema, metadataSchema, offsetSchema, requestIdSchema, tenantSchema } from "./fields.js";
import { historyHeadSchema } from "./history.js";
import { poolNameSchema } from "../pools.js";

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
export type AppliedEntry = z.infer<typeof appliedEntrySchema>;

/**
 * A request applied before the newest, compactly: `[digest, partition, offset, exact]`, the
 * digest of its request id (requestIdDigest), and where its terminal event is on chat.events,
 * as in an AppliedEntry (`exact` 1: the terminal event's own offset; 0: a lower bound). A
 * replay compares digests (72 bits: a collision among a window of 32 is some 10^-20) and
 * reads the terminal event, whose own request id is checked, back from there.
 */
export const pastAppliedEntrySchema = z.tuple([z.string().length(12), z.number().int().nonnegative(), offsetSchema, z.union([z.literal(0), z.literal(1)])]);
export type PastAppliedEntry = z.infer<typeof pastAppliedEntrySchema>;

/** The digest a PastAppliedEntry keeps of a request id: the first 72 bits of its SHA-256, base64url. */
export function requestIdDigest(requestId: string): string {
  return createHash("sha256").update(requestId, "utf8").digest("base64url").slice(0, 12);
}

/**
 * A value on chat.memory under a conversation key (../conversation-key.ts): the
 * conversation's whole state. A null value (tombstone) deletes the conversation.
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
     * first; the newest an AppliedEntry, those before it PastAppliedEntry tuples.
     */
    applied: z.array(z.union([appliedEntrySchema, pastAppliedEntrySchema])),
    /** The end of the conversation's chain in chat.history; absent until it has a message. */
    history: historyHeadSchema.optional(),
    /** The client's key-value pairs (OpenAI's Conversations API). */
    metadata: metadataSchema.optional(),
    /** History indexes of deleted items, ascending: every history read leaves them out. */
    hidden: z.array(offsetSchema).max(MAX_HIDDEN_ITEMS).optional(),
    /** Requests applied since the conversation was opened; grows by one per turn. */
    turns: z.number().int().nonnegative(),
    /**
     * The conversation moved to this pool (a turn named one of its models, contracts/pools.ts):
     * the state here is what it was when it left, and a request that still comes here is
     * passed on to that pool (worker/move.ts).
     */
    moved_to: poolNameSchema.optional(),
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
 * Conversation keys cannot start with '#', so these keys never collide with conversations.
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

/**
 * The header on every chat.memory record a worker writes: the offset the worker expects
 * the record to land at, the partition's end as that worker, its owner and only writer,
 * knows it. The broker gives each offset to one record, so only one writer's record can
 * land where it expected: a record that landed elsewhere was written by a worker that was
 * no longer the partition's only writer (one replaced while it was frozen, that woke and
 * wrote), and every reader skips it. Records without the header (restore fences) are taken
 * as they are.
 */
export const EXPECTED_OFFSET_HEADER = "kafka-llm-expected-offset";

/** Whether a chat.memory record counts: it carries no expectation, or it landed where its writer expected. */
export function landedAsExpected(record: { readonly offset: number; readonly headers?: Readonly<Record<string, Buffer | string>> }): boolean {
  const expected = record.headers?.[EXPECTED_OFFSET_HEADER];
  return expected === undefined || expected.toString() === String(record.offset);
}

/**
 * chat.memory, key `#attempts:<offset>`: how many times workers started the chat.requests
 * record at that offset of the partition with the same number (the topics are
 * co-partitioned), written before an attempt that may be a redelivery runs, so a request
 * that kills its worker every time is given up after MAX_REQUEST_ATTEMPTS
 * (worker/attempts.ts). A tombstone once the request is done.
 */
export const ATTEMPTS_KEY_PREFIX = "#attempts:";
export const attemptsMarkerSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    type: z.literal("attempts"),
    attempts: z.number().int().positive(),
  })
  .strict();
export type AttemptsMarker = z.infer<typeof attemptsMarkerSchema>;
