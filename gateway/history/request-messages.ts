/**
 * The messages one request added to a conversation, from its chain in chat.history: what a
 * stored response was given and what it answered (GET /v1/responses/{id} once the event
 * hub has let the request go, and its input_items). Read newest first, a page at a time,
 * and bounded: a request further back than MAX_SCANNED messages is no longer found.
 */
import type { GatewayDeps } from "../deps.js";
import type { IndexedMessage } from "./chain-walk.js";
import { historyHead, readHistory } from "./read.js";

const PAGE = 500;
export const MAX_SCANNED = 4 * PAGE;

export async function messagesOfRequest(
  deps: GatewayDeps,
  conversationId: string,
  tenant: string,
  requestId: string,
): Promise<{ epoch: string; messages: IndexedMessage[] }> {
  const found: IndexedMessage[] = [];
  let before: string | undefined;
  const { head } = await historyHead(deps, conversationId, tenant);
  for (let scanned = 0; scanned < MAX_SCANNED; scanned += PAGE) {
    const page = await readHistory(deps, conversationId, tenant, before === undefined ? { from: "latest", limit: PAGE } : { before, limit: PAGE });
    const mine = page.messages.filter((m) => m.request_id === requestId);
    found.unshift(...mine);
    // A request's messages are together: found some, and the page reaches before them.
    if (found.length > 0 && page.messages[0]?.request_id !== requestId) break;
    if (!page.has_more_before || page.first_cursor === null) break;
    before = page.first_cursor;
  }
  return { epoch: head?.epoch ?? "", messages: found };
}
