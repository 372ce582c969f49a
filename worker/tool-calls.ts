/**
 * Tool calling on node-llama-cpp. Three ways a request's tools are used:
 *
 *   auto      the model's chat wrapper documents the functions in the prompt and the model
 *             decides; node-llama-cpp constrains a call's arguments to what the grammar holds
 *             of its schema (grammarSchemaOf; the rest is checked after, worker/schema-check.ts).
 *   forced    (tool_choice "required" or a named function) the reply is generated under a
 *             grammar that only admits a call: the function's arguments for a named one, or
 *             {"name", "arguments"} over the tools for "required". Valid whatever the model.
 *   none      no tools in play (tool_choice "none", or no tools): plain text.
 *
 * Tool calls and their results from earlier turns go back into the prompt as
 * node-llama-cpp function-call items, which the chat wrapper renders with the model's
 * own template.
 */
import { randomBytes } from "node:crypto";
import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelFunctions, GbnfJsonSchema } from "node-llama-cpp";
import type { GenerationParams, Tool, ToolCall } from "../contracts/generation-params.js";
import { grammarSchemaOf } from "../contracts/grammar-schema.js";

const NO_ARGUMENTS = { type: "object", properties: {} } as const;

export type ToolPlan =
  | { mode: "none" }
  | { mode: "auto"; functions: ChatModelFunctions; maxParallel: number | undefined }
  | { mode: "forced"; tools: readonly Tool[]; named: Tool | null; schema: Record<string, unknown> };

export function planTools(p: GenerationParams): ToolPlan {
  const tools = p.tools ?? [];
  const choice = p.tool_choice ?? (tools.length > 0 ? "auto" : "none");
  if (tools.length === 0 || choice === "none") return { mode: "none" };
  if (choice === "auto") {
    const functions: Record<string, ChatModelFunctions[string]> = {};
    for (const t of tools) {
      functions[t.function.name] = {
        ...(t.function.description === undefined ? {} : { description: t.function.description }),
        params: grammarSchemaOf(t.function.parameters ?? NO_ARGUMENTS) as GbnfJsonSchema,
      };
    }
    return { mode: "auto", functions, maxParallel: p.parallel_tool_calls === false ? 1 : undefined };
  }
  const named = choice === "required" ? (tools.length === 1 ? tools[0]! : null) : tools.find((t) => t.function.name === choice.function.name)!;
  const schema =
    named !== null
      ? (named.function.parameters ?? NO_ARGUMENTS)
      : {
          oneOf: tools.map((t) => ({
            type: "object",
            properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? NO_ARGUMENTS },
            required: ["name", "arguments"],
          })),
        };
  return { mode: "forced", tools, named, schema };
}

/** What the model is told in a forced call, as a system message: the tools, and what to write. */
export function forcedInstructions(plan: Extract<ToolPlan, { mode: "forced" }>): string {
  const list = plan.tools.map((t) => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters ?? NO_ARGUMENTS }));
  const task = plan.named
    ? `Call the function ${plan.named.function.name}: reply with its arguments as a JSON object.`
    : 'Call one of the functions: reply with {"name": ..., "arguments": {...}}.';
  return `Functions you can call: ${JSON.stringify(list)}\n${task}`;
}

/**
 * The tool call in a forced reply (text that the grammar held to `plan.schema`); null when
 * the text is not whole JSON (generation stopped by max_tokens). A named call's arguments
 * are the text as generated, so the fragments streamed add up to them.
 */
export function forcedToolCalls(plan: Extract<ToolPlan, { mode: "forced" }>, text: string, id: string): ToolCall[] | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (plan.named) return [toolCall(plan.named.function.name, text, id)];
  const { name, arguments: args } = value as { name: string; arguments: unknown };
  return [toolCall(name, JSON.stringify(args ?? {}), id)];
}

/** A call with its arguments as JSON text; a random id unless the caller has one. */
export function toolCall(name: string, args: string, id = randomCallId()): ToolCall {
  return { id, type: "function", function: { name, arguments: args } };
}

export function randomCallId(): string {
  return `call_${randomBytes(12).toString("base64url")}`;
}

/** A piece of a tool call as it is generated; the first of a call has its id and name. */
export interface ToolCallFragment {
  index: number;
  id?: string;
  name?: string;
  arguments: string;
}

export interface HistoryMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: readonly ToolCall[] | undefined;
  tool_call_id?: string | undefined;
}

/**
 * Messages as node-llama-cpp's chat history. An assistant message's tool calls become
 * function-call items of its model response, each with the result of the tool message that
 * answers it (by tool_call_id). Ends with an empty model response to generate, unless the
 * messages end with tool results: the model then goes on with the response that made the
 * calls, as node-llama-cpp does after a function returns.
 */
export function toChatHistory(messages: readonly HistoryMessage[]): ChatHistoryItem[] {
  const results = new Map<string, string>();
  for (const m of messages) if (m.role === "tool" && m.tool_call_id !== undefined) results.set(m.tool_call_id, m.content);
  const history: ChatHistoryItem[] = [];
  for (const m of messages) {
    if (m.role === "tool") continue;
    if (m.role !== "assistant") {
      history.push({ type: m.role, text: m.content });
      continue;
    }
    const calls: ChatModelFunctionCall[] = (m.tool_calls ?? []).map((c, i) => ({
      type: "functionCall",
      name: c.function.name,
      params: parseArguments(c.function.arguments),
      result: results.get(c.id) ?? null,
      ...(i === 0 ? { startsNewChunk: true } : {}),
    }));
    history.push({ type: "model", response: [...(m.content ? [m.content] : []), ...calls] });
  }
  if (messages.at(-1)?.role !== "tool") history.push({ type: "model", response: [] });
  return history;
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
