/**
 * A replayed request (one its conversation's state lists as applied) is answered with the
 * terminal event it already had, never generated again. The state keeps that event only
 * for its newest entry (a summary: the reply is in the history record its head points at);
 * for the others it keeps where the event is on chat.events, exactly or as a lower bound,
 * and the event is read back from there: the same bytes, sent again. An event that has
 * aged out of chat.events (or cannot be found) is answered with `already_applied`: the
 * reply is in the conversation's messages.
 */
import { conversationKey, type ConversationRef } from "../contracts/conversation-key.js";
import { chatEventSchema, finalEventSchema, isTerminalEvent } from "../contracts/records/events.js";
import { decodeRecord, encodeRecord } from "../contracts/records/codec.js";
import { historyRecordSchema } from "../contracts/records/history.js";
import type { AppliedEntry, ConversationState } from "../contracts/records/memory.js";
import type { FetchedRecord, OffsetReader } from "../platform/kafka/offset-reader.js";
import type { EventPosition } from "./event-writer.js";
import { fillFinal, needsHeldReply } from "./conversation.js";

/** What a replay reads: chat.events (its terminal events) and chat.history (the newest reply's text). */
export interface ReplaySources {
  /** chat.events; `end` also gives where a request's events start when it has sent none yet. */
  readonly events: Pick<OffsetReader, "withFetcher" | "end">;
  readonly history: Pick<OffsetReader, "withFetcher">;
}

/** Why a stored terminal event could not be given back (for the log). */
export type NotKept = "aged_out" | "not_found" | "history_gone";

/**
 * The bytes of the terminal event `entry`'s request had, to send again; or why there are
 * none. Throws kafka_unavailable when a topic does not answer (the turn is then run again).
 */
export async function storedTerminal(
  state: ConversationState,
  found: { entry: AppliedEntry; newest: boolean },
  sources: ReplaySources,
): Promise<{ ok: true; value: Buffer } | { ok: false; why: NotKept }> {
  const { entry } = found;
  if (entry.final !== undefined) {
    if (!needsHeldReply(entry.final)) return { ok: true, value: encodeRecord(entry.final) };
    const held = await heldReply(state, entry.request_id, sources);
    if (held === null) return { ok: false, why: "history_gone" };
    return { ok: true, value: encodeRecord(finalEventSchema.parse(fillFinal(entry.final, held))) };
  }
  const isTerminal = terminalOf(entry.request_id, state);
  return sources.events.withFetcher(async (fetcher) => {
    const { partition, offset } = entry.events;
    const { low, high } = await fetcher.watermarks(partition);
    if (entry.exact) {
      if (offset < low) return { ok: false, why: "aged_out" };
      const record = await fetcher.fetch(partition, offset);
      if (record?.value && isTerminal(record)) return { ok: true, value: record.value };
    }
    // From the lower bound (or the exact offset, should its record not be the one) to the
    // end the partition had when the replay began: bounded, however busy the topic is.
    if (high <= low || offset >= high) return { ok: false, why: offset < low ? "aged_out" : "not_found" };
    const record = await fetcher.scan(partition, offset, high, isTerminal);
    if (record?.value) return { ok: true, value: record.value };
    return { ok: false, why: offset < low ? "aged_out" : "not_found" };
  });
}

/** Matches the terminal event of one request of one conversation (its tenant's). */
function terminalOf(requestId: string, conversation: ConversationRef): (record: FetchedRecord) => boolean {
  const needle = Buffer.from(JSON.stringify(requestId));
  return (record) => {
    // Most of a partition is other requests' deltas: skip them without parsing.
    if (!record.value?.includes(needle)) return false;
    const decoded = decodeRecord(chatEventSchema, record.value);
    return (
      decoded.ok && decoded.value.request_id === requestId && conversationKey(decoded.value) === conversationKey(conversation) && isTerminalEvent(decoded.value)
    );
  };
}

/**
 * The reply the newest applied request's history record holds (its last assistant
 * message): the record the state's head, history.fingers[0], points at. Null when that
 * record is gone or is not the request's.
 */
async function heldReply(state: ConversationState, requestId: string, sources: ReplaySources): Promise<string | null> {
  const head = state.history;
  if (!head) return null;
  const record = await sources.history.withFetcher((f) => f.fetch(head.partition, head.fingers[0]!));
  const decoded = decodeRecord(historyRecordSchema, record?.value ?? null);
  if (!decoded.ok || decoded.value.request_id !== requestId || conversationKey(decoded.value) !== conversationKey(state)) return null;
  return [...decoded.value.messages].reverse().find((m) => m.role === "assistant")?.content ?? null;
}

/**
 * Where this worker saw requests' finals land (it sent them), so the entry of the request
 * before the next one can keep an exact offset instead of a lower bound. Bounded: the
 * oldest are forgotten (their entries then keep their lower bound).
 */
export class FinalPositions {
  readonly #positions = new Map<string, EventPosition>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  get(requestId: string): EventPosition | undefined {
    return this.#positions.get(requestId);
  }

  set(requestId: string, position: EventPosition): void {
    this.#positions.delete(requestId);
    this.#positions.set(requestId, position);
    if (this.#positions.size > this.#max) this.#positions.delete(this.#positions.keys().next().value!);
  }

  get size(): number {
    return this.#positions.size;
  }
}
