/**
 * A conversation's history as OpenAI's Conversations API shows it: items. Each history
 * message is a message item; its id names its place in the conversation's chain (the
 * chain's epoch and the message's index, as a history cursor does), so any replica finds
 * it, and an item of a conversation deleted and opened again is not found in the new one.
 */
import { z } from "zod";
import { MAX_APPEND_MESSAGES } from "../../contracts/limits.js";
import type { HistoryMessage } from "../../contracts/records/history.js";
import { metadataSchema } from "../../contracts/records/fields.js";
import type { IndexedMessage } from "../history/chain-walk.js";
import { encodeCursor } from "../history/read-plan.js";
import { notFound } from "../errors.js";

const ITEM_ID = /^msg_([A-Za-z0-9_-]{1,64})$/;

export function itemId(epoch: string, index: number): string {
  return `msg_${encodeCursor(epoch, index)}`;
}

/** The history index an item id names in the chain `epoch`; 404 for one that names none. */
export function itemIndex(id: string, epoch: string | undefined): number {
  const m = ITEM_ID.exec(id);
  const text = m ? Buffer.from(m[1]!, "base64url").toString("utf8") : "";
  const parts = /^([0-9a-f]{1,32}):(\d{1,15})$/.exec(text);
  if (!parts || parts[1] !== epoch) throw notFound(`no item ${id} in this conversation`);
  return Number(parts[2]);
}

/** A history message as a message item. */
export function messageItem(epoch: string, m: IndexedMessage) {
  return {
    id: itemId(epoch, m.index),
    type: "message" as const,
    status: "completed" as const,
    role: m.role,
    content: [m.role === "assistant" ? { type: "output_text" as const, text: m.content, annotations: [] } : { type: "input_text" as const, text: m.content }],
    created_at: Math.floor(m.created_at / 1000),
  };
}

const textPart = z.discriminatedUnion("type", [
  z.object({ type: z.literal("input_text"), text: z.string() }).strict(),
  z.object({ type: z.literal("output_text"), text: z.string(), annotations: z.array(z.unknown()).max(64).optional() }).strict(),
]);

/** Items a client adds (on create or POST .../items): messages only; function calls and their outputs belong to responses. */
export function addedItems(maxChars: number) {
  return z
    .array(
      z
        .object({
          type: z
            .literal("message", { error: 'only "message" items can be added to a conversation (function calls and their outputs come with responses)' })
            .optional(),
          role: z.enum(["user", "assistant", "system", "developer"], { error: 'must be "user", "assistant", "system" or "developer"' }),
          content: z.union(
            [
              z.string().min(1, "must not be empty").max(maxChars, `must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`),
              z.array(textPart).min(1, "must hold at least one part").max(64, "must hold at most 64 parts"),
            ],
            { error: "must be a string or an array of input_text/output_text parts" },
          ),
        })
        .strict()
        .transform((m): HistoryMessage => ({
          role: m.role === "developer" ? "system" : m.role,
          content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join(""),
        }))
        .refine((m) => m.content.length > 0 && m.content.length <= maxChars, {
          message: `content must hold 1 to ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`,
          path: ["content"],
        }),
    )
    .min(1, "must hold at least one item")
    .max(MAX_APPEND_MESSAGES, `must hold at most ${MAX_APPEND_MESSAGES} items`);
}

export const addItemsBody = (maxChars: number) => z.object({ items: addedItems(maxChars) }).strict();
export const updateConversationBody = z.object({ metadata: metadataSchema }).strict();

export const itemsQuery = z
  .object({
    limit: z.coerce.number().int("must be an integer").min(1, "must be >= 1").max(100, "must be <= 100").optional(),
    order: z.enum(["asc", "desc"], { error: 'must be "asc" or "desc"' }).optional(),
    after: z.string().max(100).optional(),
    include: z.union([z.string(), z.array(z.string())]).optional(),
    "include[]": z.union([z.string(), z.array(z.string())]).optional(),
  })
  .strict();

export const includeQuery = z
  .object({ include: z.union([z.string(), z.array(z.string())]).optional(), "include[]": z.union([z.string(), z.array(z.string())]).optional() })
  .strict();
