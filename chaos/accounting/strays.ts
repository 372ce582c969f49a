/**
 * Requests on chat.requests that no client got a 202 for: ghosts (a try that got a 503 or
 * no answer reached Kafka anyway: the turn is applied twice) and strangers (no try matches).
 */
import { parseTurnContent, type ClientTurn } from "../client.js";
import type { TopicIndex } from "./topics.js";

export function findStrays(
  clientTurns: ReadonlyMap<string, ClientTurn>,
  acceptedIds: ReadonlySet<string>,
  idempotencyKeys: boolean,
  index: TopicIndex,
  anomalies: string[],
): { ghosts: number; strangers: number } {
  let ghosts = 0;
  let strangers = 0;
  for (const [id, entry] of index.requestById) {
    if (acceptedIds.has(id)) continue;
    const parsed = parseTurnContent(entry.request.content);
    const turn = parsed && parsed.conversationId === entry.request.conversation_id ? clientTurns.get(`${parsed.conversationId} ${parsed.n}`) : undefined;
    const unanswered = turn?.tries.filter((t) => t.outcome === "unavailable" || t.outcome === "timeout" || t.outcome === "network") ?? [];
    if (turn && unanswered.length > 0) {
      ghosts++;
      anomalies.push(
        `${idempotencyKeys ? "" : "note: "}${entry.request.conversation_id} turn ${turn.n}: a try that got ${unanswered.map((t) => t.outcome).join("/")} reached chat.requests anyway ` +
          `as request ${id} ("${entry.request.content}"), beside the accepted ${turn.requestId}: the turn is applied twice` +
          (idempotencyKeys ? "" : " (no Idempotency-Key was sent)"),
      );
    } else {
      strangers++;
      anomalies.push(`${entry.request.conversation_id}: request ${id} ("${entry.request.content}") matches no client try`);
    }
  }
  return { ghosts, strangers };
}
