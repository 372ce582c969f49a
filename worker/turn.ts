/**
 * A worker's turn, from record to commit. Everything a turn does is in runTurn; the
 * helpers below each do one step:
 *
 *   decode ─▶ restore ─▶ already applied? ─▶ re-announce its final ─▶ commit
 *                              │ no
 *                              ▼
 *          build prompt ─▶ generate & stream ─▶ write memory ─▶ final event ─▶ commit
 *
 * Exactly once: the memory state records the requests it has applied with their final
 * events, and is written before the final event and the commit. A worker that dies before
 * the memory write leaves the request to the next owner, which runs it again (a new
 * attempt); one that dies after it leaves a request the next owner finds applied, and
 * re-announces instead of generating again. Clients see one final per request.
 *
 * Fencing without transactions: the worker that owns a partition is the only writer of
 * its memory partition, so before it reads a conversation it catches up with anything
 * another worker wrote there, and right before it writes it checks that nobody has
 * (memory.isCurrent). A worker that woke from a freeze after its partition moved on thus
 * re-announces its successor's answer, or stops, instead of answering a second time.
 */
import type { KafkaMessage, Producer } from "kafkajs";
import type { WorkerConfig } from "../contracts/config.js";
import { KafkaLlmError } from "../contracts/errors.js";
import {
  chatRequestSchema,
  decodeRecord,
  encodeRecord,
  type ChatEvent,
  type ConversationState,
  type DeleteRequest,
  type ErrorEvent,
  type FinalEvent,
  type OpenRequest,
  type TurnRequest,
} from "../contracts/records.js";
import type { TopicNames } from "../contracts/topics.js";
import type { Logger } from "../platform/logger.js";
import { stopCauseOf, type Cancellations } from "./cancellations.js";
import { appliedResult, applyTurn, newConversation, openConversation, promptFor, recordApplied } from "./conversation.js";
import { generateChoices } from "./choices.js";
import { deadLetter } from "./dead-letter.js";
import { DeltaBatcher } from "./delta-batcher.js";
import { ToolCallStream, stableCallId } from "./tool-call-stream.js";
import { EventWriter } from "./event-writer.js";
import type { ChatMessage, GenerateResult, SequenceGenerator } from "./generator.js";
import type { MemoryStore } from "./memory-store.js";
import type { WorkerMetrics } from "./metrics.js";
import type { SlotPool } from "./slot-pool.js";

export interface TurnContext {
  readonly config: WorkerConfig;
  readonly topics: TopicNames;
  readonly producer: Producer;
  readonly memory: MemoryStore;
  readonly slots: SlotPool<SequenceGenerator>;
  readonly cancellations: Cancellations;
  readonly metrics: WorkerMetrics;
  readonly logger: Logger;
  /** Tokens of a text with the model's tokenizer (for the memory budget). */
  countTokens(text: string): number;
}

export interface TurnRecord {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  /** Commits this record's offset; called once the turn's effects are written. */
  commit(): Promise<void>;
  /** Has the record fetched again instead of moving past it (an interrupted turn). */
  requeue(): void;
  /** Aborts when the worker lost this partition mid-turn: nothing may be written then. */
  readonly revoked?: AbortSignal;
}

/** `interrupted`: stopped by shutdown or a lost partition; left uncommitted for the next owner. */
export type TurnOutcome = "completed" | "cancelled" | "failed" | "dead_lettered" | "replayed" | "interrupted";

/**
 * Runs one record of chat.requests. Throws only when Kafka cannot take the turn's writes;
 * the record is then left uncommitted and the consumer retries it.
 */
export async function runTurn(record: TurnRecord, ctx: TurnContext): Promise<TurnOutcome> {
  const decoded = decodeRecord(chatRequestSchema, record.message.value);
  if (!decoded.ok) {
    await deadLetter(ctx.producer, ctx.topics.deadLetter, record, decoded.reason, ctx.config.workerId);
    // The log keeps the reason without the values it may quote; the dead letter has it whole.
    const reason = decoded.reason.replace(/, received '[^']*'/g, "");
    ctx.logger.warn({ partition: record.partition, offset: record.message.offset, reason }, "dead-lettered request");
    ctx.metrics.deadLettered.inc();
    return finish("dead_lettered", record, ctx);
  }
  const request = decoded.value;
  const log = ctx.logger.child({ request_id: request.request_id, conversation_id: request.conversation_id });

  await ctx.memory.ready(record.partition);
  await ctx.memory.catchUp(record.partition);
  const state = ctx.memory.get(record.partition, request.conversation_id);

  const applied = appliedResult(state, request.request_id);
  if (applied) {
    await reannounce(ctx.producer, ctx.topics.events, applied);
    log.info({ offset: record.message.offset }, "request already applied: re-announced its final event");
    return finish("replayed", record, ctx);
  }

  const startedAt = Date.now();
  const events = new EventWriter(ctx.producer, ctx.topics.events, request, `${ctx.config.workerId}.${startedAt.toString(36)}`);
  events.write({ type: "start", worker_id: ctx.config.workerId });
  log.info({ type: request.type, partition: record.partition, offset: record.message.offset }, "request started");

  if (state && state.tenant !== request.tenant) {
    // Another tenant's conversation: answer as if it did not exist, change nothing.
    events.write({ type: "error", code: "not_found", message: `no conversation ${request.conversation_id}`, retryable: false });
    await events.settle();
    return finish("failed", record, ctx);
  }

  let outcome: TurnOutcome;
  switch (request.type) {
    case "open":
      outcome = await open(request, state, record.partition, events, ctx);
      break;
    case "delete":
      outcome = await remove(request, record.partition, events, ctx);
      break;
    case "turn":
      outcome = await chatTurn(request, state, record, events, ctx, startedAt);
      break;
  }
  if (outcome === "interrupted") {
    log.info("turn interrupted; left uncommitted for the next owner");
    record.requeue();
    ctx.metrics.requests.inc({ outcome });
    return outcome;
  }
  await events.settle();
  ctx.metrics.turnDuration.observe((Date.now() - startedAt) / 1000);
  log.info({ outcome, events: events.eventsWritten, turn_ms: Date.now() - startedAt }, "request done");
  return finish(outcome, record, ctx);
}

async function finish(outcome: TurnOutcome, record: TurnRecord, ctx: TurnContext): Promise<TurnOutcome> {
  await record.commit();
  ctx.metrics.requests.inc({ outcome });
  return outcome;
}

/** A user turn: prompt from memory (or the request's own context), generate, remember. */
async function chatTurn(
  request: TurnRequest,
  state: ConversationState | undefined,
  record: TurnRecord,
  events: EventWriter,
  ctx: TurnContext,
  startedAt: number,
): Promise<TurnOutcome> {
  const stateless = request.context !== undefined;
  const conversation = state ?? newConversation(request.conversation_id, request.tenant, startedAt, request.system);
  const prompt: ChatMessage[] = stateless
    ? [...request.context!, ...(request.content ? [{ role: "user" as const, content: request.content }] : [])]
    : promptFor({ ...conversation, ...(request.system === undefined ? {} : { system: request.system }) }, request.content, ctx.config.memory.systemPrompt, request.tool_results);

  const signal = ctx.cancellations.start(request.request_id, request.tenant);
  const stop = record.revoked ? AbortSignal.any([signal, record.revoked]) : signal;
  let generated: Generated;
  let cancelLatencyMs: number | null = null;
  try {
    generated = (request.params?.n ?? 1) > 1 ? await choicesOf(request, prompt, events, stop, ctx) : await generateStreaming(request, prompt, events, stop, ctx);
  } finally {
    cancelLatencyMs = ctx.cancellations.finish(request.request_id);
  }
  if (cancelLatencyMs !== null) {
    ctx.metrics.cancelLatency.observe(cancelLatencyMs / 1000);
    ctx.logger.info({ request_id: request.request_id, cancel_latency_ms: Math.round(cancelLatencyMs) }, "generation cancelled");
  }
  const cause = stopCauseOf(stop);
  if (record.revoked?.aborted || cause?.kind === "shutdown") return "interrupted";

  const queueWaitMs = Math.max(0, startedAt - request.created_at);
  const final = terminalEvent(events, generated, queueWaitMs);
  if (!stateless) {
    if (!(await ctx.memory.isCurrent(record.partition))) return "interrupted";
    const next = applyTurn(
      conversation,
      {
        requestId: request.request_id,
        userContent: request.content,
        reply: generated.ok ? generated.result.reply : "",
        final,
        now: Date.now(),
        ...(request.system === undefined ? {} : { system: request.system }),
        ...(request.tool_results === undefined ? {} : { toolResults: request.tool_results }),
        ...(generated.ok && generated.result.toolCalls ? { toolCalls: generated.result.toolCalls } : {}),
      },
      ctx.config.memory.maxTokens,
      ctx.countTokens,
    );
    await ctx.memory.put(record.partition, request.conversation_id, next);
  }
  events.send(final);
  ctx.metrics.queueWait.observe(queueWaitMs / 1000);
  if (final.type === "error") return "failed";
  return final.stop_reason === "cancelled" ? "cancelled" : "completed";
}

type Generated = { ok: true; result: GenerateResult } | { ok: false; error: KafkaLlmError };

/** Generates on a slot, streaming deltas; never throws for a generation failure. */
async function generateStreaming(
  request: TurnRequest,
  prompt: ChatMessage[],
  events: EventWriter,
  signal: AbortSignal,
  ctx: TurnContext,
): Promise<Generated> {
  const batcher = new DeltaBatcher({
    flushMs: ctx.config.stream.flushMs,
    maxChars: ctx.config.stream.maxChars,
    emit: (text) => events.write({ type: "delta", text }),
  });
  const toolCalls = new ToolCallStream(events, ctx.config.stream);
  const slot = await ctx.slots.acquire(request.conversation_id);
  ctx.metrics.activeGenerations.inc();
  try {
    const result = await slot.generator.generate({
      messages: prompt,
      params: request.params ?? {},
      defaultMaxTokens: ctx.config.generation.defaultMaxTokens,
      signal,
      onText: (text) => batcher.push(text),
      onToolCall: (fragment) => {
        batcher.flush();
        toolCalls.push(fragment);
      },
      toolCallId: stableCallId(request.request_id, 0),
    });
    batcher.flush();
    toolCalls.flush();
    ctx.metrics.promptTokens.inc(result.promptTokens - result.cachedPromptTokens);
    ctx.metrics.generatedTokens.inc(result.completionTokens);
    ctx.metrics.timeToFirstToken.observe(result.timeToFirstTokenMs / 1000);
    return { ok: true, result };
  } catch (err) {
    batcher.flush();
    toolCalls.flush();
    ctx.slots.forget(request.conversation_id);
    const error = err instanceof KafkaLlmError ? err : new KafkaLlmError("generation_failed", String(err), { cause: err });
    ctx.logger.warn({ request_id: request.request_id, code: error.code, err: error.message }, "generation failed");
    return { ok: false, error };
  } finally {
    ctx.metrics.activeGenerations.dec();
    ctx.slots.release(slot);
  }
}

/** n > 1 (worker/choices.ts), as a Generated: never throws for a generation failure. */
async function choicesOf(request: TurnRequest, prompt: ChatMessage[], events: EventWriter, signal: AbortSignal, ctx: TurnContext): Promise<Generated> {
  try {
    return { ok: true, result: await generateChoices(request, prompt, events, signal, ctx) };
  } catch (err) {
    const error = err instanceof KafkaLlmError ? err : new KafkaLlmError("generation_failed", String(err), { cause: err });
    ctx.logger.warn({ request_id: request.request_id, code: error.code, err }, "generation failed");
    return { ok: false, error };
  }
}

function terminalEvent(events: EventWriter, generated: Generated, queueWaitMs: number): FinalEvent | ErrorEvent {
  if (!generated.ok) {
    const { error } = generated;
    return events.next({ type: "error", code: error.code, message: error.message, retryable: error.retryable });
  }
  const r = generated.result;
  return events.next({
    type: "final",
    reply: r.reply,
    stop_reason: r.stopReason,
    ...(r.toolCalls === undefined ? {} : { tool_calls: r.toolCalls }),
    ...(r.choices === undefined ? {} : { choices: r.choices }),
    usage: { prompt_tokens: r.promptTokens, cached_prompt_tokens: r.cachedPromptTokens, completion_tokens: r.completionTokens },
    timings: {
      queue_wait_ms: queueWaitMs,
      time_to_first_token_ms: round(r.timeToFirstTokenMs),
      generation_ms: round(r.generationMs),
    },
  });
}

/** Opens a conversation with the greeting (when asked) as its first message. */
async function open(
  request: OpenRequest,
  state: ConversationState | undefined,
  partition: number,
  events: EventWriter,
  ctx: TurnContext,
): Promise<TurnOutcome> {
  const now = Date.now();
  const greeting = request.greeting && !state ? ctx.config.memory.greeting : null;
  const final = events.next(emptyFinal(greeting ?? ""));
  if (!(await ctx.memory.isCurrent(partition))) return "interrupted";
  const base = state ?? openConversation(request.conversation_id, request.tenant, now, {
    greeting,
    ...(request.system === undefined ? {} : { system: request.system }),
  });
  await ctx.memory.put(partition, request.conversation_id, { ...base, applied: recordApplied(base, request.request_id, final), updated_at: now });
  events.send(final);
  return "completed";
}

/** Deletes a conversation: a tombstone in chat.memory. */
async function remove(request: DeleteRequest, partition: number, events: EventWriter, ctx: TurnContext): Promise<TurnOutcome> {
  if (!(await ctx.memory.isCurrent(partition))) return "interrupted";
  await ctx.memory.put(partition, request.conversation_id, null);
  ctx.slots.forget(request.conversation_id);
  events.write(emptyFinal(""));
  return "completed";
}

function emptyFinal(reply: string) {
  return {
    type: "final" as const,
    reply,
    stop_reason: "stop" as const,
    usage: { prompt_tokens: 0, cached_prompt_tokens: 0, completion_tokens: 0 },
    timings: { queue_wait_ms: 0, time_to_first_token_ms: 0, generation_ms: 0 },
  };
}

/** Sends a stored terminal event again, unchanged, so gateways that missed it learn the end. */
async function reannounce(producer: Producer, topic: string, event: ChatEvent): Promise<void> {
  await producer.send({ topic, acks: -1, messages: [{ key: event.conversation_id, value: encodeRecord(event) }] });
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
