/**
 * The keys of chat.memory. One partition carries four kinds of record under one key
 * space: conversations (keyed by their conversation key), replies handed over to the
 * partition's next owner (`#handover:<request id>`), restore fences (`#fence:<uuid>`) and
 * attempt markers (`#attempts:<offset>`, worker/attempts.ts). Conversation keys cannot
 * contain '#', so they never collide; this module is the one place that tells them apart.
 * The state store keeps attempt markers beside the conversations, under their whole key,
 * so the TTL's sweep removes one a worker left behind.
 */
import { ATTEMPTS_KEY_PREFIX, HANDOVER_KEY_PREFIX } from "../../contracts/records/memory.js";
import type { RecordWrite } from "../state-store.js";

/** A restore's marker record: a tombstone under a key no conversation can have. */
export const FENCE_PREFIX = "#fence:";

/** A record of chat.memory as the producer takes it (null value: a tombstone). */
export interface MemoryRecord {
  key: string;
  value: Buffer | null;
}

export function isFence(key: string): boolean {
  return key.startsWith(FENCE_PREFIX);
}

export function isHandover(key: string): boolean {
  return key.startsWith(HANDOVER_KEY_PREFIX);
}

/** The key of request `requestId`'s handed-over reply. */
export function handoverKey(requestId: string): string {
  return `${HANDOVER_KEY_PREFIX}${requestId}`;
}

/** The key of the attempt marker of the chat.requests record at `offset` (worker/attempts.ts). */
export function attemptsKey(offset: string): string {
  return `${ATTEMPTS_KEY_PREFIX}${offset}`;
}

/** A memory record (by its key: a conversation or a handover) as a store write; `writtenAt` in ms. */
export function recordWrite(key: string, value: Buffer | null, writtenAt: number): RecordWrite {
  return isHandover(key)
    ? { kind: "handover", id: key.slice(HANDOVER_KEY_PREFIX.length), value, writtenAt }
    : { kind: "conversation", id: key, value, writtenAt };
}
