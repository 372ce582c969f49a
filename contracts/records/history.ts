/**
 * chat.history: every message of a conversation, once, in the order it was applied; the
 * gateways read it for GET /v1/conversations/{id}/messages. Kafka has no index by key, so
 * the records link themselves into a skip list (../history-chain.ts) whose end the
 * conversation's memory record holds (HistoryHead). Key: the conversation key
 * (../conversation-key.ts).
 */
import { z } from "zod";
import { MAX_CONTENT_CHARS } from "../limits.js";
import { SCHEMA_VERSION, conversationIdSchema, offsetSchema, requestIdSchema, tenantSchema } from "./fields.js";

/** A message as the history keeps it: `system` is a change of system prompt. */
export const historyMessageSchema = z
  .object({
    role: z.enum(["system", "user", "assistant"]),
    content: z.string().max(MAX_CONTENT_CHARS),
  })
  .strict();
export type HistoryMessage = z.infer<typeof historyMessageSchema>;

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
 * A value on chat.history: the messages one applied request added to a conversation,
 * appended once. `links[k]` is the offset (same partition) of the newest earlier record of
 * this chain whose seq is a multiple of 2^k, a skip list that finds any record from the head
 * (in the memory record) in O(log n) hops. A record that no memory record's chain reaches
 * (its worker died before writing memory) is never read: that is what keeps the history
 * exactly-once.
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
