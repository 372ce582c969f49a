/**
 * A request with n > 1: n choices of the same prompt, generated side by side on this
 * worker's free sequences (node-llama-cpp evaluates them in shared batches), each streaming
 * its deltas under its index. With fewer free slots than choices, each slot generates its
 * share one after the other. Only slots that are free right now are taken beyond the first,
 * so two such requests never wait on each other's slots.
 *
 * Choice i samples with seed + i when the request has a seed: the same request gives the
 * same n choices, and the choices differ from each other.
 */
import type { WorkerConfig } from "../contracts/config/worker.js";
import { conversationKey } from "../contracts/conversation-key.js";
import type { TurnRequest } from "../contracts/records/requests.js";
import { DeltaBatcher } from "./delta-batcher.js";
import { ToolCallStream, stableCallId } from "./tool-call-stream.js";
import type { EventWriter } from "./event-writer.js";
import type { ChatMessage, GenerateResult, SlotGenerator } from "./generator.js";
import type { WorkerMetrics } from "./metrics.js";
import { adapterOf, slotOwner, type Slot, type SlotPool } from "./slot-pool.js";

export interface ChoiceDeps {
  readonly config: WorkerConfig;
  readonly slots: SlotPool<SlotGenerator>;
  readonly metrics: WorkerMetrics;
}

/**
 * Generates every choice; the result is choice 0's with `choices` holding all of them and
 * completion tokens summed. Throws the first generation failure (KafkaLlmError).
 */
export async function generateChoices(
  request: TurnRequest,
  prompt: ChatMessage[],
  events: EventWriter,
  signal: AbortSignal,
  deps: ChoiceDeps,
  /** The turn's sampled trace id, for the time-to-first-token exemplar. */
  traceId?: string,
): Promise<GenerateResult> {
  const params = request.params ?? {};
  const n = params.n ?? 1;
  const batchers = Array.from(
    { length: n },
    (_, choice) =>
      new DeltaBatcher({
        flushMs: deps.config.stream.flushMs,
        maxChars: deps.config.stream.maxChars,
        emit: (chunk) => events.write({ type: "delta", ...chunk, choice }),
      }),
  );
  const toolCalls = Array.from({ length: n }, (_, choice) => new ToolCallStream(events, deps.config.stream, choice));
  const owner = slotOwner(request, adapterOf(request, deps.config));
  const slots: Slot<SlotGenerator>[] = [await deps.slots.acquire(owner)];
  // acquire() takes a free slot synchronously, so this never waits.
  while (slots.length < n && deps.slots.freeCount(owner.adapter) > 0) slots.push(await deps.slots.acquire(owner));
  deps.metrics.activeGenerations.inc(slots.length);
  const results: GenerateResult[] = new Array(n);
  try {
    await Promise.all(
      slots.map(async (slot, s) => {
        for (let i = s; i < n; i += slots.length) {
          results[i] = await slot.generator.generate({
            messages: prompt,
            params: { ...params, n: undefined, ...(params.seed === undefined ? {} : { seed: params.seed + i }) },
            defaultMaxTokens: deps.config.generation.defaultMaxTokens,
            signal,
            onText: (text, logprobs) => batchers[i]!.push(text, logprobs),
            onToolCall: (fragment) => {
              batchers[i]!.flush();
              toolCalls[i]!.push(fragment);
            },
            toolCallId: stableCallId(request.request_id, i),
          });
          batchers[i]!.flush();
          toolCalls[i]!.flush();
        }
      }),
    );
  } catch (err) {
    for (const b of batchers) b.flush();
    for (const t of toolCalls) t.flush();
    deps.slots.forget(conversationKey(request));
    throw err;
  } finally {
    deps.metrics.activeGenerations.dec(slots.length);
    for (const slot of slots) deps.slots.release(slot);
  }
  const first = results[0]!;
  const completionTokens = results.reduce((sum, r) => sum + r.completionTokens, 0);
  deps.metrics.generationDone(request.tenant, results, traceId);
  return {
    ...first,
    completionTokens,
    timeToFirstTokenMs: Math.min(...results.map((r) => r.timeToFirstTokenMs)),
    generationMs: Math.max(...results.map((r) => r.generationMs)),
    choices: results.map((r, index) => ({
      index,
      reply: r.reply,
      stop_reason: r.stopReason,
      ...(r.toolCalls === undefined ? {} : { tool_calls: r.toolCalls }),
    })),
  };
}
