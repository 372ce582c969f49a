/**
 * GET /v1/conversations/{id}/messages: a page of the conversation's history, from the
 * chain in chat.history that the conversation's memory record points at. Finds the head
 * (historyHead), works out the index range (read-plan.ts), walks the chain for it
 * (chain-walk.ts) and, for a named reader, records where it stopped (reader-positions.ts).
 */
import type { ConversationState } from "../../contracts/records/memory.js";
import type { HistoryHead } from "../../contracts/records/history.js";
import type { GatewayDeps } from "../deps.js";
import { ApiError } from "../errors.js";
import { findConversation } from "../intake.js";
import type { HistoryQuery } from "../routes/schemas.js";
import { ChainWalk, type IndexedMessage } from "./chain-walk.js";
import { decodeCursor, encodeCursor, readRange, type ReadStart } from "./read-plan.js";
import { asRateLimited } from "../admission.js";
import { readerKey } from "../kafka/reader-positions.js";

export interface HistoryPage {
  conversation_id: string;
  messages: IndexedMessage[];
  first_cursor: string | null;
  last_cursor: string | null;
  has_more_before: boolean;
  has_more_after: boolean;
  total: number;
}

/**
 * The head of the tenant's conversation's chain, from the worker owning the conversation's
 * partition (404 for an unknown conversation). The one place that knows where heads are found.
 */
export async function historyHead(
  deps: GatewayDeps,
  conversationId: string,
  tenant: string,
): Promise<{ state: ConversationState; head: HistoryHead | undefined }> {
  const state = await findConversation(deps, conversationId, tenant);
  return { state, head: state.history };
}

export async function readHistory(deps: GatewayDeps, conversationId: string, tenant: string, query: HistoryQuery): Promise<HistoryPage> {
  const history = deps.history;
  if (!history) throw new ApiError("kafka_unavailable", "conversation history is not available yet; try again shortly");
  const { state, head } = await historyHead(deps, conversationId, tenant);
  const position = query.reader && head ? { tenant, conversationId, epoch: head.epoch, reader: query.reader } : null;
  // Each named reader is a Kafka consumer group: counted against the tenant's quota.
  if (position && deps.quotas) {
    try {
      deps.quotas.useReader(tenant, readerKey(position));
    } catch (err) {
      throw asRateLimited(err);
    }
  }

  let start: ReadStart;
  if (query.after !== undefined) start = { after: decodeCursor(query.after, "after", head?.epoch) };
  else if (query.before !== undefined) start = { before: decodeCursor(query.before, "before", head?.epoch) };
  else if (query.from === "last_consumed") {
    const next = position ? await unavailableIfThrown(history.positions.get(position)) : undefined;
    if (next === undefined)
      throw new ApiError(
        "invalid_request",
        `query reader: unknown reader ${JSON.stringify(query.reader)} for this conversation: make a first read with from=beginning&reader=${query.reader} or from=latest&reader=${query.reader}`,
      );
    start = { after: next - 1 };
  } else start = { from: query.from ?? "latest" };

  const total = head?.messages ?? 0;
  const empty: HistoryPage = {
    conversation_id: conversationId,
    messages: [],
    first_cursor: null,
    last_cursor: null,
    has_more_before: false,
    has_more_after: false,
    total,
  };
  if (!head || total === 0) return empty;

  const page = await history.reader.withFetcher(async (fetcher) => {
    const walk = new ChainWalk(fetcher, { tenant, conversation_id: conversationId }, head);
    const windowLo = query.since === undefined ? 0 : await walk.firstIndexSince(query.since);
    const windowHi = query.until === undefined ? total - 1 : await walk.lastIndexUntil(query.until);
    const range = readRange(start, query.limit, windowLo, windowHi);
    const messages = await walk.messages(range.lo, range.hi);
    deps.metrics.historyReadHops.observe(walk.hops);
    // A read that reached records past the retention returns the newer part only.
    const truncated = messages.length > 0 && messages[0]!.index > range.lo;
    return { range, messages, truncated };
  });
  const { messages, range } = page;
  if (position && messages.length > 0) await unavailableIfThrown(history.positions.set(position, messages.at(-1)!.index + 1));
  // Deleted items (OpenAI's Conversations API) are left out; the cursors still span the page read.
  const hidden = new Set(state.hidden ?? []);
  return {
    ...empty,
    messages: hidden.size === 0 ? messages : messages.filter((m) => !hidden.has(m.index)),
    first_cursor: messages.length ? encodeCursor(head.epoch, messages[0]!.index) : null,
    last_cursor: messages.length ? encodeCursor(head.epoch, messages.at(-1)!.index) : null,
    has_more_before: page.truncated ? false : range.hasMoreBefore,
    has_more_after: range.hasMoreAfter,
  };
}

/** A reader position Kafka could not read or write: a 503 to retry, not a 500. */
async function unavailableIfThrown<T>(op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (err) {
    throw new ApiError("kafka_unavailable", "a reader's position cannot be read or kept just now; try again shortly", { cause: err });
  }
}
