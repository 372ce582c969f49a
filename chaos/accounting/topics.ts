/** The topics a chaos run left, indexed for the checks: requests by id and by conversation, events by request. */
import { chatEventSchema, isTerminalEvent, type ChatEvent } from "../../contracts/records/events.js";
import { chatRequestSchema, type TurnRequest } from "../../contracts/records/requests.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import type { LoggedRecord } from "../kafka-log.js";

export interface RequestOnKafka {
  readonly request: TurnRequest;
  readonly partition: number;
  readonly offset: bigint;
}

export interface EventOnKafka {
  readonly event: ChatEvent;
  readonly partition: number;
  readonly offset: bigint;
}

export interface TopicIndex {
  /** Each conversation's turn requests in offset order (one key, one partition). */
  readonly byConversation: ReadonlyMap<string, readonly RequestOnKafka[]>;
  /** The first record of each request id. */
  readonly requestById: ReadonlyMap<string, RequestOnKafka>;
  /** Records of a request id already seen: producer retries, harmless. */
  readonly duplicateRequestRecords: number;
  /** Each request's events in offset order. */
  readonly eventsById: ReadonlyMap<string, readonly EventOnKafka[]>;
  /** A request's first terminal event on chat.events. */
  firstTerminal(requestId: string): EventOnKafka | undefined;
}

/** Reads chat.requests and chat.events; records that cannot be read become anomalies. */
export function indexTopics(
  requests: readonly LoggedRecord[],
  events: readonly LoggedRecord[],
  clientIds: ReadonlySet<string>,
  anomalies: string[],
): TopicIndex {
  const byConversation = new Map<string, RequestOnKafka[]>();
  const requestById = new Map<string, RequestOnKafka>();
  let duplicateRequestRecords = 0;
  for (const record of requests) {
    const decoded = decodeRecord(chatRequestSchema, record.value);
    if (!decoded.ok) {
      anomalies.push(`chat.requests ${record.partition}@${record.offset}: unreadable (${decoded.reason})`);
      continue;
    }
    const request = decoded.value;
    if (!clientIds.has(request.conversation_id)) continue;
    if (request.type !== "turn") {
      anomalies.push(`chat.requests ${record.partition}@${record.offset}: a ${request.type} request no client sent`);
      continue;
    }
    if (requestById.has(request.request_id)) {
      duplicateRequestRecords++; // a producer retry: harmless, the worker knows the id
      continue;
    }
    const entry = { request, partition: record.partition, offset: record.offset };
    requestById.set(request.request_id, entry);
    const list = byConversation.get(request.conversation_id) ?? [];
    list.push(entry);
    byConversation.set(request.conversation_id, list);
  }
  for (const list of byConversation.values()) list.sort((a, b) => compareOffsets(a.offset, b.offset));

  const eventsById = new Map<string, EventOnKafka[]>();
  for (const record of events) {
    const decoded = decodeRecord(chatEventSchema, record.value);
    if (!decoded.ok) {
      anomalies.push(`chat.events ${record.partition}@${record.offset}: unreadable (${decoded.reason})`);
      continue;
    }
    const list = eventsById.get(decoded.value.request_id) ?? [];
    list.push({ event: decoded.value, partition: record.partition, offset: record.offset });
    eventsById.set(decoded.value.request_id, list);
  }
  for (const list of eventsById.values()) list.sort((a, b) => compareOffsets(a.offset, b.offset));

  return {
    byConversation,
    requestById,
    duplicateRequestRecords,
    eventsById,
    firstTerminal: (requestId) => eventsById.get(requestId)?.find((e) => isTerminalEvent(e.event)),
  };
}

export function compareOffsets(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * What a conversation should remember, from the topics alone: for each of its requests on
 * chat.requests, in order, "user:<request id>:<content>" then "assistant:<request id>:<reply
 * of its first terminal event>" (the memory keeps an empty reply; the history does not).
 */
export function appliedMessages(index: TopicIndex, conversationId: string, options: { emptyReplies: boolean }): string[] {
  return (index.byConversation.get(conversationId) ?? []).flatMap(({ request }) => {
    const t = index.firstTerminal(request.request_id)?.event;
    const reply = t?.type === "final" ? t.reply : "";
    return [`user:${request.request_id}:${request.content}`, ...(reply || options.emptyReplies ? [`assistant:${request.request_id}:${reply}`] : [])];
  });
}
