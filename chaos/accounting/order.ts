/**
 * Order: each conversation's requests on chat.requests in the order its client sent them,
 * and no event of a request before the final of the request before it.
 */
import { isDeepStrictEqual } from "node:util";
import type { ClientConversation } from "../client.js";
import { compareOffsets, type EventOnKafka, type TopicIndex } from "./topics.js";

/** The number of ordering faults (a conversation can have several). */
export function countOutOfOrder(
  conversations: readonly ClientConversation[],
  acceptedIds: ReadonlySet<string>,
  index: TopicIndex,
  anomalies: string[],
): number {
  let outOfOrder = 0;
  for (const conversation of conversations) {
    const onKafka = index.byConversation.get(conversation.id) ?? [];
    const clientOrder = conversation.turns.map((t) => t.requestId).filter((id): id is string => id !== null && index.requestById.has(id));
    const kafkaOrder = onKafka.map((e) => e.request.request_id).filter((id) => acceptedIds.has(id));
    if (!isDeepStrictEqual(clientOrder, kafkaOrder)) {
      outOfOrder++;
      anomalies.push(`${conversation.id}: chat.requests order ${kafkaOrder.join(",")} differs from the client's ${clientOrder.join(",")}`);
    }
    for (let i = 1; i < onKafka.length; i++) {
      const before = index.firstTerminal(onKafka[i - 1]!.request.request_id);
      const nextEvents = index.eventsById.get(onKafka[i]!.request.request_id) ?? [];
      const earliest = nextEvents[0];
      if (earliest && (!before || precedes(earliest, before))) {
        outOfOrder++;
        anomalies.push(`${conversation.id}: request ${onKafka[i]!.request.request_id} has an event before the final of the request before it`);
      }
    }
  }
  return outOfOrder;
}

/**
 * Whether `a` came before `b`: by offset on one partition; across partitions (the requests
 * were accepted by different gateway replicas, each naming its own events partition) by
 * when the worker produced them, since no offset orders two partitions.
 */
function precedes(a: EventOnKafka, b: EventOnKafka): boolean {
  return a.partition === b.partition ? compareOffsets(a.offset, b.offset) < 0 : a.event.at < b.event.at;
}
