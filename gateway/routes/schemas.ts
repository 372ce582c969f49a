/**
 * Request bodies and queries of the native API, with messages that say what to fix.
 * Generation parameters are the record schema's own fields (contracts/records.ts), so a
 * bound changes in one place; the intake re-checks every request against the record
 * schema before it is queued.
 */
import { z } from "zod";
import { checkParamCombination, generationParamFields, type GenerationParams } from "../../contracts/records.js";
import { ApiError } from "../errors.js";

/** Generation parameters, as the native API and the OpenAI route take them. */
export const generationParamShape = generationParamFields;

/** `stop` as a string or a list of strings (OpenAI's shape); the record holds a list. */
export const stopInput = z
  .union([generationParamFields.stop.element, generationParamFields.stop], {
    errorMap: (issue, ctx) => ({ message: issue.code === "invalid_union" ? "must be a string or an array of up to 4 strings" : ctx.defaultError }),
  })
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

const text = (maxChars: number) =>
  z.string({ required_error: "is required" }).max(maxChars, `must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`);

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
    .superRefine(checkParamCombination);
}

export function openConversationBody(maxChars: number) {
  return z
    .object({
      greeting: z.boolean().optional(),
      system: text(maxChars).optional(),
    })
    .strict();
}

const booleanQuery = z
  .enum(["true", "false", "1", "0"], { errorMap: () => ({ message: "must be true or false" }) })
  .transform((v) => v === "true" || v === "1");

export const openConversationQuery = z.object({ greeting: booleanQuery.optional() }).strict();

export const historyQuery = z
  .object({
    from: z.enum(["beginning", "latest"], { errorMap: () => ({ message: 'must be "beginning" or "latest"' }) }).default("beginning"),
    limit: z.coerce
      .number({ invalid_type_error: "must be an integer" })
      .int("must be an integer")
      .min(1, "must be >= 1")
      .max(1000, "must be <= 1000")
      .default(100),
  })
  .strict();

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
