/**
 * A conversation belongs to a tenant: it is named by its tenant and its id together, so two
 * tenants using one id (a LangChain session id, `support-4711`) have two conversations, and
 * nothing one tenant does can reach, claim or reveal the other's.
 *
 * The conversation key, `<tenant>/<conversation id>`, is the Kafka key of everything about a
 * conversation (chat.requests, chat.events, chat.memory, chat.history), so it decides the
 * partition and with it the owning worker; it also keys the worker's state store, cache and
 * KV slots. Neither part may contain '/' (see tenantSchema and conversationIdSchema), so a
 * key names exactly one pair; keys the workers use for their own records start with '#'.
 */

export interface ConversationRef {
  readonly tenant: string;
  readonly conversation_id: string;
}

export const KEY_SEPARATOR = "/";

/** The key of a record about this conversation. */
export function conversationKey(ref: ConversationRef): string {
  return `${ref.tenant}${KEY_SEPARATOR}${ref.conversation_id}`;
}

/** The tenant and conversation id a key names; null for a key that is not a conversation's. */
export function parseConversationKey(key: string): ConversationRef | null {
  const at = key.indexOf(KEY_SEPARATOR);
  if (at <= 0 || at === key.length - 1 || key.startsWith("#")) return null;
  return { tenant: key.slice(0, at), conversation_id: key.slice(at + 1) };
}
