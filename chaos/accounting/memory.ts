/**
 * Memory: each conversation's latest chat.memory state holds each request applied to it,
 * once, in chat.requests order (the user message, then the reply of its final event).
 */
import { isDeepStrictEqual } from "node:util";
import { parseConversationKey } from "../../contracts/conversation-key.js";
import { conversationStateSchema, type ConversationState } from "../../contracts/records/memory.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import type { ClientConversation } from "../client.js";
import type { LoggedRecord } from "../kafka-log.js";
import { appliedMessages, type TopicIndex } from "./topics.js";

export function checkMemory(
  conversations: readonly ClientConversation[],
  memory: readonly LoggedRecord[],
  clientIds: ReadonlySet<string>,
  index: TopicIndex,
  anomalies: string[],
): { memoryChecked: number; memoryMismatches: number } {
  const states = latestStates(memory, clientIds, anomalies);
  let memoryChecked = 0;
  let memoryMismatches = 0;
  for (const conversation of conversations) {
    const onKafka = index.byConversation.get(conversation.id) ?? [];
    if (onKafka.length === 0) continue;
    memoryChecked++;
    const expected = appliedMessages(index, conversation.id, { emptyReplies: true });
    const state = states.get(conversation.id);
    const actual = state ? state.messages.map((m) => `${m.role}:${m.request_id ?? ""}:${m.content}`) : [];
    const problem = !state
      ? `no state on chat.memory`
      : !isDeepStrictEqual(actual, expected)
        ? `messages ${JSON.stringify(actual)} but chat.requests/chat.events say ${JSON.stringify(expected)}`
        : state.turns !== onKafka.length
          ? `turns = ${state.turns}, ${onKafka.length} requests applied`
          : null;
    if (problem) {
      memoryMismatches++;
      anomalies.push(`${conversation.id} memory: ${problem}`);
    }
  }
  return { memoryChecked, memoryMismatches };
}

/** The latest state per client conversation id (null: a tombstone); keys that name no conversation ("#…") are the workers' own. */
function latestStates(memory: readonly LoggedRecord[], clientIds: ReadonlySet<string>, anomalies: string[]): Map<string, ConversationState | null> {
  const states = new Map<string, ConversationState | null>();
  for (const record of memory) {
    const id = record.key === null ? undefined : parseConversationKey(record.key)?.conversation_id;
    if (id === undefined || !clientIds.has(id)) continue;
    if (record.value === null) {
      states.set(id, null);
      continue;
    }
    const decoded = decodeRecord(conversationStateSchema, record.value);
    if (!decoded.ok) anomalies.push(`chat.memory ${record.partition}@${record.offset}: unreadable (${decoded.reason})`);
    else states.set(id, decoded.value);
  }
  return states;
}
