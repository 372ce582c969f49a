/**
 * Request bodies and queries of the native API, with messages that say what to fix.
 * Generation parameters are the record schema's own fields (contracts/generation-params.ts), so a
 * bound changes in one place; the intake re-checks every request against the record
 * schema before it is queued.
 */
import { modelNameSchema } from "../../contracts/pools.js";
import { z } from "zod";
import { MAX_APPEND_MESSAGES } from "../../contracts/limits.js";
import { checkParamCombination, generationParamFields, type GenerationParams } from "../../contracts/generation-params.js";
import { addGrammarBoundIssue } from "../../contracts/grammar-bounds.js";
import { ApiError } from "../errors.js";
import { metadataSchema } from "../../contracts/records/fields.js";
import { addedItems } from "../openai/conversation-items.js";

/** Generation parameters, as the native API and the OpenAI route take them. */
export const generationParamShape = generationParamFields;

/**
 * The error of a union whose last option is a list: `message`, except that an array the
 * list refuses as a whole (too many items) is told so. zod 4 fails a list longer than its
 * bound before reading its items, which fails the union with it.
 */
export function unionWithListError(message: string): z.core.$ZodErrorMap {
  return (issue) => {
    if (issue.code !== "invalid_union") return undefined;
    const list = Array.isArray(issue.input) ? issue.errors.at(-1)?.find((i) => i.path.length === 0) : undefined;
    return list?.message ?? message;
  };
}

/** `stop` as a string or a list of strings (OpenAI's shape); the record holds a list. */
export const stopInput = z
  .union([generationParamFields.stop.element, generationParamFields.stop], { error: unionWithListError("must be a string or an array of up to 4 strings") })
  .transform((s) => (typeof s === "string" ? [s] : s));

export type GenerationParamInput = { [K in keyof GenerationParams]?: GenerationParams[K] | null };

/** The params object of a request record: only the parameters that were given. */
export function paramsOf(input: GenerationParamInput): GenerationParams | undefined {
  const params: Record<string, unknown> = {};
  for (const key of Object.keys(generationParamFields) as Array<keyof GenerationParams>) {
    const value = input[key];
    if (value !== undefined && value !== null) params[key] = value;
  }
  return Object.keys(params).length > 0 ? (params as GenerationParams) : undefined;
}

const text = (maxChars: number) => z.string().max(maxChars, `must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`);

/**
 * A message to a conversation: the OpenAI route's sampling and output parameters, without
 * tools (a conversation's memory keeps text messages only).
 */
export function postMessageBody(maxChars: number) {
  const f = generationParamFields;
  return z
    .object({
      content: text(maxChars).min(1, "must not be empty"),
      system: text(maxChars).optional(),
      /** The model to answer with (GET /v1/models); absent: the default pool's. A model of another pool moves the conversation there. */
      model: modelNameSchema.optional(),
      max_tokens: f.max_tokens.optional(),
      temperature: f.temperature.optional(),
      top_p: f.top_p.optional(),
      top_k: f.top_k.optional(),
      repeat_penalty: f.repeat_penalty.optional(),
      presence_penalty: f.presence_penalty.optional(),
      frequency_penalty: f.frequency_penalty.optional(),
      seed: f.seed.optional(),
      stop: stopInput.optional(),
      response_format: f.response_format.optional(),
    })
    .strict()
    .superRefine((b, ctx) => {
      checkParamCombination(b, ctx);
      addGrammarBoundIssue(b, ctx);
    });
}

/** The native API's fields and OpenAI's Conversations API's (items, metadata): one conversation, either way. */
export function openConversationBody(maxChars: number) {
  return z
    .object({
      greeting: z.boolean().optional(),
      system: text(maxChars).optional(),
      items: addedItems(maxChars).optional(),
      metadata: metadataSchema.optional(),
    })
    .strict();
}

const booleanQuery = z.enum(["true", "false", "1", "0"], { error: "must be true or false" }).transform((v) => v === "true" || v === "1");

export const openConversationQuery = z.object({ greeting: booleanQuery.optional() }).strict();

/** A time as RFC 3339 or epoch milliseconds, in ms. */
const timeQuery = z.string().transform((v, ctx) => {
  const ms = /^\d{1,15}$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: "custom", message: "must be an RFC 3339 time (2026-01-31T12:00:00Z) or epoch milliseconds" });
    return z.NEVER;
  }
  return ms;
});

/** Names of history readers: also in their consumer group's id (hashed). */
export const READER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
export const HISTORY_MAX_LIMIT = 500;

/** The history query's fields (the OpenAPI document's parameters); historyQuery adds the checks across them. */
export const historyQueryFields = z
  .object({
    from: z.enum(["beginning", "latest", "last_consumed"], { error: 'must be "beginning", "latest" or "last_consumed"' }).optional(),
    limit: z.coerce
      .number({ error: "must be an integer" })
      .int("must be an integer")
      .min(1, "must be >= 1")
      .max(HISTORY_MAX_LIMIT, `must be <= ${HISTORY_MAX_LIMIT}`)
      .default(50),
    after: z.string().optional(),
    before: z.string().optional(),
    since: timeQuery.optional(),
    until: timeQuery.optional(),
    reader: z.string().regex(READER_NAME, "must be 1 to 64 letters, digits, '.', '_' or '-'").optional(),
  })
  .strict();

export const historyQuery = historyQueryFields.superRefine((q, ctx) => {
  const starts = [q.from !== undefined && "from", q.after !== undefined && "after", q.before !== undefined && "before"].filter(Boolean);
  if (starts.length > 1)
    ctx.addIssue({ code: "custom", path: [starts[1] as string], message: `give one of from, after and before, not ${starts.join(" and ")}` });
  if (q.from === "last_consumed" && q.reader === undefined)
    ctx.addIssue({
      code: "custom",
      path: ["reader"],
      message: "is required with from=last_consumed: name the reader whose position to continue from",
    });
  if (q.since !== undefined && q.until !== undefined && q.since > q.until)
    ctx.addIssue({ code: "custom", path: ["since"], message: "must not be after until" });
});
export type HistoryQuery = z.infer<typeof historyQuery>;

export const memoryQuery = z
  .object({
    from: z.enum(["beginning", "latest"], { error: 'must be "beginning" or "latest"' }).default("beginning"),
    limit: z.coerce.number({ error: "must be an integer" }).int("must be an integer").min(1, "must be >= 1").max(1000, "must be <= 1000").default(100),
  })
  .strict();

/** POST /history: messages appended without a reply. */
export function appendHistoryBody(maxChars: number) {
  return z
    .object({
      messages: z
        .array(
          z
            .object({
              role: z.enum(["user", "assistant", "system"], { error: 'must be "user", "assistant" or "system"' }),
              content: text(maxChars).min(1, "must not be empty"),
            })
            .strict(),
          { error: (issue) => (issue.code !== "invalid_type" ? undefined : issue.input === undefined ? "is required" : "must be an array of messages") },
        )
        .min(1, "must hold at least one message")
        .max(MAX_APPEND_MESSAGES, `must hold at most ${MAX_APPEND_MESSAGES} messages`),
    })
    .strict();
}

export const eventsQuery = z.object({ last_event_id: z.string().max(300).optional() }).strict();

export const cancelBody = z.object({ reason: z.string().max(500, "must be at most 500 characters").optional() }).strict();

export const emptyQuery = z.object({}).strict();

/** The body as a JSON object; an absent body counts as {} where `optional`. */
export function objectBody(body: unknown, example: string, optional = false): Record<string, unknown> {
  if (body === undefined && optional) return {};
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("invalid_request", `the body must be a JSON object like ${example}`);
  }
  return body as Record<string, unknown>;
}
