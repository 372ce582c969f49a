/**
 * The accounting at the end of a chaos run: what the clients did and saw, checked against
 * what is on the topics (chat.requests, chat.events, chat.memory, read straight from
 * Kafka). Pure: it takes records and client logs, so tests can feed it made-up failures.
 *
 * Definitions (per turn a client got a 202 for, i.e. a request id):
 * - answered once: chat.events holds one terminal event for it (identical repeats count
 *   once: a replay re-announces the stored final unchanged), a final, and the client
 *   received that same final.
 * - lost: no terminal event on chat.events, or the request is not on chat.requests.
 * - answered twice: two terminal events that differ (two different answers).
 * - out of order: the conversation's requests are not on chat.requests in the order the
 *   client sent them, or an event of a request appears before the final of the one
 *   before it (each conversation is one key, so one partition: offsets order it).
 * - memory: the conversation's latest chat.memory state holds each request applied to it,
 *   once, in chat.requests order (user message, then the reply of its final event).
 * - recovery: after each fault, for every chat.requests partition with a request waiting
 *   (accepted before the fault, final after it), the time from the fault to that
 *   partition's next final event; the longest recovery is the largest over all faults
 *   and partitions. Times are the workers' event timestamps (same host clock).
 */
import { isDeepStrictEqual } from "node:util";
import {
  chatEventSchema,
  chatRequestSchema,
  conversationStateSchema,
  decodeRecord,
  isTerminalEvent,
  type ChatEvent,
  type ConversationState,
  type ErrorEvent,
  type FinalEvent,
  type TurnRequest,
} from "../contracts/records.js";
import { parseTurnContent, type ClientConversation, type ClientTurn } from "./client.js";
import type { FaultRecord } from "./faults.js";
import type { LoggedRecord } from "./kafka-log.js";

export interface AccountingInput {
  readonly conversations: readonly ClientConversation[];
  readonly turnsPerConversation: number;
  /** The clients sent Idempotency-Keys: then a turn on chat.requests under a second request id is a failure. */
  readonly idempotencyKeys: boolean;
  readonly faults: readonly FaultRecord[];
  readonly requests: readonly LoggedRecord[];
  readonly events: readonly LoggedRecord[];
  readonly memory: readonly LoggedRecord[];
}

export interface PartitionRecovery {
  readonly partition: number;
  /** null: the partition never delivered another final. */
  readonly ms: number | null;
}

export interface FaultRecovery {
  readonly fault: FaultRecord;
  readonly partitions: PartitionRecovery[];
  /** Longest over the partitions that had work waiting; null when none had any. */
  readonly longestMs: number | null;
}

export interface Accounting {
  readonly planned: number;
  /** Turns the gateway accepted (202). */
  readonly sent: number;
  /** Turns never sent: the client gave up on 503s, or stopped because an earlier turn never ended. */
  readonly notSent: number;
  readonly answeredOnce: number;
  readonly lost: number;
  readonly answeredTwice: number;
  readonly outOfOrder: number;
  /** Terminal event was an error (or stop_reason error/cancelled): nothing in a chaos run should fail. */
  readonly failed: number;
  /** On chat.events but not received by the client, or received differently. */
  readonly undelivered: number;
  readonly memoryChecked: number;
  readonly memoryMismatches: number;
  readonly longestRecoveryMs: number | null;
  readonly recoveries: FaultRecovery[];
  /**
   * Requests on chat.requests that no client got a 202 for, copies of a turn whose POST got
   * 503 or no answer: the turn is applied twice. Expected without idempotency keys (the
   * gateway's producer keeps retrying after it answered 503); a failure with them.
   */
  readonly ghosts: number;
  /** Requests on chat.requests that match no try of any client. */
  readonly strangers: number;
  readonly postRetries: number;
  readonly reruns: number;
  readonly repeatedTerminals: number;
  readonly duplicateRequestRecords: number;
  readonly sseResumes: number;
  readonly sseDrops: number;
  readonly discardedAttempts: number;
  /** The client's text of the final's attempt is not the start of the final's reply: the stream said something else. */
  readonly textMismatches: number;
  /**
   * The client's text of the final's attempt is a strict start of the reply: deltas were
   * never sent (the worker's event sends failed, the broker was away) and the final was
   * re-announced after a retry. Clients take the final's reply as the answer, so this is
   * counted, not failed.
   */
  readonly deltaGaps: number;
  readonly longestTurnMs: number | null;
  /** Every problem found, one line each; lines starting "note:" are counted, not failed. */
  readonly anomalies: string[];
  readonly ok: boolean;
}

interface RequestOnKafka {
  readonly request: TurnRequest;
  readonly partition: number;
  readonly offset: bigint;
}

interface EventOnKafka {
  readonly event: ChatEvent;
  readonly partition: number;
  readonly offset: bigint;
}

export function account(input: AccountingInput): Accounting {
  const anomalies: string[] = [];
  const clientIds = new Set(input.conversations.map((c) => c.id));

  // chat.requests: each conversation's requests in offset order (one key, one partition).
  const byConversation = new Map<string, RequestOnKafka[]>();
  const requestById = new Map<string, RequestOnKafka>();
  let duplicateRequestRecords = 0;
  for (const record of input.requests) {
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

  // chat.events, by request id, in offset order.
  const eventsById = new Map<string, EventOnKafka[]>();
  const finalsByPartition = new Map<number, number[]>(); // request partition → worker timestamps of first terminals
  for (const record of input.events) {
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

  const firstTerminal = (requestId: string): EventOnKafka | undefined => eventsById.get(requestId)?.find((e) => isTerminalEvent(e.event));

  // Per request on Kafka: lost, doubled, failed, re-run.
  let reruns = 0;
  let repeatedTerminals = 0;
  const verdict = new Map<string, "once" | "lost" | "twice" | "failed">();
  for (const [id, entry] of requestById) {
    const events = eventsById.get(id) ?? [];
    const terminals = events.filter((e) => isTerminalEvent(e.event)).map((e) => e.event as FinalEvent | ErrorEvent);
    const distinct: Array<FinalEvent | ErrorEvent> = [];
    for (const t of terminals) if (!distinct.some((d) => isDeepStrictEqual(d, t))) distinct.push(t);
    repeatedTerminals += terminals.length - distinct.length;
    if (new Set(events.map((e) => e.event.attempt)).size > 1) reruns++;
    const where = `${entry.request.conversation_id} request ${id}`;
    if (distinct.length === 0) {
      verdict.set(id, "lost");
    } else if (distinct.length > 1) {
      verdict.set(id, "twice");
      anomalies.push(`${where}: ${distinct.length} different terminal events: ${distinct.map((d) => JSON.stringify(d)).join(" | ")}`);
    } else {
      const t = distinct[0]!;
      const failed = t.type === "error" || t.stop_reason === "error" || t.stop_reason === "cancelled";
      verdict.set(id, failed ? "failed" : "once");
      if (failed) anomalies.push(`${where}: ended with ${JSON.stringify(t)}`);
    }
    const first = firstTerminal(id);
    if (first) {
      const list = finalsByPartition.get(entry.partition) ?? [];
      list.push(first.event.at);
      finalsByPartition.set(entry.partition, list);
    }
  }

  // Per client turn.
  let planned = 0;
  let sent = 0;
  let answeredOnce = 0;
  let lost = 0;
  let answeredTwice = 0;
  let failed = 0;
  let undelivered = 0;
  let postRetries = 0;
  let sseResumes = 0;
  let sseDrops = 0;
  let discardedAttempts = 0;
  let textMismatches = 0;
  let deltaGaps = 0;
  let longestTurnMs: number | null = null;
  const clientTurns = new Map<string, ClientTurn>(); // "<conversation> <n>"
  for (const conversation of input.conversations) {
    planned += input.turnsPerConversation;
    if (conversation.gaveUp) anomalies.push(`${conversation.id}: client stopped after ${conversation.turns.length} turn(s): ${conversation.gaveUp}`);
    for (const turn of conversation.turns) {
      clientTurns.set(`${conversation.id} ${turn.n}`, turn);
      postRetries += turn.tries.filter((t) => t.outcome !== "accepted").length;
      sseResumes += Math.max(0, turn.connects - 1);
      sseDrops += turn.drops;
      discardedAttempts += turn.discardedAttempts;
      for (const p of turn.problems) anomalies.push(`note: ${conversation.id} turn ${turn.n}: ${p}`);
      if (turn.requestId === null) continue;
      sent++;
      const where = `${conversation.id} turn ${turn.n} (request ${turn.requestId})`;
      const onKafka = requestById.get(turn.requestId);
      if (!onKafka) {
        lost++;
        anomalies.push(`${where}: accepted (202) but not on chat.requests`);
        continue;
      }
      const v = verdict.get(turn.requestId)!;
      if (v === "lost") {
        lost++;
        anomalies.push(`${where}: no terminal event on chat.events`);
        continue;
      }
      if (v === "twice") {
        answeredTwice++;
        continue;
      }
      if (v === "failed") {
        failed++;
        continue;
      }
      const kafkaFinal = firstTerminal(turn.requestId)!.event as FinalEvent;
      if (turn.terminal === null) {
        undelivered++;
        anomalies.push(`${where}: final on chat.events but the client never received it`);
        continue;
      }
      if (!isDeepStrictEqual(turn.terminal, kafkaFinal)) {
        undelivered++;
        anomalies.push(`${where}: the client received ${JSON.stringify(turn.terminal)}, chat.events has ${JSON.stringify(kafkaFinal)}`);
        continue;
      }
      answeredOnce++;
      if (turn.followedAttempt === kafkaFinal.attempt && turn.streamedText !== kafkaFinal.reply) {
        if (kafkaFinal.reply.startsWith(turn.streamedText)) {
          deltaGaps++;
          anomalies.push(`note: ${where}: the stream's deltas stopped at ${JSON.stringify(turn.streamedText)}; the final's reply ${JSON.stringify(kafkaFinal.reply)} completes it`);
        } else {
          textMismatches++;
          anomalies.push(`${where}: streamed text ${JSON.stringify(turn.streamedText)} is not the start of the final reply ${JSON.stringify(kafkaFinal.reply)}`);
        }
      }
      if (turn.acceptedAt !== null && turn.terminalAt !== null) longestTurnMs = Math.max(longestTurnMs ?? 0, turn.terminalAt - turn.acceptedAt);
    }
  }

  // Requests on Kafka that no client got a 202 for.
  const acceptedIds = new Set(input.conversations.flatMap((c) => c.turns.map((t) => t.requestId).filter((id): id is string => id !== null)));
  let ghosts = 0;
  let strangers = 0;
  for (const [id, entry] of requestById) {
    if (acceptedIds.has(id)) continue;
    const parsed = parseTurnContent(entry.request.content);
    const turn = parsed && parsed.conversationId === entry.request.conversation_id ? clientTurns.get(`${parsed.conversationId} ${parsed.n}`) : undefined;
    const unanswered = turn?.tries.filter((t) => t.outcome === "unavailable" || t.outcome === "timeout" || t.outcome === "network") ?? [];
    if (turn && unanswered.length > 0) {
      ghosts++;
      anomalies.push(
        `${input.idempotencyKeys ? "" : "note: "}${entry.request.conversation_id} turn ${turn.n}: a try that got ${unanswered.map((t) => t.outcome).join("/")} reached chat.requests anyway ` +
          `as request ${id} ("${entry.request.content}"), beside the accepted ${turn.requestId}: the turn is applied twice` +
          (input.idempotencyKeys ? "" : " (no Idempotency-Key was sent)"),
      );
    } else {
      strangers++;
      anomalies.push(`${entry.request.conversation_id}: request ${id} ("${entry.request.content}") matches no client try`);
    }
  }

  // Order: chat.requests against the client's order, and events against chat.requests.
  let outOfOrder = 0;
  for (const conversation of input.conversations) {
    const onKafka = byConversation.get(conversation.id) ?? [];
    const clientOrder = conversation.turns.map((t) => t.requestId).filter((id): id is string => id !== null && requestById.has(id));
    const kafkaOrder = onKafka.map((e) => e.request.request_id).filter((id) => acceptedIds.has(id));
    if (!isDeepStrictEqual(clientOrder, kafkaOrder)) {
      outOfOrder++;
      anomalies.push(`${conversation.id}: chat.requests order ${kafkaOrder.join(",")} differs from the client's ${clientOrder.join(",")}`);
    }
    for (let i = 1; i < onKafka.length; i++) {
      const before = firstTerminal(onKafka[i - 1]!.request.request_id);
      const nextEvents = eventsById.get(onKafka[i]!.request.request_id) ?? [];
      const earliest = nextEvents[0];
      if (earliest && (!before || compareOffsets(earliest.offset, before.offset) < 0)) {
        outOfOrder++;
        anomalies.push(`${conversation.id}: request ${onKafka[i]!.request.request_id} has an event before the final of the request before it`);
      }
    }
  }

  // Memory: the latest state per conversation, against chat.requests and chat.events.
  const states = new Map<string, ConversationState | null>();
  for (const record of input.memory) {
    if (record.key === null || record.key.startsWith("#") || !clientIds.has(record.key)) continue;
    if (record.value === null) {
      states.set(record.key, null);
      continue;
    }
    const decoded = decodeRecord(conversationStateSchema, record.value);
    if (!decoded.ok) anomalies.push(`chat.memory ${record.partition}@${record.offset}: unreadable (${decoded.reason})`);
    else states.set(record.key, decoded.value);
  }
  let memoryChecked = 0;
  let memoryMismatches = 0;
  for (const conversation of input.conversations) {
    const onKafka = byConversation.get(conversation.id) ?? [];
    if (onKafka.length === 0) continue;
    memoryChecked++;
    const expected = onKafka.flatMap(({ request }) => {
      const t = firstTerminal(request.request_id)?.event;
      const reply = t?.type === "final" ? t.reply : "";
      return [`user:${request.request_id}:${request.content}`, `assistant:${request.request_id}:${reply}`];
    });
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

  // Recovery after each fault.
  const recoveries: FaultRecovery[] = input.faults.map((fault) => {
    const partitions: PartitionRecovery[] = [];
    const waiting = new Set<number>();
    for (const entry of requestById.values()) {
      const t = firstTerminal(entry.request.request_id);
      if (entry.request.created_at <= fault.at && (!t || t.event.at > fault.at)) waiting.add(entry.partition);
    }
    for (const partition of [...waiting].sort((a, b) => a - b)) {
      const after = (finalsByPartition.get(partition) ?? []).filter((at) => at > fault.at);
      partitions.push({ partition, ms: after.length ? Math.min(...after) - fault.at : null });
    }
    const values = partitions.map((p) => p.ms ?? Number.POSITIVE_INFINITY);
    return { fault, partitions, longestMs: values.length ? Math.max(...values) : null };
  });
  const measured = recoveries.map((r) => r.longestMs).filter((ms): ms is number => ms !== null);
  const longestRecoveryMs = measured.length ? Math.max(...measured) : null;

  const notSent = planned - sent;
  const ok =
    notSent === 0 &&
    lost === 0 &&
    answeredTwice === 0 &&
    outOfOrder === 0 &&
    failed === 0 &&
    undelivered === 0 &&
    memoryMismatches === 0 &&
    strangers === 0 &&
    (!input.idempotencyKeys || ghosts === 0) &&
    textMismatches === 0 &&
    (longestRecoveryMs === null || Number.isFinite(longestRecoveryMs));
  return {
    planned,
    sent,
    notSent,
    answeredOnce,
    lost,
    answeredTwice,
    outOfOrder,
    failed,
    undelivered,
    memoryChecked,
    memoryMismatches,
    longestRecoveryMs,
    recoveries,
    ghosts,
    strangers,
    postRetries,
    reruns,
    repeatedTerminals,
    duplicateRequestRecords,
    sseResumes,
    sseDrops,
    discardedAttempts,
    textMismatches,
    deltaGaps,
    longestTurnMs,
    anomalies,
    ok,
  };
}

function compareOffsets(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
