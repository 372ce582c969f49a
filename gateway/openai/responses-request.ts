/**
 * POST /v1/responses bodies (OpenAI's Responses API): what is accepted, and how the input
 * items become a turn's messages.
 *
 * Every field OpenAI defines is either honoured, accepted because it changes nothing this
 * server could honour (`reasoning` for a model that does not reason, `prompt_cache_key`,
 * `client_metadata`, `include` of what no tool here produces), or refused with a 400 that
 * names it (only where it would change the result). Hosted tools (web search, file search,
 * ...) are not run here: they are left out of what the model is offered, and the response
 * says which (see `ResponseInput.leftOut`). A `namespace` tool (Codex CLI groups its
 * sub-agent functions in one) is a group of function tools the client runs: its functions
 * are offered by their own names, and a call of one names its namespace, as the client
 * needs to route it (see `ResponseInput.namespaces`). docs/gateway.md lists every field.
 */
import { z } from "zod";
import { MAX_CONTEXT_MESSAGES, MAX_TOOLS } from "../../contracts/limits.js";
import {
  checkParamCombination,
  generationParamFields,
  type GenerationParams,
  type ResponseFormat,
  type ToolChoice,
} from "../../contracts/generation-params.js";
import { addGrammarBoundIssue } from "../../contracts/grammar-bounds.js";
import { conversationIdSchema } from "../../contracts/records/fields.js";
import type { ContextMessage } from "../../contracts/records/requests.js";
import { ApiError, parseInput } from "../errors.js";
import { paramsOf } from "../routes/schemas.js";

const f = generationParamFields;

/** Fields OpenAI defines that this server refuses when set, and why. */
const UNSUPPORTED = new Map<string, string>(
  Object.entries({
    prompt: "reusable prompt templates are not supported; send instructions and input",
    max_tool_calls: "max_tool_calls is not supported: the reply's tool calls are bounded by parallel_tool_calls only",
  }),
);

/** What `include` may ask for: the output text's token logprobs; the rest name outputs of tools not run here (nothing to include). */
const INCLUDABLE = new Set([
  "message.output_text.logprobs",
  "reasoning.encrypted_content",
  "file_search_call.results",
  "web_search_call.results",
  "web_search_call.action.sources",
  "code_interpreter_call.outputs",
  "computer_call_output.output.image_url",
  "message.input_image.image_url",
]);

/** Tool types OpenAI runs itself: left out of what the model is offered here. */
const HOSTED_TOOLS = new Set([
  "web_search",
  "web_search_preview",
  "web_search_2025_08_26",
  "web_search_preview_2025_03_11",
  "file_search",
  "computer_use_preview",
  "code_interpreter",
  "image_generation",
  "mcp",
  "local_shell",
  "shell",
  "apply_patch",
  "custom",
]);

const textOf = (parts: ReadonlyArray<{ text?: string; refusal?: string }>) => parts.map((p) => p.text ?? p.refusal ?? "").join("");

const inputText = z.object({ type: z.literal("input_text"), text: z.string() }).strict();
const outputText = z
  .object({ type: z.literal("output_text"), text: z.string(), annotations: z.array(z.unknown()).max(64).optional(), logprobs: z.array(z.unknown()).optional() })
  .strict();
const refusalPart = z.object({ type: z.literal("refusal"), refusal: z.string() }).strict();
const contentPart = z.discriminatedUnion("type", [inputText, outputText, refusalPart], {
  error: (issue) =>
    issue.code === "invalid_union"
      ? 'content part type: only "input_text", "output_text" and "refusal" are supported (this server takes text only)'
      : undefined,
});

function messageItem(maxChars: number) {
  return z
    .object({
      type: z.literal("message").optional(),
      id: z.string().max(256).optional(),
      status: z.string().max(32).optional(),
      role: z.enum(["user", "system", "developer", "assistant"], { error: 'must be "user", "system", "developer" or "assistant"' }),
      content: stringOrList(z.string(), z.array(contentPart).max(64, "must hold at most 64 parts"), "must be a string or an array of text parts"),
    })
    .strict()
    .transform((m) => ({ kind: "message" as const, role: m.role, content: typeof m.content === "string" ? m.content : textOf(m.content) }))
    .refine((m) => m.content.length <= maxChars, { message: `content must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`, path: ["content"] });
}

const functionCallItem = z
  .object({
    type: z.literal("function_call"),
    id: z.string().max(256).optional(),
    status: z.string().max(32).optional(),
    call_id: z.string().min(1).max(256),
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, '_' or '-'"),
    // The namespace tool the function came from, as the response named it: the model knows it by its name alone.
    namespace: z.string().max(64).nullish(),
    arguments: z.string(),
  })
  .strict()
  .transform((c) => ({ kind: "call" as const, id: c.call_id, name: c.name, arguments: c.arguments }));

function functionOutputItem(maxChars: number) {
  return z
    .object({
      type: z.literal("function_call_output"),
      id: z.string().max(256).nullish(),
      status: z.string().max(32).nullish(),
      call_id: z.string().min(1).max(256),
      output: z.union([z.string(), z.array(inputText).max(64)], { error: "must be a string or an array of input_text parts" }),
    })
    .strict()
    .transform((o) => ({ kind: "output" as const, callId: o.call_id, content: typeof o.output === "string" ? o.output : textOf(o.output) }))
    .refine((o) => o.content.length <= maxChars, { message: `output must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`, path: ["output"] });
}

/** A reasoning item echoed back from an earlier response: there is none to continue here, so it is dropped. */
const reasoningItem = z
  .object({ type: z.literal("reasoning") })
  .loose()
  .transform(() => ({ kind: "skip" as const }));

function inputItem(maxChars: number) {
  const message = messageItem(maxChars);
  const output = functionOutputItem(maxChars);
  return z.unknown().transform((raw, ctx) => {
    const type = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as { type?: unknown }).type : undefined;
    const schema =
      type === undefined || type === "message"
        ? message
        : type === "function_call"
          ? functionCallItem
          : type === "function_call_output"
            ? output
            : type === "reasoning"
              ? reasoningItem
              : null;
    if (schema === null) {
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message: `${JSON.stringify(type)} items are not supported (supported: message, function_call, function_call_output, reasoning)`,
      });
      return z.NEVER;
    }
    const parsed = (schema as z.ZodType<InputItem>).safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, code: "custom", message: issue.message, path: issue.path } as never);
      return z.NEVER;
    }
    return parsed.data;
  });
}

type InputItem =
  | { kind: "message"; role: "user" | "system" | "developer" | "assistant"; content: string }
  | { kind: "call"; id: string; name: string; arguments: string }
  | { kind: "output"; callId: string; content: string }
  | { kind: "skip" };

/** `input`: a string or a list of input items. */
function inputSchema(maxChars: number) {
  const text = z.string().min(1, "must not be empty").max(maxChars, `must be at most ${maxChars} characters`);
  const list = z.array(inputItem(maxChars)).max(MAX_CONTEXT_MESSAGES + 1, `must hold at most ${MAX_CONTEXT_MESSAGES + 1} items`);
  return stringOrList(text, list, "must be a string or an array of input items");
}

/** A string or a list, whose items' own errors are told (a union would hide them behind its own). */
function stringOrList<S extends z.ZodType<string>, L extends z.ZodType<unknown[]>>(text: S, list: L, message: string) {
  return z.unknown().transform((raw, ctx): z.output<S> | z.output<L> => {
    if (typeof raw !== "string" && !Array.isArray(raw)) {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }
    const parsed = typeof raw === "string" ? text.safeParse(raw) : list.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, code: "custom", message: issue.message, path: issue.path } as never);
      return z.NEVER;
    }
    return parsed.data;
  });
}

const functionTool = z
  .object({
    type: z.literal("function"),
    name: z.string(),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  })
  .strict();

type FunctionTool = z.infer<typeof functionTool>;

/** A function tool as the model is offered it, and as the response echoes it. */
function offeredFunction(fn: FunctionTool, namespace: string | null) {
  return {
    kind: "function" as const,
    namespace,
    offered: {
      type: "function" as const,
      function: {
        name: fn.name,
        ...(fn.description == null ? {} : { description: fn.description }),
        ...(fn.parameters == null ? {} : { parameters: fn.parameters }),
        ...(fn.strict == null ? {} : { strict: fn.strict }),
      },
    },
    echo: fn,
  };
}

type ToolEntry = ReturnType<typeof offeredFunction> | { kind: "hosted"; type: string };

/** The issues of a failed parse, moved onto `ctx` (under `path`). */
function copyIssues(ctx: z.RefinementCtx, issues: readonly z.core.$ZodIssue[], path: PropertyKey[] = []): void {
  for (const issue of issues) ctx.addIssue({ ...issue, code: "custom", message: issue.message, path: [...path, ...issue.path] } as never);
}

/** A function or hosted tool (in a namespace too): the function checked here and as the record's tool, a hosted tool's type left out. */
function toolEntry(t: { type: string }, namespace: string | null, ctx: z.RefinementCtx, path: PropertyKey[]): ToolEntry | null {
  if (t.type === "function") {
    const parsed = functionTool.safeParse(t);
    if (parsed.success) return offeredFunction(parsed.data, namespace);
    copyIssues(ctx, parsed.error.issues, path);
    return null;
  }
  if (HOSTED_TOOLS.has(t.type)) return { kind: "hosted", type: t.type };
  ctx.addIssue({
    code: "custom",
    path: [...path, "type"],
    message: `${JSON.stringify(t.type)} tools are not supported (function tools and namespaces of them are; hosted tools are left out)`,
  });
  return null;
}

/**
 * A namespace tool: a named group of tools the client runs (Codex CLI sends its sub-agent
 * functions as one). Its functions are offered by their own names (a name the model is
 * offered twice is refused, as for any function); the response's call names the namespace.
 */
const namespaceTool = z
  .object({
    type: z.literal("namespace"),
    name: z.string().min(1).max(64),
    description: z.string().nullish(),
    tools: z.array(z.object({ type: z.string().max(64) }).loose()).max(MAX_TOOLS, `must hold at most ${MAX_TOOLS} tools`),
  })
  .strict();

/** A tool as sent: a function, a namespace of them, or a hosted tool (left out); a list, as one namespace gives several. */
const toolInput = z
  .object({ type: z.string().max(64) })
  .loose()
  .transform((t, ctx): ToolEntry[] => {
    if (t.type !== "namespace") {
      const entry = toolEntry(t, null, ctx, []);
      return entry === null ? z.NEVER : [entry];
    }
    const parsed = namespaceTool.safeParse(t);
    if (!parsed.success) {
      copyIssues(ctx, parsed.error.issues);
      return z.NEVER;
    }
    const entries = parsed.data.tools.map((inner, i) => toolEntry(inner, parsed.data.name, ctx, ["tools", i]));
    return entries.includes(null) ? z.NEVER : (entries as ToolEntry[]);
  });

const toolChoiceInput = z.union(
  [z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), name: z.string() }).strict(), z.object({ type: z.string() }).loose()],
  { error: 'must be "none", "auto", "required" or {"type": "function", "name": "..."}' },
);

const formatInput = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("text") }).strict(),
    z.object({ type: z.literal("json_object") }).strict(),
    z
      .object({
        type: z.literal("json_schema"),
        name: z.string(),
        description: z.string().nullish(),
        schema: z.record(z.string(), z.unknown()),
        strict: z.boolean().nullish(),
      })
      .strict(),
  ],
  { error: 'type must be "text", "json_object" or "json_schema"' },
);

/** The body schema of POST /v1/responses (exported for the OpenAPI document). */
export function responsesBodySchema(maxChars: number) {
  return z
    .object({
      model: z.string().min(1, "must not be empty").max(256),
      input: inputSchema(maxChars),
      instructions: z.string().max(maxChars, `must be at most ${maxChars} characters (GATEWAY_MAX_CONTENT_CHARS)`).nullish(),
      previous_response_id: z.string().max(256).nullish(),
      conversation: z
        .union([conversationIdSchema, z.object({ id: conversationIdSchema }).strict()], { error: 'must be a conversation id or {"id": "..."}' })
        .nullish(),
      store: z.boolean().nullish(),
      background: z.boolean().nullish(),
      stream: z.boolean().nullish(),
      stream_options: z.object({ include_obfuscation: z.boolean().nullish() }).strict().nullish(),
      metadata: z
        .record(z.string().max(64, "keys must be at most 64 characters"), z.string().max(512, "values must be at most 512 characters"))
        .refine((m) => Object.keys(m).length <= 16, "must hold at most 16 pairs")
        .nullish(),
      max_output_tokens: f.max_tokens.nullish(),
      temperature: f.temperature.nullish(),
      top_p: f.top_p.nullish(),
      top_logprobs: f.logprobs.nullish(),
      tools: z.array(toolInput).max(MAX_TOOLS, `must hold at most ${MAX_TOOLS} tools`).nullish(),
      tool_choice: toolChoiceInput.nullish(),
      parallel_tool_calls: z.boolean().nullish(),
      text: z
        .object({
          format: formatInput.nullish(),
          verbosity: z.literal("medium", { error: 'only "medium" is supported (the model has no verbosity setting)' }).nullish(),
        })
        .strict()
        .nullish(),
      truncation: z.enum(["auto", "disabled"], { error: 'must be "auto" or "disabled"' }).nullish(),
      include: z
        .array(z.string().max(128))
        .max(16)
        .nullish()
        .superRefine((list, ctx) => {
          list?.forEach((what, i) => {
            if (!INCLUDABLE.has(what)) ctx.addIssue({ code: "custom", path: [i], message: `${JSON.stringify(what)} cannot be included` });
          });
        }),
      // Accepted: they change nothing this server could honour (the model does not reason;
      // the KV cache is kept per conversation by itself; the rest is the client's bookkeeping).
      reasoning: z
        .object({ effort: z.string().max(32).nullish(), summary: z.string().max(32).nullish(), generate_summary: z.string().max(32).nullish() })
        .strict()
        .nullish(),
      user: z.string().max(256).nullish(),
      safety_identifier: z.string().max(256).nullish(),
      prompt_cache_key: z.string().max(1024).nullish(),
      prompt_cache_retention: z.string().max(32).nullish(),
      service_tier: z.string().max(64).nullish(),
      client_metadata: z.record(z.string().max(256), z.unknown()).nullish(),
    })
    .strict();
}

export type ResponsesBody = z.infer<ReturnType<typeof responsesBodySchema>>;

/** A parsed request: the turn's messages and params, and what the response echoes. */
export interface ResponseInput {
  body: ResponsesBody;
  /** The request's messages in order (system and developer messages as "system"). */
  messages: ContextMessage[];
  params: GenerationParams | undefined;
  /** The system prompt: `instructions`, then the input's system and developer messages. */
  system: string | undefined;
  /** Types of the hosted tools left out of what the model is offered. */
  leftOut: string[];
  /** The function tools, as the response echoes them (a namespace's among them). */
  tools: FunctionTool[];
  /** The namespace of each function offered from a namespace tool, by the function's name: a call of it names it. */
  namespaces: Record<string, string>;
  store: boolean;
  background: boolean;
  stream: boolean;
  conversation: string | undefined;
}

/** Validates a body; every failure names its field. */
export function parseResponsesBody(raw: Record<string, unknown>, maxChars: number): ResponseInput {
  for (const key of Object.keys(raw)) {
    const why = UNSUPPORTED.get(key);
    if (why !== undefined && raw[key] !== null && raw[key] !== undefined) throw new ApiError("invalid_request", `${key}: ${why}`, { param: key });
  }
  const body = parseInput(responsesBodySchema(maxChars), raw, "body");
  const store = body.store ?? true;
  const background = body.background ?? false;
  if (background && !store) throw new ApiError("invalid_request", "background: a background response must be stored (store: true)", { param: "background" });
  if (body.previous_response_id != null && body.conversation != null) {
    throw new ApiError("invalid_request", "previous_response_id and conversation cannot both be given: a response continues one or the other", {
      param: "previous_response_id",
    });
  }

  const entries = (body.tools ?? []).flat();
  if (entries.length > MAX_TOOLS)
    throw new ApiError("invalid_request", `tools: at most ${MAX_TOOLS} tools, a namespace's counted one by one`, { param: "tools" });
  const functions = entries.filter((t) => t.kind === "function");
  // Where each offered function is in the body: tools.I, or tools.I.tools.J in a namespace.
  const toolPaths = (body.tools ?? []).flatMap((list, i) =>
    list.flatMap((t, j) => (t.kind !== "function" ? [] : t.namespace === null ? [[i]] : [[i, "tools", j]])),
  );
  const tools = functions.map((t) => t.offered);
  const leftOut = entries.flatMap((t) => (t.kind === "hosted" ? [t.type] : []));
  const namespaces = Object.fromEntries(functions.flatMap((t) => (t.namespace === null ? [] : [[t.echo.name, t.namespace]])));
  let toolChoice: ToolChoice | undefined;
  const choice = body.tool_choice;
  if (typeof choice === "string") toolChoice = choice;
  else if (choice != null) {
    if (choice.type !== "function" || typeof choice.name !== "string") {
      throw new ApiError(
        "invalid_request",
        `tool_choice: ${JSON.stringify(choice.type)} tools are not run here; choose a function tool, "auto", "none" or "required"`,
        {
          param: "tool_choice",
        },
      );
    }
    toolChoice = { type: "function", function: { name: choice.name } };
  }
  // Every tool left out: nothing to choose from, so the model just answers.
  if (tools.length === 0 && toolChoice === "required" && leftOut.length > 0) toolChoice = undefined;
  const format = body.text?.format;
  const responseFormat: ResponseFormat | undefined =
    format == null || format.type === "text"
      ? undefined
      : format.type === "json_object"
        ? { type: "json_object" }
        : {
            type: "json_schema",
            json_schema: {
              name: format.name,
              schema: format.schema,
              ...(format.description == null ? {} : { description: format.description }),
              ...(format.strict == null ? {} : { strict: format.strict }),
            },
          };
  const params = checkedParams(toolPaths, {
    max_tokens: body.max_output_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    response_format: responseFormat,
    tools: tools.length > 0 ? tools : undefined,
    tool_choice: tools.length > 0 ? toolChoice : toolChoice === "none" ? undefined : toolChoice,
    parallel_tool_calls: tools.length > 0 ? body.parallel_tool_calls : undefined,
    // Token logprobs, with top_logprobs alternatives, when the output text's logprobs are included or alternatives asked for.
    logprobs: body.include?.includes("message.output_text.logprobs") || (body.top_logprobs ?? 0) > 0 ? (body.top_logprobs ?? 0) : undefined,
  });

  const items: InputItem[] = typeof body.input === "string" ? [{ kind: "message", role: "user", content: body.input }] : body.input;
  const messages = toMessages(items);
  const systems = messages.filter((m) => m.role === "system").map((m) => m.content);
  const system = [body.instructions ?? undefined, ...systems].filter((s): s is string => s !== undefined && s !== "").join("\n\n") || undefined;
  const conversation = body.conversation == null ? undefined : typeof body.conversation === "string" ? body.conversation : body.conversation.id;
  return {
    body,
    messages: messages.filter((m) => m.role !== "system"),
    params,
    system,
    leftOut,
    tools: functions.map((t) => t.echo),
    namespaces,
    store,
    background,
    stream: body.stream === true,
    conversation,
  };
}

/** The record's params, checked by the record schema's own fields (a tool's name and schema, the combination). */
function checkedParams(
  toolPaths: ReadonlyArray<ReadonlyArray<string | number>>,
  input: { [K in keyof GenerationParams]?: GenerationParams[K] | null },
): GenerationParams | undefined {
  const schema = z
    .object({
      max_tokens: f.max_tokens.nullish(),
      temperature: f.temperature.nullish(),
      top_p: f.top_p.nullish(),
      response_format: f.response_format.nullish(),
      tools: z.array(f.tools.element).nullish(),
      tool_choice: f.tool_choice.nullish(),
      parallel_tool_calls: f.parallel_tool_calls.nullish(),
      logprobs: f.logprobs.nullish(),
    })
    .superRefine((p, ctx) => {
      checkParamCombination(
        {
          tools: p.tools ?? undefined,
          tool_choice: p.tool_choice ?? undefined,
          response_format: p.response_format ?? undefined,
          logprobs: p.logprobs ?? undefined,
        },
        ctx,
        "top_logprobs",
      );
      addGrammarBoundIssue(p, ctx);
    });
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // Name the field as the client sent it.
    const [head, ...rest] = issue.path;
    const field =
      head === "response_format"
        ? ["text", "format", ...rest.slice(2)]
        : head === "max_tokens"
          ? ["max_output_tokens"]
          : head === "tools"
            ? ["tools", ...(typeof rest[0] === "number" ? (toolPaths[rest[0]] ?? [rest[0]]) : []), ...rest.slice(2)]
            : issue.path;
    const param = field.filter((p) => p !== undefined).join(".");
    throw new ApiError("invalid_request", `${param}: ${issue.message}`, { param });
  }
  return paramsOf(parsed.data as Parameters<typeof paramsOf>[0]);
}

/** Input items as chat messages: function calls join the assistant message before them, outputs become tool messages. */
function toMessages(items: readonly InputItem[]): ContextMessage[] {
  const out: ContextMessage[] = [];
  for (const item of items) {
    if (item.kind === "skip") continue;
    if (item.kind === "message") {
      out.push({ role: item.role === "developer" ? "system" : item.role, content: item.content });
    } else if (item.kind === "call") {
      const call = { id: item.id, type: "function" as const, function: { name: item.name, arguments: item.arguments } };
      const last = out.at(-1);
      if (last?.role === "assistant") last.tool_calls = [...(last.tool_calls ?? []), call];
      else out.push({ role: "assistant", content: "", tool_calls: [call] });
    } else {
      out.push({ role: "tool", content: item.content, tool_call_id: item.callId });
    }
  }
  if (out.length > MAX_CONTEXT_MESSAGES + 1) throw new ApiError("invalid_request", `input: at most ${MAX_CONTEXT_MESSAGES + 1} items`, { param: "input" });
  return out;
}

/**
 * A request's news and what comes before it: the trailing function call outputs (the
 * turn's tool results), else the last user message. Anything else at the end is refused.
 */
export function splitNews(messages: readonly ContextMessage[]): {
  before: ContextMessage[];
  content: string;
  toolResults?: Array<{ tool_call_id: string; content: string }>;
} {
  const last = messages.at(-1);
  if (last === undefined) throw new ApiError("invalid_request", "input: holds no user message or function_call_output", { param: "input" });
  if (last.role === "tool") {
    let start = messages.length;
    while (start > 0 && messages[start - 1]!.role === "tool") start--;
    return {
      before: messages.slice(0, start),
      content: "",
      toolResults: messages.slice(start).map((m) => ({ tool_call_id: m.tool_call_id!, content: m.content })),
    };
  }
  if (last.role !== "user") {
    throw new ApiError("invalid_request", "input: the last item must be a user message or a function_call_output (the model answers those)", {
      param: "input",
    });
  }
  if (last.content.length === 0) throw new ApiError("invalid_request", "input: the last user message must not be empty", { param: "input" });
  return { before: messages.slice(0, -1), content: last.content };
}

/** Each tool message answers a call of an assistant message before it (in `known` or the messages). */
export function checkToolOutputs(messages: readonly ContextMessage[], known: ReadonlySet<string> = new Set()): void {
  const calls = new Set(known);
  for (const m of messages) {
    for (const c of m.tool_calls ?? []) calls.add(c.id);
    if (m.role === "tool" && !calls.has(m.tool_call_id!)) {
      throw new ApiError(
        "invalid_request",
        `input: the function_call_output for call_id ${JSON.stringify(m.tool_call_id)} answers no function_call before it`,
        {
          param: "input",
        },
      );
    }
  }
}
