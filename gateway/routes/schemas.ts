/**
 * Request bodies and queries of the native API, with messages that say what to fix.
 * The bounds of generation parameters are those of contracts/records.ts (the intake
 * re-checks every request against the record schema before it is queued).
 */
import { z } from "zod";
import { ApiError } from "../errors.js";

const number = (min: string, max: number) => {
  const base = z.number().finite("must be a finite number");
  return min === ">0" ? base.gt(0, "must be > 0").max(max, `must be <= ${max}`) : base.min(Number(min), `must be >= ${min}`).max(max, `must be <= ${max}`);
};

/** Generation parameters, as the native API and (as extensions) the OpenAI route take them. */
export const generationParamShape = {
  max_tokens: z.number().int("must be an integer").min(1, "must be >= 1").max(8192, "must be <= 8192"),
  temperature: number("0", 2),
  top_p: number(">0", 1),
  top_k: z.number().int("must be an integer").min(0, "must be >= 0").max(1000, "must be <= 1000"),
  repeat_penalty: number("0", 2),
};

export type GenerationParamInput = { [K in keyof typeof generationParamShape]?: number };

/** The params object of a request record: only the parameters that were given. */
export function paramsOf(input: GenerationParamInput): GenerationParamInput | undefined {
  const params: GenerationParamInput = {};
  for (const key of Object.keys(generationParamShape) as Array<keyof GenerationParamInput>) {
    const value = input[key];
    if (value !== undefined && value !== null) params[key] = value;
  }
  return Object.keys(params).length > 0 ? params : undefined;
}

const text = (maxChars: number) =>
  z.string({ required_error: "is required" }).max(maxChars, `must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`);

export function postMessageBody(maxChars: number) {
  return z
    .object({
      content: text(maxChars).min(1, "must not be empty"),
      system: text(maxChars).optional(),
      max_tokens: generationParamShape.max_tokens.optional(),
      temperature: generationParamShape.temperature.optional(),
      top_p: generationParamShape.top_p.optional(),
      top_k: generationParamShape.top_k.optional(),
      repeat_penalty: generationParamShape.repeat_penalty.optional(),
    })
    .strict();
}

export function openConversationBody(maxChars: number) {
  return z
    .object({
      greeting: z.boolean().optional(),
      system: text(maxChars).optional(),
    })
    .strict();
}

const booleanQuery = z.enum(["true", "false", "1", "0"], { errorMap: () => ({ message: "must be true or false" }) }).transform((v) => v === "true" || v === "1");

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
