/**
 * Generation parameters of a turn request (`params`), with the OpenAI-style ones: sampling,
 * stop texts, structured outputs and tools. Bounded here once; the native API's and the
 * OpenAI route's schemas are built from these fields.
 */
import { z } from "zod";
import { SchemaProblem, normalizeJsonSchema } from "./grammar-schema.js";
import { MAX_CHOICES, MAX_CONTENT_CHARS, MAX_STOP_CHARS, MAX_STOP_SEQUENCES, MAX_TOOLS, MAX_TOP_LOGPROBS } from "./limits.js";

/** A number: zod 4's refuses Infinity and NaN by itself. */
const finite = () => z.number();
const integer = () => z.number().int("must be an integer");
const between = (base: z.ZodNumber, min: number, max: number) => base.min(min, `must be >= ${min}`).max(max, `must be <= ${max}`);

/** Names of functions and of json_schema formats, as OpenAI allows them. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const functionName = z.string().regex(FUNCTION_NAME, "must be 1-64 letters, digits, '_' or '-'");

/**
 * A JSON Schema the worker's grammar can express, normalized (contracts/grammar-schema.ts):
 * the gateway stores the normalized form in the record, and the worker's decode finds it
 * unchanged. A part the grammar cannot express fails here, with its path.
 */
export const grammarJsonSchema = z
  .record(z.string(), z.unknown(), { error: "must be a JSON Schema object" })
  .transform((value, ctx): Record<string, unknown> => {
    try {
      return normalizeJsonSchema(value);
    } catch (err) {
      if (!(err instanceof SchemaProblem)) throw err;
      ctx.addIssue({ code: "custom", path: [...err.path], message: err.message });
      return z.NEVER;
    }
  });

export const responseFormatSchema = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("text") }).strict(),
    z.object({ type: z.literal("json_object") }).strict(),
    z
      .object({
        type: z.literal("json_schema"),
        json_schema: z
          .object({
            name: functionName,
            description: z.string().max(MAX_CONTENT_CHARS).optional(),
            /** Absent: any JSON object, as with json_object. */
            schema: grammarJsonSchema.optional(),
            /** Output is always held to the schema by the grammar, strict or not. */
            strict: z.boolean().nullish(),
          })
          .strict(),
      })
      .strict(),
  ],
  { error: 'type must be "text", "json_object" or "json_schema"' },
);
export type ResponseFormat = z.infer<typeof responseFormatSchema>;

export const toolSchema = z
  .object({
    type: z.literal("function", { error: 'must be "function"' }),
    function: z
      .object({
        name: functionName,
        description: z.string().max(MAX_CONTENT_CHARS).optional(),
        /** Absent: the function takes no arguments ({}). */
        parameters: grammarJsonSchema.optional(),
        strict: z.boolean().nullish(),
      })
      .strict(),
  })
  .strict();
export type Tool = z.infer<typeof toolSchema>;

export const toolChoiceSchema = z.union(
  [z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), function: z.object({ name: functionName }).strict() }).strict()],
  { error: 'must be "none", "auto", "required" or {"type": "function", "function": {"name": "..."}}' },
);
export type ToolChoice = z.infer<typeof toolChoiceSchema>;

/**
 * Generation parameters, bounded once here: the native API's and the OpenAI route's
 * schemas are built from these fields, and the worker applies its defaults where they are
 * absent. Everything here travels in the request record, so a takeover or a replay
 * generates with the same settings.
 */
export const generationParamFields = {
  max_tokens: between(integer(), 1, 8192),
  temperature: between(finite(), 0, 2),
  top_p: finite().gt(0, "must be > 0").max(1, "must be <= 1"),
  top_k: between(integer(), 0, 1000),
  repeat_penalty: between(finite(), 0, 2),
  /** OpenAI's ranges and meaning; llama.cpp applies them over the last 64 tokens. */
  presence_penalty: between(finite(), -2, 2),
  frequency_penalty: between(finite(), -2, 2),
  /** Any safe integer; the sampler uses it modulo 2^32. */
  seed: between(integer(), Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
  /** Generation stops before the first of these texts, which is not in the reply. */
  stop: z
    .array(z.string().min(1, "must not be empty").max(MAX_STOP_CHARS, `must be at most ${MAX_STOP_CHARS} characters`))
    .min(1, "must hold at least one stop text")
    .max(MAX_STOP_SEQUENCES, `must hold at most ${MAX_STOP_SEQUENCES} stop texts`),
  response_format: responseFormatSchema,
  tools: z.array(toolSchema).min(1, "must hold at least one tool").max(MAX_TOOLS, `must hold at most ${MAX_TOOLS} tools`),
  tool_choice: toolChoiceSchema,
  parallel_tool_calls: z.boolean(),
  /** Choices generated side by side; choice i samples with seed + i when a seed is given. */
  n: between(integer(), 1, MAX_CHOICES),
  /**
   * Present: each generated token's log probability goes out with the reply's deltas, with
   * this many most likely alternatives (0-20). The worker then generates with its own loop
   * (worker/logprob-generation.ts), which cannot run tools.
   */
  logprobs: between(integer(), 0, MAX_TOP_LOGPROBS),
};

/** Parameters that only make sense together; the path names the one to fix. */
export function checkParamCombination(
  p: { tools?: Tool[] | undefined; tool_choice?: ToolChoice | undefined; response_format?: ResponseFormat | undefined; logprobs?: number | undefined },
  ctx: z.RefinementCtx,
  /** The request's own name of the logprobs parameter, for the issue's path. */
  logprobsParam = "logprobs",
): void {
  const choice = p.tool_choice;
  if (typeof choice === "object") {
    if (!p.tools?.some((t) => t.function.name === choice.function.name)) {
      ctx.addIssue({
        code: "custom",
        path: ["tool_choice"],
        message: `names the function ${JSON.stringify(choice.function.name)}, which is not in tools`,
      });
    }
  } else if (choice === "required" && p.tools === undefined) {
    ctx.addIssue({ code: "custom", path: ["tool_choice"], message: '"required" needs tools' });
  }
  const names = p.tools?.map((t) => t.function.name) ?? [];
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) ctx.addIssue({ code: "custom", path: ["tools"], message: `names the function ${JSON.stringify(twice)} twice` });
  if (p.tools !== undefined && choice !== "none" && p.response_format !== undefined && p.response_format.type !== "text") {
    ctx.addIssue({
      code: "custom",
      path: ["response_format"],
      message: 'cannot be combined with tools (unless tool_choice is "none"): tool calls have their own grammar',
    });
  }
  if (p.tools !== undefined && choice !== "none" && p.logprobs !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: [logprobsParam],
      message: 'cannot be combined with tools (unless tool_choice is "none"): token logprobs come from a generation loop that does not run tool calls',
    });
  }
}

export const generationParamsSchema = z.object(generationParamFields).partial().strict().superRefine(checkParamCombination);
export type GenerationParams = z.infer<typeof generationParamsSchema>;

/** A call the model made to one of the request's tools; `arguments` is JSON text. */
export const toolCallSchema = z
  .object({
    id: z.string().min(1).max(256),
    type: z.literal("function"),
    function: z.object({ name: functionName, arguments: z.string().max(MAX_CONTENT_CHARS) }).strict(),
  })
  .strict();
export type ToolCall = z.infer<typeof toolCallSchema>;
