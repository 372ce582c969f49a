/**
 * A conversation's memory as pure functions over ConversationState: what a turn adds,
 * how the history is trimmed to its token budget, how a prompt is built from it, and how
 * a replayed request is recognised and where its terminal event is kept. No I/O here;
 * worker/turn.ts does the writing, worker/replay.ts the reading back.
 */
import {
  APPLIED_WINDOW,
  requestIdDigest,
  type AppliedEntry,
  type PastAppliedEntry,
  type ConversationState,
  type FinalSummary,
  type MemoryMessage,
} from "../contracts/records/memory.js";
import { SCHEMA_VERSION } from "../contracts/records/fields.js";
import type { ErrorEvent, FinalEvent } from "../contracts/records/events.js";
import type { HistoryMessage } from "../contracts/records/history.js";
import type { EventPosition } from "./event-writer.js";
import type { ChatMessage } from "./generator.js";

export function newConversation(conversationId: string, tenant: string, now: number, system?: string): ConversationState {
  return {
    v: SCHEMA_VERSION,
    type: "conversation",
    conversation_id: conversationId,
    tenant,
    ...(system === undefined ? {} : { system }),
    messages: [],
    applied: [],
    turns: 0,
    created_at: now,
    updated_at: now,
  };
}

/**
 * The entry of `requestId` when this state already applied it (an older, compact entry
 * given back whole: its request id and where its terminal event is); `newest` when it is
 * the last one applied.
 */
export function appliedEntry(state: ConversationState | undefined, requestId: string): { entry: AppliedEntry; newest: boolean } | undefined {
  if (!state) return undefined;
  const digest = requestIdDigest(requestId);
  const i = state.applied.findIndex((a) => (Array.isArray(a) ? a[0] === digest : a.request_id === requestId));
  if (i < 0) return undefined;
  const found = state.applied[i]!;
  const entry: AppliedEntry = Array.isArray(found)
    ? { request_id: requestId, events: { partition: found[1], offset: found[2] }, ...(found[3] === 1 && { exact: true as const }) }
    : found;
  return { entry, newest: i === state.applied.length - 1 };
}

/**
 * Where a request being applied stands on chat.events, and what the worker knows of the
 * requests before it (what recordApplied needs to keep every entry small).
 */
export interface AppliedContext {
  /** The first event this request's attempt wrote: its terminal event follows it. */
  readonly events: EventPosition;
  /** Where a request's final landed, when this worker sent it (and still remembers). */
  finalAt(requestId: string): EventPosition | undefined;
}

/**
 * The newest entry's terminal event as stored: a final without the reply (and the choices'
 * replies) that `heldReply`, the assistant message of the request's history record, holds
 * already; an error whole.
 */
export function summarizeFinal(final: FinalEvent | ErrorEvent, heldReply: string | undefined): FinalSummary | ErrorEvent {
  if (final.type === "error" || heldReply === undefined || heldReply === "") return final;
  const { reply, choices, ...rest } = final;
  return {
    ...rest,
    ...(reply === heldReply ? {} : { reply }),
    ...(choices === undefined ? {} : { choices: choices.map(({ reply: r, ...c }) => ({ ...c, ...(r === heldReply ? {} : { reply: r }) })) }),
  };
}

/** True when a stored final lacks text that its history record holds. */
export function needsHeldReply(final: FinalSummary | ErrorEvent): final is FinalSummary {
  return final.type === "final" && (final.reply === undefined || (final.choices ?? []).some((c) => c.reply === undefined));
}

/** A stored final made whole again with the history record's assistant message. */
export function fillFinal(final: FinalSummary, heldReply: string): FinalEvent {
  const { reply, choices, ...rest } = final;
  return {
    ...rest,
    reply: reply ?? heldReply,
    ...(choices === undefined ? {} : { choices: choices.map((c) => ({ ...c, reply: c.reply ?? heldReply })) }),
  };
}

/** A message a turn brings before its news (TurnRequest.prelude): never a system message. */
export interface PreludeMessage {
  role: "user" | "assistant" | "tool";
  content: string;
  tool_calls?: MemoryMessage["tool_calls"];
  tool_call_id?: string;
}

/** A prelude as memory messages of the request that brought it. */
export function preludeMemory(prelude: readonly PreludeMessage[] | undefined, requestId: string, now: number): MemoryMessage[] {
  return (prelude ?? []).map((m) => ({
    role: m.role,
    content: m.content,
    ...(m.tool_calls === undefined ? {} : { tool_calls: m.tool_calls }),
    ...(m.tool_call_id === undefined ? {} : { tool_call_id: m.tool_call_id }),
    request_id: requestId,
    at: now,
  }));
}

/** A turn's tool results: they answer the tool calls of the conversation's last reply. */
export interface ToolResult {
  tool_call_id: string;
  content: string;
}

/**
 * The prompt of a turn: system prompt, remembered messages (with their tool calls and
 * results), then the new user message, or the tool results that are this turn's news.
 */
export function promptFor(state: ConversationState, userContent: string, defaultSystem: string, toolResults?: readonly ToolResult[]): ChatMessage[] {
  const system = state.system ?? defaultSystem;
  return [
    ...(system ? [{ role: "system" as const, content: system }] : []),
    ...state.messages.map((m): ChatMessage => ({
      role: m.role,
      content: m.content,
      ...(m.tool_calls === undefined ? {} : { tool_calls: m.tool_calls }),
      ...(m.tool_call_id === undefined ? {} : { tool_call_id: m.tool_call_id }),
    })),
    ...(userContent ? [{ role: "user" as const, content: userContent }] : []),
    ...(toolResults ?? []).map((r): ChatMessage => ({ role: "tool", content: r.content, tool_call_id: r.tool_call_id })),
  ];
}

/**
 * The memory budget: the remembered messages never carry more than `maxTokens`; once they
 * would, the oldest are dropped down to `trimToTokens` (at most `maxTokens`) in one go
 * (WorkerConfig.memory: MEMORY_MAX_TOKENS and MEMORY_TRIM_TO_PERCENT of it).
 */
export interface MemoryBudget {
  readonly maxTokens: number;
  readonly trimToTokens: number;
}

/**
 * Keeps the messages whole while their tokens fit `budget.maxTokens`; past it, drops the
 * oldest whole messages until what is left fits `budget.trimToTokens`. Trimming below the
 * budget (a low watermark) keeps the remembered history, the start of every prompt, the
 * same for the next few turns, so the slot's KV cache keeps matching it and only a turn's
 * new tokens are evaluated; trimming just to fit would change the prompt's start, and
 * evaluate the whole history again, on every turn once the budget is reached. The newest
 * exchange is kept whenever it fits the budget, even when it alone passes the watermark.
 * A user message and the reply after it go together, so the history never starts with a
 * reply to a question it no longer holds (the greeting, which answers nothing, may stay alone).
 */
export function trimToBudget(messages: readonly MemoryMessage[], budget: MemoryBudget, countTokens: (text: string) => number): MemoryMessage[] {
  const counts = messages.map((m) => countTokens(m.tool_calls ? m.content + JSON.stringify(m.tool_calls) : m.content));
  let total = counts.reduce((a, b) => a + b, 0);
  if (total <= budget.maxTokens) return [...messages];
  const target = Math.min(budget.maxTokens, budget.trimToTokens);
  // The newest exchange stays when it fits the budget, even if it alone passes the watermark.
  let newest = messages.length - 1;
  while (newest >= 0 && messages[newest]!.role !== "user") newest--;
  let start = 0;
  while (total > target && start < messages.length) {
    if (start >= newest && newest >= 0 && total <= budget.maxTokens) break;
    total -= counts[start]!;
    start++;
    // Don't leave a reply whose question was just dropped at the front.
    if (messages[start - 1]!.role === "user" && messages[start]?.role === "assistant") {
      total -= counts[start]!;
      start++;
    }
    // Nor tool results whose calls were just dropped.
    while (messages[start]?.role === "tool") {
      total -= counts[start]!;
      start++;
    }
  }
  return messages.slice(start);
}

/** A turn that has run (completed, cancelled or failed), as it goes into the state and the history. */
export interface CompletedTurn {
  requestId: string;
  userContent: string;
  /** The reply as generated (partial when cancelled); empty replies are not remembered. */
  reply: string;
  final: FinalEvent | ErrorEvent;
  now: number;
  system?: string;
  /** The tool results this turn brought instead of a user message. */
  toolResults?: readonly ToolResult[];
  /** Messages the request brought before its news (TurnRequest.prelude). */
  prelude?: readonly PreludeMessage[];
  /** The calls the reply made. */
  toolCalls?: FinalEvent["tool_calls"];
  /** Where the turn's events are (see recordApplied). */
  applied: AppliedContext;
}

/**
 * The state after a turn: the user message and the reply appended (a cancelled turn keeps
 * what was generated until the cancel, since the user saw it), trimmed, and the request
 * recorded as applied. A failed turn is recorded as applied but adds no messages.
 */
export function applyTurn(state: ConversationState, turn: CompletedTurn, budget: MemoryBudget, countTokens: (text: string) => number): ConversationState {
  const added: MemoryMessage[] =
    turn.final.type === "error"
      ? []
      : [
          ...preludeMemory(turn.prelude, turn.requestId, turn.now),
          ...(turn.userContent ? [{ role: "user" as const, content: turn.userContent, request_id: turn.requestId, at: turn.now }] : []),
          ...(turn.toolResults ?? []).map((r) => ({
            role: "tool" as const,
            content: r.content,
            tool_call_id: r.tool_call_id,
            request_id: turn.requestId,
            at: turn.now,
          })),
          ...(turn.reply || turn.toolCalls
            ? [
                {
                  role: "assistant" as const,
                  content: turn.reply,
                  ...(turn.toolCalls ? { tool_calls: turn.toolCalls } : {}),
                  request_id: turn.requestId,
                  at: turn.now,
                },
              ]
            : []),
        ];
  return {
    ...state,
    ...(turn.system === undefined ? {} : { system: turn.system }),
    messages: trimToBudget([...state.messages, ...added], budget, countTokens),
    // The history record this turn writes holds the reply whenever turnHistory includes it.
    applied: recordApplied(state, turn.requestId, turn.final, turn.final.type !== "error" && turn.reply ? turn.reply : undefined, turn.applied),
    turns: state.turns + 1,
    updated_at: turn.now,
  };
}

/**
 * Records a request as applied, keeping the last APPLIED_WINDOW entries, each small: the
 * new (newest) one keeps its terminal event as summarizeFinal makes it (`heldReply`: the
 * assistant message its history record holds), in case its final is never sent; the one
 * before it gives its event up for the exact offset of its final when this worker sent it
 * (else its lower bound).
 */
export function recordApplied(
  state: ConversationState,
  requestId: string,
  final: FinalEvent | ErrorEvent,
  heldReply: string | undefined,
  at: AppliedContext,
): ConversationState["applied"] {
  const older = state.applied.map((a): PastAppliedEntry => {
    if (Array.isArray(a)) return a;
    const digest = requestIdDigest(a.request_id);
    const sent = at.finalAt(a.request_id);
    if (sent) return [digest, sent.partition, sent.offset, 1];
    return [digest, a.events.partition, a.events.offset, a.exact ? 1 : 0];
  });
  const entry: AppliedEntry = {
    request_id: requestId,
    events: { partition: at.events.partition, offset: at.events.offset },
    final: summarizeFinal(final, heldReply),
  };
  return [...older, entry].slice(-APPLIED_WINDOW);
}

/** The state of a conversation opened with the greeting as its first message. */
export function openConversation(
  conversationId: string,
  tenant: string,
  now: number,
  options: { greeting: string | null; system?: string; metadata?: Record<string, string> },
): ConversationState {
  const state = newConversation(conversationId, tenant, now, options.system);
  if (options.greeting) state.messages.push({ role: "assistant", content: options.greeting, at: now });
  if (options.metadata !== undefined) state.metadata = options.metadata;
  return state;
}

/** An item to delete: the history message at `index`, which `request_id` added with this role and content. */
export interface HiddenItem {
  index: number;
  request_id: string;
  role: "system" | "user" | "assistant";
  content: string;
}

/**
 * The state after an update (OpenAI's Conversations API): its metadata replaced, and/or
 * an item deleted: its history index joins `hidden` (every history read leaves it out) and
 * the memory forgets the message it is, found by its request, role and content (a system
 * item is a past change of system prompt: nothing in the memory to forget).
 */
export function applyUpdate(
  state: ConversationState,
  update: { requestId: string; metadata?: Record<string, string>; hide?: HiddenItem; final: FinalEvent | ErrorEvent; now: number; applied: AppliedContext },
): ConversationState {
  const hide = update.hide;
  const forgotten = hide
    ? state.messages.findIndex((m) => (m.request_id === hide.request_id || m.request_id === undefined) && m.role === hide.role && m.content === hide.content)
    : -1;
  return {
    ...state,
    ...(update.metadata === undefined ? {} : { metadata: update.metadata }),
    messages: forgotten < 0 ? state.messages : state.messages.filter((_, i) => i !== forgotten),
    ...(hide === undefined ? {} : { hidden: [...new Set([...(state.hidden ?? []), hide.index])].sort((a, b) => a - b) }),
    applied: recordApplied(state, update.requestId, update.final, undefined, update.applied),
    updated_at: update.now,
  };
}

/**
 * What a turn adds to the history: a changed system prompt, the user's message and the
 * reply (a failed turn adds only the system change; tool calls and results stay in memory).
 */
export function turnHistory(before: ConversationState | undefined, turn: CompletedTurn): HistoryMessage[] {
  const failed = turn.final.type === "error";
  return [
    ...(turn.system !== undefined && turn.system !== before?.system ? [{ role: "system" as const, content: turn.system }] : []),
    // The history keeps text: a prelude's tool calls and results stay in the memory only, as a turn's own do.
    ...(failed ? [] : (turn.prelude ?? []).flatMap((m) => (m.role !== "tool" && m.content ? [{ role: m.role, content: m.content }] : []))),
    ...(!failed && turn.userContent ? [{ role: "user" as const, content: turn.userContent }] : []),
    ...(!failed && turn.reply ? [{ role: "assistant" as const, content: turn.reply }] : []),
  ];
}

/** What opening a conversation adds to the history: its system prompt and greeting. */
export function openHistory(system: string | undefined, greeting: string | null): HistoryMessage[] {
  return [
    ...(system === undefined ? [] : [{ role: "system" as const, content: system }]),
    ...(greeting ? [{ role: "assistant" as const, content: greeting }] : []),
  ];
}

/**
 * The state after appending messages without a reply (POST /history): a system message
 * replaces the system prompt, the others join the memory (trimmed), and the request is
 * recorded as applied.
 */
export function applyAppend(
  state: ConversationState,
  append: { requestId: string; messages: readonly HistoryMessage[]; final: FinalEvent | ErrorEvent; now: number; applied: AppliedContext },
  budget: MemoryBudget,
  countTokens: (text: string) => number,
): ConversationState {
  let system = state.system;
  const added: MemoryMessage[] = [];
  for (const m of append.messages) {
    if (m.role === "system") system = m.content;
    else added.push({ role: m.role, content: m.content, request_id: append.requestId, at: append.now });
  }
  return {
    ...state,
    ...(system === undefined ? {} : { system }),
    messages: trimToBudget([...state.messages, ...added], budget, countTokens),
    // An append's final has an empty reply: nothing to leave out.
    applied: recordApplied(state, append.requestId, append.final, undefined, append.applied),
    turns: state.turns + 1,
    updated_at: append.now,
  };
}
