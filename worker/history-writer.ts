/**
 * Appends a request's new messages to chat.history, one record per applied request, and
 * gives back the conversation state with the chain's new head. The turn writes that state
 * to memory afterwards: only a memory record makes the history record reachable, so a
 * worker that dies between the two writes leaves a record no read ever finds, and the
 * re-run request appends its own (exactly once, like memory). With WORKER_TRANSACTIONS the
 * record goes in the turn's transaction, and an aborted one leaves nothing to read.
 */
import { randomBytes } from "node:crypto";
import { conversationKey } from "../contracts/conversation-key.js";
import { nextFingers } from "../contracts/history-chain.js";
import { SCHEMA_VERSION } from "../contracts/records/fields.js";
import { encodeRecord } from "../contracts/records/codec.js";
import type { ConversationState } from "../contracts/records/memory.js";
import type { HistoryMessage, HistoryRecord } from "../contracts/records/history.js";
import type { RecordSink } from "../platform/kafka/producer.js";

/** What a turn asks of the history: add these messages, get the state that points at them. */
export interface HistoryPort {
  /**
   * Writes `messages` (none: writes nothing) and returns `state` with the new head (acked by
   * all in-sync replicas); through `transaction` when the turn writes in one.
   */
  append(state: ConversationState, messages: readonly HistoryMessage[], requestId: string, now: number, transaction?: RecordSink): Promise<ConversationState>;
}

export class HistoryWriter implements HistoryPort {
  readonly #producer: RecordSink;
  readonly #topic: string;

  constructor(producer: RecordSink, topic: string) {
    this.#producer = producer;
    this.#topic = topic;
  }

  async append(
    state: ConversationState,
    messages: readonly HistoryMessage[],
    requestId: string,
    now: number,
    transaction?: RecordSink,
  ): Promise<ConversationState> {
    if (messages.length === 0) return state;
    const head = state.history;
    const seq = head?.records ?? 0;
    const record: HistoryRecord = {
      v: SCHEMA_VERSION,
      type: "history",
      conversation_id: state.conversation_id,
      tenant: state.tenant,
      epoch: head?.epoch ?? randomBytes(6).toString("hex"),
      seq,
      index: head?.messages ?? 0,
      request_id: requestId,
      at: now,
      messages: [...messages],
      links: head?.fingers ?? [],
    };
    // The chain stays in its first record's partition (links are offsets there), even if
    // the topic gains partitions later.
    const [meta] = await (transaction ?? this.#producer).send({
      topic: this.#topic,
      messages: [{ key: conversationKey(state), value: encodeRecord(record), ...(head && { partition: head.partition }) }],
    });
    if (meta === undefined || meta.offset < 0) throw new Error(`chat.history did not return the offset of ${state.conversation_id}'s record`);
    const offset = meta.offset;
    return {
      ...state,
      history: {
        epoch: record.epoch,
        partition: meta.partition,
        records: seq + 1,
        messages: record.index + messages.length,
        fingers: nextFingers(head?.fingers ?? [], seq, offset),
      },
    };
  }
}
