/**
 * A worker's handling of one chat.requests record, from record to commit: a chat turn,
 * or opening, appending to or deleting a conversation. Everything it does is in
 * runRequest; the helpers below each do one step:
 *
 *   decode ─▶ load ─▶ already applied? ─▶ re-announce its terminal event (worker/replay.ts) ─▶ commit
 *                              │ no
 *                              ▼
 *          build prompt ─▶ generate & stream ─▶ write history ─▶ write memory ─▶ final event ─▶ commit
 *                                   │ partition given up, drain bound passed
 *                                   ▼
 *                        hand the partial reply over (memory log), left uncommitted
 *
 * Exactly once: the memory state records the requests it has applied and where their
 * terminal events are on chat.events (the newest one keeps its final, as a summary whose
 * reply is in its history record), and is written before the final event and the commit.
 * A worker that dies before the memory write leaves the request to the next owner, which
 * runs it again (a new attempt); one that dies after it leaves a request the next owner
 * finds applied, and re-announces instead of generating again: the newest request's final
 * from the state, an older one's from chat.events, or `already_applied` once chat.events
 * no longer holds it. Clients see one final per request.
 *
 * History: the messages a request adds go to chat.history first, then the memory record
 * that points at them (the chain's head); a record no memory record reaches is never read,
 * so a re-run request adds its messages once (worker/history-writer.ts).
 *
 * Fencing without transactions: the worker that owns a partition is the only writer of
 * its memory partition, so loading a conversation catches up with anything another worker
 * wrote there, and the memory record says at which offset it must land, counting only if
 * it lands there (memory.writeIfOwner). A worker that woke from a freeze after its
 * partition moved on thus re-announces its successor's answer, or stops, instead of
 * answering a second time.
 *
 * Graceful moves: a turn whose partition is being given up (a scale event, a SIGTERM) is
 * left to finish within the drain bound. Past it, generation stops at a token boundary and
 * the reply so far is handed to the next owner through the memory log, which continues it
 * under the same attempt (its events numbered on), so the client sees one reply.
 */
import type { WorkerConfig } from "../contracts/config/worker.js";
import { KafkaLlmError } from "../contracts/errors.js";
import { passOn, placeRequest } from "./move.js";
import { conversationKey } from "../contracts/conversation-key.js";
import { SCHEMA_VERSION } from "../contracts/records/fields.js";
import {
  chatRequestSchema,
  type ChatRequest,
  type AppendRequest,
  type DeleteRequest,
  type OpenRequest,
  type TurnRequest,
  type UpdateRequest,
} from "../contracts/records/requests.js";
import { MAX_HIDDEN_ITEMS } from "../contracts/limits.js";
import { decodeRecord, type ParseResult } from "../contracts/records/codec.js";
import type { ConversationState, Handover } from "../contracts/records/memory.js";
import type { ErrorEvent, FinalEvent } from "../contracts/records/events.js";
import type { TopicNames } from "../contracts/topics.js";
import { keyPartition } from "../platform/kafka/partitioner.js";
import { ProducerFenced, TransactionAborted, type RecordSink } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";
import { stopCauseOf, type Cancellations } from "./cancellations.js";
import {
  appliedEntry,
  applyAppend,
  applyTurn,
  applyUpdate,
  newConversation,
  openConversation,
  openHistory,
  preludeMemory,
  promptFor,
  recordApplied,
  turnHistory,
  type AppliedContext,
  type CompletedTurn,
  type PreludeMessage,
} from "./conversation.js";
import { failureKind } from "./attempts.js";
import { generateChoices } from "./choices.js";
import { deadLetterRequest } from "./dead-letter.js";
import { DeltaBatcher } from "./delta-batcher.js";
import { ToolCallStream, stableCallId } from "./tool-call-stream.js";
import { EventWriter, eventsPartitionOf, type EventPosition } from "./event-writer.js";
import { storedTerminal, type FinalPositions, type ReplaySources } from "./replay.js";
import type { ChatMessage, GenerateResult, SlotGenerator } from "./generator.js";
import type { HistoryPort } from "./history-writer.js";
import type { MemoryStore } from "./memory-store.js";
import type { WorkerMetrics } from "./metrics.js";
import { adapterOf, slotOwner, type SlotPool } from "./slot-pool.js";
import type { RequestRecord, RevokeCause } from "./turn-scheduler.js";
import { TurnPhases } from "./turn-phases.js";
import { NO_TRACE, startTurnTrace, type TurnTrace, type TurnTraceOptions } from "./turn-trace.js";

export interface TurnContext {
  readonly config: WorkerConfig;
  readonly topics: TopicNames;
  /** Where events, dead letters and re-announcements go (a KafkaProducer; a stand-in in unit tests). */
  readonly producer: RecordSink;
  readonly memory: MemoryPort;
  /** Where the messages a request adds are appended, before the memory record that points at them. */
  readonly history: HistoryPort;
  readonly slots: SlotPool<SlotGenerator>;
  readonly cancellations: Cancellations;
  readonly metrics: WorkerMetrics;
  readonly logger: Logger;
  /** Tokens of a text with the model's tokenizer (for the memory budget). */
  countTokens(text: string): number;
  /** Where a replayed request's terminal event is read back from (chat.events, chat.history). */
  readonly replay: ReplaySources;
  /** Where the finals this worker sent landed (bounded), for the next entry's exact offset. */
  readonly finals: FinalPositions;
  /** What the turn's spans name (worker/turn-trace.ts); none: no spans (unit tests). */
  readonly trace?: TurnTraceOptions;
}

/** What a turn asks of the state store: the two verbs of a conversation, and the handover's. */
export type MemoryPort = Pick<MemoryStore, "load" | "writeIfOwner" | "handOver" | "clearHandover" | "committed" | "forget">;

export interface TurnRecord extends RequestRecord {
  /** The record is done: commits its partition up to its lowest record not done (worker/turn-scheduler.ts); called once the turn's effects are written. */
  commit(): Promise<void>;
  /**
   * With WORKER_TRANSACTIONS: runs `work` in a Kafka transaction that also commits the
   * record's partition, this record counted done, at the group's current generation (see
   * writeTurn); `onCommitted` runs once it committed, before the worker's next transaction
   * begins. Throws ProducerFenced when the group has replaced this worker,
   * TransactionAborted otherwise.
   */
  transaction?<T>(work: (sink: RecordSink) => Promise<T>, onCommitted?: () => void): Promise<T>;
  /**
   * Aborts (reason: RevokeCause) when the partition is being given up: `handover` once the
   * drain bound has passed (stop, hand the reply over), `lost` when it already moved on
   * (stop, write nothing).
   */
  readonly revoke: AbortSignal;
}

/**
 * How a turn ended. Left uncommitted for the partition's next owner: `handed_over` (its
 * partial reply is in the memory log) and `lost`. `retry`: another worker wrote this
 * partition's memory since this one loaded it; the scheduler runs the record again, which
 * then finds what that worker applied.
 */
export type TurnOutcome = "completed" | "cancelled" | "failed" | "dead_lettered" | "replayed" | "passed" | "handed_over" | "lost" | "retry";

/**
 * Runs one record of chat.requests. Throws only when Kafka cannot take the turn's writes;
 * the record is then left uncommitted and the scheduler runs it again.
 */
export async function runRequest(record: TurnRecord, ctx: TurnContext): Promise<TurnOutcome> {
  const trace = ctx.trace ? startTurnTrace(record, ctx.trace) : NO_TRACE;
  try {
    const outcome = await runTraced(record, ctx, trace);
    trace.end(outcome);
    return outcome;
  } catch (err) {
    // Kafka refused a write: the record is left uncommitted and runs again.
    trace.end("error", err as Error);
    throw err;
  }
}

async function runTraced(record: TurnRecord, ctx: TurnContext, trace: TurnTrace): Promise<TurnOutcome> {
  const decoded = requestOf(record, ctx.config.kafka.requestPartitions);
  if (!decoded.ok) {
    await deadLetterRequest(record, { reason: "invalid_record", detail: decoded.reason }, ctx);
    return commitTurn("dead_lettered", record, ctx);
  }
  const request = decoded.value;
  trace.request(request);
  const key = conversationKey(request);
  const log = ctx.logger.child({ request_id: request.request_id, tenant: request.tenant, conversation_id: request.conversation_id });

  const phases = new TurnPhases(
    (phase, seconds) => ctx.metrics.turnPhase.observe({ phase }, seconds),
    trace === NO_TRACE ? undefined : (phase, start, end) => trace.phase(phase, start, end),
  );
  const loaded = await ctx.memory.load(record.partition, key, request.request_id);
  const { handover, restored } = loaded;
  if (restored) trace.restored();
  phases.mark("load");
  // The conversation may be in another pool, or move there with this turn (worker/move.ts).
  const placement = placeRequest(request, loaded.state, ctx.config.pool.name);
  if (placement.kind === "pass") {
    await passOn(ctx.producer, ctx.config.kafka.topicPrefix, placement.pool, placement.request, trace.headers);
    if (placement.marker && !(await ctx.memory.writeIfOwner(record.partition, key, placement.marker))) return "retry";
    log.info({ to_pool: placement.pool, moved: placement.marker !== undefined }, "request passed on to the pool the conversation is in");
    ctx.metrics.requests.inc({ outcome: "passed" });
    return commitTurn("passed", record, ctx);
  }
  const state = placement.state;

  const eventsPartition = eventsPartitionOf(request, ctx.config.kafka.eventPartitions, log);
  const found = appliedEntry(state, request.request_id);
  if (state && found) {
    const stored = await storedTerminal(state, found, ctx.replay);
    if (stored.ok) {
      const at = await reannounce(ctx.producer, ctx.topics.events, key, stored.value, eventsPartition);
      if (at) ctx.finals.set(request.request_id, at);
      log.info({ offset: record.offset, newest: found.newest }, "request already applied: re-announced its terminal event");
    } else {
      // Never a second generation: say it was applied, and where its reply is.
      const events = new EventWriter(ctx.producer, ctx.topics.events, request, `${ctx.config.workerId}.${Date.now().toString(36)}`, 0, eventsPartition);
      events.traceHeaders = trace.headers;
      events.write({
        type: "error",
        code: "already_applied",
        message: `request ${request.request_id} was applied; its reply is no longer kept on chat.events and can be read in the conversation's messages`,
        retryable: false,
      });
      await events.settle();
      log.info({ offset: record.offset, why: stored.why }, "request already applied, its terminal event no longer kept: answered already_applied");
    }
    return commitTurn("replayed", record, ctx);
  }

  const startedAt = Date.now();
  const continued = request.type === "turn" ? handover : undefined;
  const events = continued
    ? new EventWriter(ctx.producer, ctx.topics.events, request, continued.attempt, continued.next_seq, eventsPartition)
    : new EventWriter(ctx.producer, ctx.topics.events, request, `${ctx.config.workerId}.${startedAt.toString(36)}`, 0, eventsPartition);
  events.traceHeaders = trace.headers;
  // A continued reply keeps its attempt: no new start event, so the client's reply goes on.
  // Nothing waits for the start: it goes with the first delta, or alone after DELTA_FLUSH_MS.
  if (!continued)
    events.write(
      { type: "start", worker_id: ctx.config.workerId, pool: ctx.config.pool.name, ...modelOf(request, ctx) },
      { holdMs: ctx.config.stream.flushMs },
    );
  log.info(
    { type: request.type, partition: record.partition, offset: record.offset, ...(continued && { continues: continued.worker_id }) },
    continued ? "request continued from a handover" : "request started",
  );

  let outcome: TurnOutcome;
  switch (request.type) {
    case "open":
      outcome = await open(request, state, record, events, ctx);
      break;
    case "append":
      outcome = await append(request, state, record, events, ctx);
      break;
    case "delete":
      outcome = await remove(request, record, events, ctx);
      break;
    case "update":
      outcome = await update(request, state, record, events, ctx);
      break;
    case "turn":
      outcome = await chatTurn(request, state, continued, record, events, ctx, startedAt, phases, trace);
      break;
  }
  if (outcome === "handed_over" || outcome === "lost" || outcome === "retry") {
    await events.settle();
    log.info({ outcome }, outcome === "retry" ? "another worker wrote this partition; running the request again" : "turn left uncommitted for the next owner");
    ctx.metrics.requests.inc({ outcome });
    return outcome;
  }
  await events.settle();
  rememberFinal(request.request_id, events, ctx);
  phases.mark("events");
  ctx.metrics.requestDone((Date.now() - startedAt) / 1000, trace.traceId, request.type === "turn" ? outcome : undefined);
  log.info({ outcome, events: events.eventsWritten, turn_ms: Date.now() - startedAt }, "request done");
  await commitTurn(outcome, record, ctx);
  phases.mark("commit");
  return outcome;
}

/** The model name a request runs under: the one it named, else the pool's (none: the default pool left it to the gateways' MODEL_NAME). */
function modelOf(request: ChatRequest, ctx: TurnContext): { model?: string } {
  const model = request.model ?? ctx.config.pool.modelName;
  return model === undefined ? {} : { model };
}

/**
 * The request a record carries, checked against where it is: its key must be its
 * conversation key and its partition the one the producers' partitioner gives that key, or
 * its memory would be looked for, and written, in a partition that does not hold it.
 */
function requestOf(record: TurnRecord, partitions: number): ParseResult<ChatRequest> {
  const decoded = decodeRecord(chatRequestSchema, record.value);
  if (!decoded.ok) return decoded;
  const key = conversationKey(decoded.value);
  if (record.key?.toString("utf8") !== key) return { ok: false, reason: `key: must be the conversation key "<tenant>/<conversation_id>" (${key})` };
  const expected = keyPartition(key, partitions);
  if (record.partition !== expected) {
    return {
      ok: false,
      reason: `partition: the key's partition is ${expected} of ${partitions} (the Java client's murmur2 partitioner), not ${record.partition}`,
    };
  }
  return decoded;
}

/** Keeps where this request's final landed, for the entry the next request leaves behind. */
function rememberFinal(requestId: string, events: EventWriter, ctx: TurnContext): void {
  const at = events.terminalPosition;
  if (at) ctx.finals.set(requestId, at);
}

/**
 * What recordApplied needs to know about a request being applied: where its events start
 * (its first event, acked; a continued reply that wrote none yet starts at the partition's
 * end, which its final follows), and the finals this worker sent.
 */
async function appliedContext(key: string, events: EventWriter, ctx: TurnContext): Promise<AppliedContext> {
  let first = await events.firstPosition();
  if (!first) {
    const partition = events.partition ?? keyPartition(key, ctx.config.kafka.eventPartitions);
    first = { partition, offset: await ctx.replay.events.end(partition) };
  }
  return { events: first, finalAt: (id) => ctx.finals.get(id) };
}

async function commitTurn(outcome: TurnOutcome, record: TurnRecord, ctx: TurnContext): Promise<TurnOutcome> {
  // A turn written in a transaction committed its offset with it.
  if (!committedInTransaction.has(record)) await record.commit();
  ctx.metrics.requests.inc({ outcome });
  return outcome;
}

/** A user turn: prompt from memory (or the request's own context), generate, remember. */
async function chatTurn(
  request: TurnRequest,
  state: ConversationState | undefined,
  continued: Handover | undefined,
  record: TurnRecord,
  events: EventWriter,
  ctx: TurnContext,
  startedAt: number,
  phases: TurnPhases,
  trace: TurnTrace,
): Promise<TurnOutcome> {
  const stateless = request.context !== undefined;
  const conversation = state ?? newConversation(request.conversation_id, request.tenant, startedAt, request.system);
  const prompt: ChatMessage[] = stateless
    ? [...request.context!, ...(request.content ? [{ role: "user" as const, content: request.content }] : [])]
    : promptFor(
        {
          ...conversation,
          ...(request.system === undefined ? {} : { system: request.system }),
          messages: [...conversation.messages, ...preludeMemory(preludeOf(request), request.request_id, startedAt)],
        },
        request.content,
        ctx.config.memory.systemPrompt,
        request.tool_results,
      );

  const signal = ctx.cancellations.start(request.request_id, request.tenant);
  const stop = AbortSignal.any([signal, record.revoke]);
  let generated: Generated;
  let cancelLatencyMs: number | null;
  try {
    generated =
      (request.params?.n ?? 1) > 1
        ? await choicesOf(request, prompt, events, stop, ctx, trace)
        : await generateStreaming(request, prompt, continued, events, stop, ctx, phases, trace);
  } finally {
    cancelLatencyMs = ctx.cancellations.finish(request.request_id);
  }
  trace.generated(generated.ok ? generated.result : undefined, prompt, generated.ok ? undefined : generated.error);
  if (cancelLatencyMs !== null) {
    ctx.metrics.cancelLatency.observe(cancelLatencyMs / 1000);
    ctx.logger.info({ request_id: request.request_id, cancel_latency_ms: Math.round(cancelLatencyMs) }, "generation cancelled");
  }
  const revoked = record.revoke.aborted ? (record.revoke.reason as RevokeCause) : null;
  if (revoked?.kind === "lost") return "lost";
  // Handed over only when generation was really stopped for it (a reply that ended on its
  // own just as the bound passed is finished here as usual).
  if (revoked?.kind === "handover" && stopCauseOf(stop)?.kind === "handover" && generated.ok && generated.result.stopReason === "cancelled") {
    // n > 1 choices are not handed over (a handover carries one reply): the next owner runs them again.
    if (generated.result.choices !== undefined) return "lost";
    const handed = await handOver(request, record.partition, continued, generated.result, events, startedAt, ctx);
    return handed ? "handed_over" : "retry";
  }

  const turnStartedAt = continued?.started_at ?? startedAt;
  const queueWaitMs = Math.max(0, turnStartedAt - request.created_at);
  const final = terminalEvent(events, withHandover(generated, continued), queueWaitMs);
  if (!stateless) {
    const turn: CompletedTurn = {
      requestId: request.request_id,
      userContent: request.content,
      reply: generated.ok ? generated.result.reply : "",
      final,
      now: Date.now(),
      ...(request.system === undefined ? {} : { system: request.system }),
      ...(request.tool_results === undefined ? {} : { toolResults: request.tool_results }),
      ...(request.prelude === undefined ? {} : { prelude: preludeOf(request) }),
      ...(generated.ok && generated.result.toolCalls ? { toolCalls: generated.result.toolCalls } : {}),
      applied: await appliedContext(conversationKey(request), events, ctx),
    };
    const remembered = applyTurn(conversation, turn, ctx.config.memory, ctx.countTokens);
    const written = await writeTurn(record, events, final, ctx, (sink) =>
      ctx.memory.writeIfOwner(
        record.partition,
        conversationKey(request),
        trace.timed("write history", ctx.history.append(remembered, turnHistory(state, turn), request.request_id, turn.now, sink)),
        continued?.request_id,
        sink,
      ),
    );
    if (written !== "written") return written;
    phases.mark("memory_write");
  } else {
    const written = await writeTurn(record, events, final, ctx, async (sink) =>
      continued ? ctx.memory.clearHandover(record.partition, continued.request_id, sink) : true,
    );
    if (written !== "written") return written;
  }
  ctx.metrics.queueWait.observe(queueWaitMs / 1000);
  if (final.type === "error") return "failed";
  return final.stop_reason === "cancelled" ? "cancelled" : "completed";
}

/** The request's prelude (the record schema rules out its system messages). */
function preludeOf(request: TurnRequest): PreludeMessage[] {
  return (request.prelude ?? []).filter((m): m is PreludeMessage => m.role !== "system");
}

type Generated = { ok: true; result: GenerateResult } | { ok: false; error: KafkaLlmError };

/**
 * Leaves a reply stopped at a token boundary for the partition's next owner: every delta is
 * written first (acks=all), then the handover record, so the record's text is exactly what
 * the client has seen. False when another worker owns the partition already.
 */
async function handOver(
  request: TurnRequest,
  partition: number,
  continued: Handover | undefined,
  result: GenerateResult,
  events: EventWriter,
  startedAt: number,
  ctx: TurnContext,
): Promise<boolean> {
  await events.settle();
  const soFar = withHandover({ ok: true, result }, continued);
  const r = soFar.ok ? soFar.result : result;
  const handed = await ctx.memory.handOver(partition, {
    v: SCHEMA_VERSION,
    type: "handover",
    request_id: request.request_id,
    conversation_id: request.conversation_id,
    tenant: request.tenant,
    attempt: events.attempt,
    next_seq: events.eventsWritten,
    reply: r.reply,
    usage: { prompt_tokens: r.promptTokens, cached_prompt_tokens: r.cachedPromptTokens, completion_tokens: r.completionTokens },
    time_to_first_token_ms: round(r.timeToFirstTokenMs),
    generation_ms: round(r.generationMs),
    started_at: continued?.started_at ?? startedAt,
    worker_id: ctx.config.workerId,
  });
  if (handed) {
    ctx.metrics.handovers.inc({ direction: "out" });
    ctx.logger.info(
      { request_id: request.request_id, next_seq: events.eventsWritten, completion_tokens: r.completionTokens },
      "reply handed over to the next owner",
    );
  }
  return handed;
}

/**
 * A continued reply's result counted from where it began on the first worker: the whole
 * reply (the generator returns it whole), the tokens generated by both workers, the first
 * worker's time to first token, and both workers' generation time.
 */
function withHandover(generated: Generated, continued: Handover | undefined): Generated {
  if (!continued || !generated.ok) return generated;
  const r = generated.result;
  return {
    ok: true,
    result: {
      ...r,
      promptTokens: continued.usage.prompt_tokens,
      cachedPromptTokens: continued.usage.cached_prompt_tokens,
      completionTokens: continued.usage.completion_tokens + r.completionTokens,
      timeToFirstTokenMs: continued.time_to_first_token_ms,
      generationMs: continued.generation_ms + r.generationMs,
    },
  };
}

/** Generates on a slot, streaming deltas; never throws for a generation failure. */
async function generateStreaming(
  request: TurnRequest,
  prompt: ChatMessage[],
  continued: Handover | undefined,
  events: EventWriter,
  signal: AbortSignal,
  ctx: TurnContext,
  phases?: TurnPhases,
  trace: TurnTrace = NO_TRACE,
): Promise<Generated> {
  const batcher = new DeltaBatcher({
    flushMs: ctx.config.stream.flushMs,
    maxChars: ctx.config.stream.maxChars,
    emit: (chunk) => events.write({ type: "delta", ...chunk }),
  });
  const toolCalls = new ToolCallStream(events, ctx.config.stream);
  const slot = await ctx.slots.acquire(slotOwner(request, adapterOf(request, ctx.config)));
  phases?.mark("slot_wait");
  ctx.logger.debug({ request_id: request.request_id, tenant: request.tenant, conversation_id: request.conversation_id, slot: slot.index }, "slot taken");
  ctx.metrics.activeGenerations.inc();
  try {
    const result = await slot.generator.generate({
      messages: prompt,
      params: request.params ?? {},
      defaultMaxTokens: continued
        ? Math.max(1, ctx.config.generation.defaultMaxTokens - continued.usage.completion_tokens)
        : ctx.config.generation.defaultMaxTokens,
      signal,
      onText: (text, logprobs) => {
        trace.firstToken();
        batcher.push(text, logprobs);
      },
      ...(continued && { continueFrom: continued.reply }),
      onToolCall: (fragment) => {
        trace.firstToken();
        batcher.flush();
        toolCalls.push(fragment);
      },
      toolCallId: stableCallId(request.request_id, 0),
    });
    phases?.split("first_token", result.timeToFirstTokenMs, "generate");
    if (continued) ctx.metrics.handovers.inc({ direction: "in" });
    // The reply's last text goes with the next event sent (the final, once memory is written).
    const tail = batcher.take();
    if (tail) events.write({ type: "delta", ...tail }, { holdMs: ctx.config.stream.flushMs });
    toolCalls.flush();
    ctx.metrics.generationDone(request.tenant, result, trace.traceId);
    return { ok: true, result };
  } catch (err) {
    batcher.flush();
    toolCalls.flush();
    ctx.slots.forget(conversationKey(request));
    const error = err instanceof KafkaLlmError ? err : new KafkaLlmError("generation_failed", String(err), { cause: err });
    ctx.logger.warn({ request_id: request.request_id, code: error.code, err: error }, "generation failed");
    return { ok: false, error };
  } finally {
    ctx.metrics.activeGenerations.dec();
    ctx.slots.release(slot);
  }
}

/** n > 1 (worker/choices.ts), as a Generated: never throws for a generation failure. */
async function choicesOf(
  request: TurnRequest,
  prompt: ChatMessage[],
  events: EventWriter,
  signal: AbortSignal,
  ctx: TurnContext,
  trace: TurnTrace,
): Promise<Generated> {
  try {
    return { ok: true, result: await generateChoices(request, prompt, events, signal, ctx, trace.traceId) };
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
  record: TurnRecord,
  events: EventWriter,
  ctx: TurnContext,
): Promise<TurnOutcome> {
  const now = Date.now();
  const greeting = request.greeting && !state ? ctx.config.memory.greeting : null;
  const final = events.next(emptyFinal(greeting ?? ""));
  const base =
    state ??
    openConversation(request.conversation_id, request.tenant, now, {
      greeting,
      ...(request.system === undefined ? {} : { system: request.system }),
      ...(request.metadata === undefined ? {} : { metadata: request.metadata }),
    });
  // A new conversation's history record holds the greeting (the final's reply).
  const applied = recordApplied(
    base,
    request.request_id,
    final,
    state ? undefined : (greeting ?? undefined),
    await appliedContext(conversationKey(request), events, ctx),
  );
  const opened = { ...base, applied, updated_at: now };
  const written = await writeTurn(record, events, final, ctx, (sink) =>
    ctx.memory.writeIfOwner(
      record.partition,
      conversationKey(request),
      state ? opened : ctx.history.append(opened, openHistory(request.system, greeting), request.request_id, now, sink),
      undefined,
      sink,
    ),
  );
  return written === "written" ? "completed" : written;
}

/** Appends messages without a reply (POST /history), to memory and history alike. */
async function append(
  request: AppendRequest,
  state: ConversationState | undefined,
  record: TurnRecord,
  events: EventWriter,
  ctx: TurnContext,
): Promise<TurnOutcome> {
  const now = Date.now();
  const final = events.next(emptyFinal(""));
  const base = state ?? newConversation(request.conversation_id, request.tenant, now);
  const remembered = applyAppend(
    base,
    { requestId: request.request_id, messages: request.messages, final, now, applied: await appliedContext(conversationKey(request), events, ctx) },
    ctx.config.memory,
    ctx.countTokens,
  );
  const written = await writeTurn(record, events, final, ctx, (sink) =>
    ctx.memory.writeIfOwner(
      record.partition,
      conversationKey(request),
      ctx.history.append(remembered, request.messages, request.request_id, now, sink),
      undefined,
      sink,
    ),
  );
  return written === "written" ? "completed" : written;
}

/** Changes a conversation's metadata, or deletes one of its items (OpenAI's Conversations API). */
async function update(
  request: UpdateRequest,
  state: ConversationState | undefined,
  record: TurnRecord,
  events: EventWriter,
  ctx: TurnContext,
): Promise<TurnOutcome> {
  const refused = !state
    ? new KafkaLlmError("not_found", `no conversation ${request.conversation_id}`)
    : request.hide && !state.hidden?.includes(request.hide.index) && (state.hidden?.length ?? 0) >= MAX_HIDDEN_ITEMS
      ? new KafkaLlmError(
          "invalid_request",
          `conversation ${request.conversation_id} has ${MAX_HIDDEN_ITEMS} deleted items, its most; delete the conversation instead`,
        )
      : null;
  if (refused || !state) {
    // Nothing changes: the error is the request's answer (it is not recorded as applied).
    events.write({ type: "error", code: refused!.code, message: refused!.message, retryable: false });
    return "failed";
  }
  const now = Date.now();
  const final = events.next(emptyFinal(""));
  const updated = applyUpdate(state, {
    requestId: request.request_id,
    ...(request.metadata === undefined ? {} : { metadata: request.metadata }),
    ...(request.hide === undefined ? {} : { hide: request.hide }),
    final,
    now,
    applied: await appliedContext(conversationKey(request), events, ctx),
  });
  const written = await writeTurn(record, events, final, ctx, (sink) =>
    ctx.memory.writeIfOwner(record.partition, conversationKey(request), updated, undefined, sink),
  );
  return written === "written" ? "completed" : written;
}

/** Deletes a conversation: a tombstone in chat.memory (its history chain is then unreachable). */
async function remove(request: DeleteRequest, record: TurnRecord, events: EventWriter, ctx: TurnContext): Promise<TurnOutcome> {
  const written = await writeTurn(record, events, events.next(emptyFinal("")), ctx, (sink) =>
    ctx.memory.writeIfOwner(record.partition, conversationKey(request), null, undefined, sink),
  );
  if (written !== "written") return written;
  ctx.slots.forget(conversationKey(request));
  return "completed";
}

/** Records whose offset a turn's transaction committed (commitTurn leaves them be). */
const committedInTransaction = new WeakSet<TurnRecord>();

/**
 * A turn's writes and its terminal event: `write` writes the history and memory records
 * through the sink it is given (undefined: the worker's producer) and resolves false when
 * another worker owns the partition.
 *
 * Fenced by the memory log (the default): `write` writes records that say at which offset
 * they must land, this worker's position in the log (worker/memory/writes.ts). A worker
 * that was replaced since it loaded the conversation (a freeze, a lost session) finds its
 * records landed elsewhere: no reader takes them, and it sends no terminal event. Otherwise the terminal event follows, and runRequest commits
 * the offset after.
 *
 * In a transaction (WORKER_TRANSACTIONS): the history and memory records, the terminal
 * event and the request's offset are committed together. The terminal event is sent once
 * the events before it are acked (deltas are not transactional: a client sees them as
 * they come, and the final must land after them); the records go meanwhile. The broker
 * refuses the transaction of a worker whose group generation is no longer current, so a
 * worker that was replaced, at any point, writes nothing a read_committed reader sees.
 *
 * "retry": another worker wrote there, or the transaction was aborted (the request runs
 * again, from the log as it is); "lost": the group has given the partition to another.
 */
async function writeTurn(
  record: TurnRecord,
  events: EventWriter,
  final: FinalEvent | ErrorEvent,
  ctx: TurnContext,
  write: (sink: RecordSink | undefined) => Promise<boolean>,
): Promise<"written" | "retry" | "lost"> {
  if (!record.transaction) {
    if (!(await write(undefined))) return "retry";
    events.send(final);
    return "written";
  }
  const settled = events.settle();
  // What a failed delta threw, once the events so far are settled (null: none failed).
  const deltaFailure = settled.then(
    () => null,
    (err: unknown) => err,
  );
  try {
    await record.transaction(
      async (sink) => {
        const [written, sent] = await Promise.allSettled([write(sink), settled.then(() => events.sendThrough(sink, final))]);
        if (sent.status === "rejected") throw sent.reason;
        if (written.status === "rejected") throw written.reason;
        // Memory records that landed where this worker did not expect: abort, so neither
        // they nor the final nor the offset are committed.
        if (!written.value) throw new Error("another worker wrote to the memory partition since this one read it");
      },
      // Before the next transaction begins: it may write to the same memory partition (another
      // conversation of the request partition), past this one's commit marker.
      () => ctx.memory.committed(record.partition),
    );
    committedInTransaction.add(record);
    ctx.metrics.transactions.inc({ outcome: "committed" });
    return "written";
  } catch (err) {
    ctx.memory.forget(record.partition);
    // A delta Kafka did not take fails the turn (it runs again), as Kafka refusing any write does.
    const failed = await deltaFailure;
    if (failed !== null) throw failed;
    if (err instanceof ProducerFenced) {
      ctx.metrics.transactions.inc({ outcome: "fenced" });
      ctx.logger.warn(
        { partition: record.partition, offset: record.offset, err: err.message },
        "the broker refused the turn's transaction: this worker was replaced",
      );
      return "lost";
    }
    if (err instanceof TransactionAborted) {
      ctx.metrics.transactions.inc({ outcome: "aborted" });
      // Aborted because the broker refused a record (its size, its form): every run would be,
      // so the request loop counts it as a failed attempt (worker/attempts.ts).
      if (failureKind(err) !== "transient") throw err;
      ctx.logger.warn(
        { partition: record.partition, offset: record.offset, err: err.message },
        "the turn's transaction was aborted; running the request again",
      );
      return "retry";
    }
    throw err;
  }
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

/**
 * Sends a stored terminal event again, unchanged, so gateways that missed it learn the end;
 * to the replayed request's events partition (undefined: the key's). Returns where it landed.
 */
async function reannounce(producer: RecordSink, topic: string, key: string, value: Buffer, partition: number | undefined): Promise<EventPosition | undefined> {
  const [at] = await producer.send({ topic, messages: [{ key, value, ...(partition === undefined ? {} : { partition }) }] });
  return at !== undefined && at.offset >= 0 ? { partition: at.partition, offset: at.offset } : undefined;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
