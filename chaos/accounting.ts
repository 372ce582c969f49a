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
 *
 * Each check is a module of ./accounting/; this one runs them in order and adds up.
 */
import type { ClientConversation } from "./client.js";
import type { FaultRecord } from "./faults.js";
import type { LoggedRecord } from "./kafka-log.js";
import { tallyClientTurns } from "./accounting/client-turns.js";
import { checkHistory } from "./accounting/history.js";
import { checkMemory } from "./accounting/memory.js";
import { countOutOfOrder } from "./accounting/order.js";
import { measureRecoveries, type FaultRecovery } from "./accounting/recovery.js";
import { findStrays } from "./accounting/strays.js";
import { indexTopics } from "./accounting/topics.js";
import { judgeRequests } from "./accounting/verdicts.js";

export type { FaultRecovery, PartitionRecovery } from "./accounting/recovery.js";

export interface AccountingInput {
  readonly conversations: readonly ClientConversation[];
  readonly turnsPerConversation: number;
  /** The clients sent Idempotency-Keys: then a turn on chat.requests under a second request id is a failure. */
  readonly idempotencyKeys: boolean;
  readonly faults: readonly FaultRecord[];
  readonly requests: readonly LoggedRecord[];
  readonly events: readonly LoggedRecord[];
  readonly memory: readonly LoggedRecord[];
  readonly history: readonly LoggedRecord[];
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
  /** Conversations whose chat.history chain was checked, and those whose chain is not every applied turn once, in order. */
  readonly historyChecked: number;
  readonly historyMismatches: number;
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

export function account(input: AccountingInput): Accounting {
  const anomalies: string[] = [];
  const clientIds = new Set(input.conversations.map((c) => c.id));
  const index = indexTopics(input.requests, input.events, clientIds, anomalies);
  const verdicts = judgeRequests(index, anomalies);
  const turns = tallyClientTurns(input.conversations, input.turnsPerConversation, index, verdicts, anomalies);
  const acceptedIds = new Set(input.conversations.flatMap((c) => c.turns.map((t) => t.requestId).filter((id): id is string => id !== null)));
  const { ghosts, strangers } = findStrays(turns.clientTurns, acceptedIds, input.idempotencyKeys, index, anomalies);
  const outOfOrder = countOutOfOrder(input.conversations, acceptedIds, index, anomalies);
  const { memoryChecked, memoryMismatches } = checkMemory(input.conversations, input.memory, clientIds, index, anomalies);
  const { historyChecked, historyMismatches } = checkHistory(input.conversations, input.memory, input.history, index, anomalies);
  // A gateway kill stops no partition: its recovery is the clients' resume, measured by them.
  const { recoveries, longestRecoveryMs } = measureRecoveries(
    input.faults.filter((f) => f.kind !== "gateway_kill"),
    index,
    verdicts,
  );

  const notSent = turns.planned - turns.sent;
  const ok =
    notSent === 0 &&
    turns.lost === 0 &&
    turns.answeredTwice === 0 &&
    outOfOrder === 0 &&
    turns.failed === 0 &&
    turns.undelivered === 0 &&
    memoryMismatches === 0 &&
    historyMismatches === 0 &&
    strangers === 0 &&
    (!input.idempotencyKeys || ghosts === 0) &&
    turns.textMismatches === 0 &&
    (longestRecoveryMs === null || Number.isFinite(longestRecoveryMs));
  return {
    planned: turns.planned,
    sent: turns.sent,
    notSent,
    answeredOnce: turns.answeredOnce,
    lost: turns.lost,
    answeredTwice: turns.answeredTwice,
    outOfOrder,
    failed: turns.failed,
    undelivered: turns.undelivered,
    memoryChecked,
    memoryMismatches,
    historyChecked,
    historyMismatches,
    longestRecoveryMs,
    recoveries,
    ghosts,
    strangers,
    postRetries: turns.postRetries,
    reruns: verdicts.reruns,
    repeatedTerminals: verdicts.repeatedTerminals,
    duplicateRequestRecords: index.duplicateRequestRecords,
    sseResumes: turns.sseResumes,
    sseDrops: turns.sseDrops,
    discardedAttempts: turns.discardedAttempts,
    textMismatches: turns.textMismatches,
    deltaGaps: turns.deltaGaps,
    longestTurnMs: turns.longestTurnMs,
    anomalies,
    ok,
  };
}
