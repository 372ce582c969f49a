/**
 * History: the chat.history chain that each conversation's latest chat.memory state points
 * at holds each request applied to it, once, in chat.requests order (the user message,
 * then the reply of its final event). Records no chain reaches (a worker died between its
 * history and memory writes) are allowed: reads never see them.
 */
import { isDeepStrictEqual } from "node:util";
import { parseConversationKey } from "../../contracts/conversation-key.js";
import { conversationStateSchema } from "../../contracts/records/memory.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import { historyRecordSchema, type HistoryRecord } from "../../contracts/records/history.js";
import type { ClientConversation } from "../client.js";
import type { LoggedRecord } from "../kafka-log.js";
import { appliedMessages, type TopicIndex } from "./topics.js";

export function checkHistory(
  conversations: readonly ClientConversation[],
  memory: readonly LoggedRecord[],
  history: readonly LoggedRecord[],
  index: TopicIndex,
  anomalies: string[],
): { historyChecked: number; historyMismatches: number } {
  const heads = new Map<string, ReturnType<typeof headOf>>();
  for (const record of memory) {
    const id = record.key === null ? undefined : parseConversationKey(record.key)?.conversation_id;
    if (id !== undefined) heads.set(id, headOf(record));
  }
  const byOffset = new Map<string, HistoryRecord>();
  for (const record of history) {
    const decoded = decodeRecord(historyRecordSchema, record.value);
    if (!decoded.ok) anomalies.push(`chat.history ${record.partition}@${record.offset}: unreadable (${decoded.reason})`);
    else byOffset.set(`${record.partition}@${record.offset}`, decoded.value);
  }
  let historyChecked = 0;
  let historyMismatches = 0;
  for (const conversation of conversations) {
    const onKafka = index.byConversation.get(conversation.id) ?? [];
    if (onKafka.length === 0) continue;
    historyChecked++;
    const expected = appliedMessages(index, conversation.id, { emptyReplies: false });
    const walked = walkChain(conversation.id, heads.get(conversation.id) ?? null, byOffset);
    const problem =
      typeof walked === "string"
        ? walked
        : !isDeepStrictEqual(walked, expected)
          ? `chain ${JSON.stringify(walked)} but chat.requests/chat.events say ${JSON.stringify(expected)}`
          : null;
    if (problem) {
      historyMismatches++;
      anomalies.push(`${conversation.id} history: ${problem}`);
    }
  }
  return { historyChecked, historyMismatches };
}

function headOf(record: LoggedRecord) {
  if (record.value === null) return null;
  const decoded = decodeRecord(conversationStateSchema, record.value);
  return decoded.ok ? (decoded.value.history ?? null) : null;
}

/** The chain's messages oldest first, as "role:request_id:content", or what is wrong with it. */
function walkChain(conversationId: string, head: ReturnType<typeof headOf>, byOffset: ReadonlyMap<string, HistoryRecord>): string[] | string {
  if (!head) return "no history head in the latest chat.memory state";
  const records: HistoryRecord[] = [];
  let offset: string | number | undefined = head.fingers[0];
  for (let seq = head.records - 1; seq >= 0; seq--) {
    const record = byOffset.get(`${head.partition}@${offset}`);
    if (!record) return `record ${seq} (offset ${offset}) is not on chat.history`;
    if (record.conversation_id !== conversationId || record.epoch !== head.epoch || record.seq !== seq)
      return `offset ${offset} holds ${record.conversation_id} epoch ${record.epoch} seq ${record.seq}, not seq ${seq} of this chain`;
    records.unshift(record);
    offset = record.links[0];
  }
  const messages = records.flatMap((r) => r.messages.map((m) => `${m.role}:${r.request_id}:${m.content}`));
  if (messages.length !== head.messages) return `the head counts ${head.messages} messages, the chain holds ${messages.length}`;
  // The chat's system prompt is set by the cluster, not by a turn: only user and assistant messages are compared.
  return messages.filter((m) => !m.startsWith("system:"));
}
