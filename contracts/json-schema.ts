/**
 * JSON Schemas (draft-07, which AsyncAPI's schema format extends) of every record on the bus, generated from the zod schemas
 * of ./records/, for services that produce requests or read events without this code.
 * Committed under contracts/schema/ by scripts/interfaces.ts; a unit test compares.
 */
import { z } from "zod";
import { chatEventSchema } from "./records/events.js";
import { chatRequestSchema } from "./records/requests.js";
import { controlRecordSchema } from "./records/control.js";
import { conversationStateSchema, handoverSchema } from "./records/memory.js";
import { historyRecordSchema } from "./records/history.js";
import type { TopicRole } from "./topics.js";

export interface RecordSchemaSpec {
  /** File name under contracts/schema/ (and the AsyncAPI component name). */
  readonly file: string;
  readonly title: string;
  readonly topic: TopicRole;
  readonly schema: z.ZodType;
  readonly description: string;
}

/** The value schema of each topic; chat.requests.dlq carries the original bytes, so it has none. */
export const RECORD_SCHEMAS: readonly RecordSchemaSpec[] = [
  {
    file: "chat-request.schema.json",
    title: "ChatRequest",
    topic: "requests",
    schema: chatRequestSchema,
    description:
      "A value on chat.requests: a turn, an open, an append (messages without a reply) or a delete, keyed by the conversation key (tenant/conversation_id).",
  },
  {
    file: "chat-event.schema.json",
    title: "ChatEvent",
    topic: "events",
    schema: chatEventSchema,
    description: "A value on chat.events: start, delta, final or error of one request, keyed by the conversation key (tenant/conversation_id).",
  },
  {
    file: "control-record.schema.json",
    title: "ControlRecord",
    topic: "control",
    schema: controlRecordSchema,
    description: "A value on chat.control (a cancel), keyed by request_id.",
  },
  {
    file: "conversation-state.schema.json",
    title: "ConversationState",
    topic: "memory",
    schema: conversationStateSchema,
    description:
      "A value on chat.memory (compacted): a conversation's whole state, keyed by the conversation key (tenant/conversation_id); a null value deletes it.",
  },
  {
    file: "handover.schema.json",
    title: "Handover",
    topic: "memory",
    schema: handoverSchema,
    description:
      "A value on chat.memory under the key '#handover:<request_id>': a reply a worker stopped at a token boundary while giving its partition up; the partition's next owner continues it under the same attempt, then writes a tombstone.",
  },
  {
    file: "history-record.schema.json",
    title: "HistoryRecord",
    topic: "history",
    schema: historyRecordSchema,
    description:
      "A value on chat.history: the messages one applied request added to a conversation, keyed by the conversation key (tenant/conversation_id). links[k] is the offset (same partition) of the newest earlier record of the chain whose seq is a multiple of 2^k; the conversation's memory record holds the head. Only records reachable from the head belong to the conversation.",
  },
];

/** Schema ids: names, not addresses (the files are in the repository, not on a server). */
export const SCHEMA_ID_PREFIX = "urn:kafka-llm:schema:";

/**
 * The draft-07 JSON Schema of a zod schema, every part inline. It describes what a reader
 * of the topic accepts (the schema's input): a part that transforms a value (a grammar
 * schema, normalized on decode) is described by what it takes.
 */
export function draft07Schema(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: "draft-07", io: "input", reused: "inline" });
}

/** The JSON Schema document of one record type. */
export function recordJsonSchema(spec: RecordSchemaSpec): Record<string, unknown> {
  const { $schema, ...rest } = draft07Schema(spec.schema);
  return { $schema, $id: SCHEMA_ID_PREFIX + spec.title, title: spec.title, description: spec.description, ...rest };
}
