/**
 * A worker's turn, from record to commit: decode → build the prompt → generate and stream
 * → final event → commit. Everything a turn does is in this one function; the helpers
 * it calls each do one thing.
 */
import type { KafkaMessage, Producer } from "kafkajs";
import type { WorkerConfig } from "../contracts/config.js";
import { KafkaLlmError } from "../contracts/errors.js";
import { chatRequestSchema, decodeRecord, type TurnRequest } from "../contracts/records.js";
import type { TopicNames } from "../contracts/topics.js";
import type { Logger } from "../platform/logger.js";
import { deadLetter } from "./dead-letter.js";
import { DeltaBatcher } from "./delta-batcher.js";
import { EventWriter } from "./event-writer.js";
import type { ChatMessage, SequenceGenerator } from "./generator.js";
import type { WorkerMetrics } from "./metrics.js";

export interface TurnContext {
  readonly config: WorkerConfig;
  readonly topics: TopicNames;
  readonly producer: Producer;
  readonly generator: SequenceGenerator;
  readonly metrics: WorkerMetrics;
  readonly logger: Logger;
}

export interface TurnRecord {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  /** Commits this record's offset; called once the turn's effects are written. */
  commit(): Promise<void>;
}

export type TurnOutcome = "completed" | "cancelled" | "failed" | "dead_lettered";

/**
 * Runs one turn. Throws only when Kafka cannot take the turn's events; the record is then
 * left uncommitted and the consumer retries it.
 */
export async function runTurn(record: TurnRecord, ctx: TurnContext): Promise<TurnOutcome> {
  const decoded = decodeRecord(chatRequestSchema, record.message.value);
  if (!decoded.ok) {
    await deadLetter(ctx.producer, ctx.topics.deadLetter, record, decoded.reason, ctx.config.workerId);
    ctx.logger.warn({ partition: record.partition, offset: record.message.offset, reason: decoded.reason }, "dead-lettered request");
    ctx.metrics.deadLettered.inc();
    ctx.metrics.requests.inc({ outcome: "dead_lettered" });
    await record.commit();
    return "dead_lettered";
  }
  const request = decoded.value;
  if (request.type !== "turn") {
    // open/delete arrive with conversation memory (next step); until then they are acknowledged.
    await record.commit();
    return "completed";
  }
  const log = ctx.logger.child({ request_id: request.request_id, conversation_id: request.conversation_id });
  const startedAt = Date.now();
  const queueWaitMs = Math.max(0, startedAt - request.created_at);
  const events = new EventWriter(ctx.producer, ctx.topics.events, request, `${ctx.config.workerId}-${startedAt.toString(36)}`);
  events.write({ type: "start", worker_id: ctx.config.workerId });
  log.info({ partition: record.partition, offset: record.message.offset, queue_wait_ms: queueWaitMs }, "turn started");

  const outcome = await generateAndStream(request, buildPrompt(request), events, ctx, queueWaitMs);

  await events.settle();
  await record.commit();
  ctx.metrics.requests.inc({ outcome });
  ctx.metrics.queueWait.observe(queueWaitMs / 1000);
  ctx.metrics.turnDuration.observe((Date.now() - startedAt) / 1000);
  log.info({ outcome, events: events.eventsWritten, turn_ms: Date.now() - startedAt }, "turn done");
  return outcome;
}

/** The prompt of a turn: the system prompt, when there is one, and the user's message. */
function buildPrompt(request: TurnRequest): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (request.system) messages.push({ role: "system", content: request.system });
  messages.push({ role: "user", content: request.content });
  return messages;
}

/** Generates the reply, streams it as delta events, and writes the final (or error) event. */
async function generateAndStream(
  request: TurnRequest,
  messages: ChatMessage[],
  events: EventWriter,
  ctx: TurnContext,
  queueWaitMs: number,
): Promise<TurnOutcome> {
  const batcher = new DeltaBatcher({
    flushMs: ctx.config.stream.flushMs,
    maxChars: ctx.config.stream.maxChars,
    emit: (text) => events.write({ type: "delta", text }),
  });
  ctx.metrics.activeGenerations.inc();
  try {
    const result = await ctx.generator.generate({
      messages,
      params: request.params ?? {},
      defaultMaxTokens: ctx.config.generation.defaultMaxTokens,
      onText: (text) => batcher.push(text),
    });
    batcher.flush();
    ctx.metrics.promptTokens.inc(result.promptTokens - result.cachedPromptTokens);
    ctx.metrics.generatedTokens.inc(result.completionTokens);
    ctx.metrics.timeToFirstToken.observe(result.timeToFirstTokenMs / 1000);
    events.write({
      type: "final",
      reply: result.reply,
      stop_reason: result.stopReason,
      usage: {
        prompt_tokens: result.promptTokens,
        cached_prompt_tokens: result.cachedPromptTokens,
        completion_tokens: result.completionTokens,
      },
      timings: {
        queue_wait_ms: queueWaitMs,
        time_to_first_token_ms: round(result.timeToFirstTokenMs),
        generation_ms: round(result.generationMs),
      },
    });
    return result.stopReason === "cancelled" ? "cancelled" : "completed";
  } catch (err) {
    batcher.flush();
    const error = err instanceof KafkaLlmError ? err : new KafkaLlmError("generation_failed", String(err), { cause: err });
    ctx.logger.error({ request_id: request.request_id, code: error.code, err: error.message }, "generation failed");
    events.write({ type: "error", code: error.code, message: error.message, retryable: error.retryable });
    return "failed";
  } finally {
    ctx.metrics.activeGenerations.dec();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
