/**
 * A conversation changing pools (contracts/pools.ts). A conversation's memory lives in one
 * pool at a time, in that pool's chat.memory, written by the one owner of its partition: two
 * pools never write one conversation. When a turn names a model of another pool, the gateway
 * puts it, with `move_to`, on the topic of the pool the conversation is in, behind the
 * conversation's other requests there. Its owner, once it reaches the turn:
 *
 * 1. puts the turn, without `move_to` and with the conversation's state as `carry`, on the
 *    new pool's topic (same key, so the same partition there);
 * 2. writes the state here again with `moved_to`: a request that still comes here (a
 *    gateway that had not seen the move) is passed on to the new pool as it is;
 * 3. commits the record.
 *
 * The new pool's owner takes `carry` as the conversation's state, unless it already applied
 * the turn (a move sent twice after a crash between 1 and 3): its own state then answers the
 * replay. The history needs nothing: chat.history is one topic for every pool, and the
 * carried state holds the end of the conversation's chain, so the new pool links on to it.
 */
import { conversationKey } from "../contracts/conversation-key.js";
import { encodeRecord } from "../contracts/records/codec.js";
import type { ConversationState } from "../contracts/records/memory.js";
import type { ChatRequest, TurnRequest } from "../contracts/records/requests.js";
import { poolTopics } from "../contracts/pools.js";
import { appliedEntry } from "./conversation.js";
import type { RecordSink } from "../platform/kafka/producer.js";

/** What runRequest does with a request, given the state it loaded here. */
export type Placement =
  | { kind: "here"; state: ConversationState | undefined }
  /** Pass the request on to `pool`, with `carry` when it moves the conversation from here; `marker`: the state to leave here. */
  | { kind: "pass"; pool: string; request: ChatRequest; marker?: ConversationState };

/** Where a request runs: here, with which state, or in another pool. */
export function placeRequest(request: ChatRequest, loaded: ConversationState | undefined, ownPool: string): Placement {
  const turn = request.type === "turn" ? request : undefined;
  if (turn?.carry !== undefined) {
    // Arrived with its state: this pool's own wins only where it already applied this turn.
    const own = loaded !== undefined && loaded.moved_to === undefined && appliedEntry(loaded, request.request_id) ? loaded : undefined;
    const { moved_to: _gone, ...carried } = turn.carry;
    return { kind: "here", state: own ?? carried };
  }
  if (turn?.move_to !== undefined && turn.move_to !== ownPool) {
    const { move_to: to, ...rest } = turn;
    const live = loaded !== undefined && loaded.moved_to === undefined ? loaded : undefined;
    // Moved already (a move sent twice, or the gateway did not know it had moved): pass it on without a state.
    if (!live) return { kind: "pass", pool: loaded?.moved_to ?? to, request: rest };
    return { kind: "pass", pool: to, request: { ...rest, carry: live } as TurnRequest, marker: { ...live, moved_to: to } };
  }
  if (loaded?.moved_to !== undefined && loaded.moved_to !== ownPool) {
    const passed = turn?.move_to !== undefined ? (({ move_to: _m, ...rest }) => rest)(turn) : request;
    return { kind: "pass", pool: loaded.moved_to, request: passed };
  }
  return { kind: "here", state: loaded?.moved_to === undefined ? loaded : undefined };
}

/** Puts a passed request on its pool's topic, keyed by its conversation. */
export async function passOn(
  producer: RecordSink,
  topicPrefix: string,
  pool: string,
  request: ChatRequest,
  headers?: Readonly<Record<string, string>>,
): Promise<void> {
  await producer.send({
    topic: poolTopics(topicPrefix, pool).requests,
    messages: [{ key: conversationKey(request), value: encodeRecord(request), ...(headers && { headers }) }],
  });
}
