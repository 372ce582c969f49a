/** What each client turn got, against what chat.events holds for its request. */
import { isDeepStrictEqual } from "node:util";
import type { FinalEvent } from "../../contracts/records/events.js";
import type { ClientConversation, ClientTurn } from "../client.js";
import type { TopicIndex } from "./topics.js";
import type { RequestVerdicts } from "./verdicts.js";

export interface TurnTally {
  planned: number;
  sent: number;
  answeredOnce: number;
  lost: number;
  answeredTwice: number;
  failed: number;
  undelivered: number;
  postRetries: number;
  sseResumes: number;
  sseDrops: number;
  discardedAttempts: number;
  textMismatches: number;
  deltaGaps: number;
  longestTurnMs: number | null;
  /** "<conversation> <n>" → the client's turn. */
  readonly clientTurns: Map<string, ClientTurn>;
}

export function tallyClientTurns(
  conversations: readonly ClientConversation[],
  turnsPerConversation: number,
  index: TopicIndex,
  verdicts: RequestVerdicts,
  anomalies: string[],
): TurnTally {
  const t: TurnTally = {
    planned: 0,
    sent: 0,
    answeredOnce: 0,
    lost: 0,
    answeredTwice: 0,
    failed: 0,
    undelivered: 0,
    postRetries: 0,
    sseResumes: 0,
    sseDrops: 0,
    discardedAttempts: 0,
    textMismatches: 0,
    deltaGaps: 0,
    longestTurnMs: null,
    clientTurns: new Map(),
  };
  for (const conversation of conversations) {
    t.planned += turnsPerConversation;
    if (conversation.gaveUp) anomalies.push(`${conversation.id}: client stopped after ${conversation.turns.length} turn(s): ${conversation.gaveUp}`);
    for (const turn of conversation.turns) {
      t.clientTurns.set(`${conversation.id} ${turn.n}`, turn);
      t.postRetries += turn.tries.filter((x) => x.outcome !== "accepted").length;
      t.sseResumes += Math.max(0, turn.connects - 1);
      t.sseDrops += turn.drops;
      t.discardedAttempts += turn.discardedAttempts;
      for (const p of turn.problems) anomalies.push(`note: ${conversation.id} turn ${turn.n}: ${p}`);
      if (turn.requestId === null) continue;
      t.sent++;
      checkTurn(`${conversation.id} turn ${turn.n} (request ${turn.requestId})`, turn, turn.requestId, index, verdicts, t, anomalies);
    }
  }
  return t;
}

function checkTurn(where: string, turn: ClientTurn, requestId: string, index: TopicIndex, verdicts: RequestVerdicts, t: TurnTally, anomalies: string[]): void {
  if (!index.requestById.has(requestId)) {
    t.lost++;
    anomalies.push(`${where}: accepted (202) but not on chat.requests`);
    return;
  }
  const v = verdicts.verdict.get(requestId)!;
  if (v === "lost") {
    t.lost++;
    anomalies.push(`${where}: no terminal event on chat.events`);
    return;
  }
  if (v === "twice") {
    t.answeredTwice++;
    return;
  }
  if (v === "failed") {
    t.failed++;
    return;
  }
  const kafkaFinal = index.firstTerminal(requestId)!.event as FinalEvent;
  if (turn.terminal === null) {
    t.undelivered++;
    anomalies.push(`${where}: final on chat.events but the client never received it`);
    return;
  }
  if (!isDeepStrictEqual(turn.terminal, kafkaFinal)) {
    t.undelivered++;
    anomalies.push(`${where}: the client received ${JSON.stringify(turn.terminal)}, chat.events has ${JSON.stringify(kafkaFinal)}`);
    return;
  }
  t.answeredOnce++;
  if (turn.followedAttempt === kafkaFinal.attempt && turn.streamedText !== kafkaFinal.reply) {
    if (kafkaFinal.reply.startsWith(turn.streamedText)) {
      t.deltaGaps++;
      anomalies.push(
        `note: ${where}: the stream's deltas stopped at ${JSON.stringify(turn.streamedText)}; the final's reply ${JSON.stringify(kafkaFinal.reply)} completes it`,
      );
    } else {
      t.textMismatches++;
      anomalies.push(`${where}: streamed text ${JSON.stringify(turn.streamedText)} is not the start of the final reply ${JSON.stringify(kafkaFinal.reply)}`);
    }
  }
  if (turn.acceptedAt !== null && turn.terminalAt !== null) t.longestTurnMs = Math.max(t.longestTurnMs ?? 0, turn.terminalAt - turn.acceptedAt);
}
