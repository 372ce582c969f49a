/**
 * Response ids of the Responses API. A response is a turn of a conversation, so its id
 * names both, and any gateway replica finds it from the id alone: the request (in the
 * event hub while it is recent, from chat.requests and chat.events) and the conversation
 * (its owner's memory and its chain in chat.history) for as long as the conversation lives.
 *
 *   resp_n<request>                    not stored (`store: false`): a stateless turn
 *   resp_c<conversation><request>      stored, in the conversation its first response opened
 *   resp_x<request><conversation b64>  stored, in a conversation the client named
 *
 * <request> and <conversation> are UUIDs as 32 hex digits (the gateway makes both);
 * a named conversation's id is base64url, since any conversation id may be named.
 */

export type ResponseRef =
  | { readonly kind: "stateless"; readonly requestId: string }
  | { readonly kind: "chain" | "named"; readonly requestId: string; readonly conversationId: string };

const HEX32 = /^[0-9a-f]{32}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const hex = (uuid: string) => uuid.replaceAll("-", "");
const uuidOf = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;

export function responseId(ref: ResponseRef): string {
  if (!UUID.test(ref.requestId)) throw new Error(`response request ids are UUIDs, not ${ref.requestId}`);
  switch (ref.kind) {
    case "stateless":
      return `resp_n${hex(ref.requestId)}`;
    case "chain":
      if (!UUID.test(ref.conversationId)) throw new Error(`a chain's conversation id is a UUID, not ${ref.conversationId}`);
      return `resp_c${hex(ref.conversationId)}${hex(ref.requestId)}`;
    case "named":
      return `resp_x${hex(ref.requestId)}${Buffer.from(ref.conversationId, "utf8").toString("base64url")}`;
  }
}

/** The response an id names, or null for a string that is no response id of ours. */
export function parseResponseId(id: string): ResponseRef | null {
  if (!id.startsWith("resp_") || id.length > 256) return null;
  const kind = id[5];
  const rest = id.slice(6);
  if (kind === "n" && HEX32.test(rest)) return { kind: "stateless", requestId: uuidOf(rest) };
  if (kind === "c" && rest.length === 64 && HEX32.test(rest.slice(0, 32)) && HEX32.test(rest.slice(32)))
    return { kind: "chain", conversationId: uuidOf(rest.slice(0, 32)), requestId: uuidOf(rest.slice(32)) };
  if (kind === "x" && rest.length > 32 && HEX32.test(rest.slice(0, 32)) && /^[A-Za-z0-9_-]+$/.test(rest.slice(32))) {
    const conversationId = Buffer.from(rest.slice(32), "base64url").toString("utf8");
    // Only the canonical spelling names it (base64url decodes sloppy input too).
    if (Buffer.from(conversationId, "utf8").toString("base64url") !== rest.slice(32)) return null;
    return { kind: "named", requestId: uuidOf(rest.slice(0, 32)), conversationId };
  }
  return null;
}

/** The id of a response's message output item. */
export function messageItemId(requestId: string): string {
  return `msg_${hex(requestId)}`;
}

/** The id of a function call output item (call ids are stable per request: worker/tool-calls.ts). */
export function functionCallItemId(callId: string): string {
  return `fc_${callId.replace(/^call_/, "")}`;
}
