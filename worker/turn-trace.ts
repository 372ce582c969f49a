/**
 * A request's spans on the worker, in the trace its record's headers carry (the gateway's
 * `send chat.requests`):
 *
 *   queue wait                 the request's time in Kafka and the scheduler, from its acceptance
 *   process chat.requests      this worker's run of the record (kind consumer), to its commit
 *   ├─ load conversation       the state store: its catch-up, and the partition's restore
 *   │                          when just gained (kafka_llm.memory.restore)
 *   ├─ chat <model>            the GenAI span: model, conversation, usage, time to first token
 *   │  ├─ slot wait
 *   │  ├─ prompt evaluation    to the first token
 *   │  └─ generate             the first token to the last
 *   ├─ write history           chat.history (acks=all)
 *   ├─ write memory            the ownership check and the memory record (and the history above)
 *   ├─ write events            the final and every event still in flight
 *   └─ commit
 *
 * Every run of a record joins the same trace: a takeover's new attempt (the record is read
 * again by the next owner), a handover's continuation, a replay of an applied request. A
 * worker killed mid-turn never ends its `process` span; the phases it finished were sent.
 * The phases come from worker/turn-phases.ts, so the spans and kafka_llm_turn_phase_seconds
 * measure the same intervals. Prompt and reply text go into the chat span only with
 * OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
 */
import { SpanKind, SpanStatusCode, type Attributes, type Context, type Span } from "@opentelemetry/api";
import type { ChatRequest } from "../contracts/records/requests.js";
import { captureMessageContent, contextOfHeaders, epochMs, recordSpan, sampledTraceId, startSpan, traceHeaders, tracingOn } from "../platform/tracing.js";
import type { GroupRecord } from "../platform/kafka/group-consumer.js";
import type { ChatMessage, GenerateResult } from "./generator.js";
import type { TurnPhase } from "./turn-phases.js";

const PHASE_SPANS: Record<TurnPhase, string> = {
  load: "load conversation",
  slot_wait: "slot wait",
  first_token: "prompt evaluation",
  generate: "generate",
  memory_write: "write memory",
  events: "write events",
  commit: "commit",
};

/** Phases that are the model's: their spans are the chat span's children. */
const CHAT_PHASES: ReadonlySet<TurnPhase> = new Set(["slot_wait", "first_token", "generate"]);

export interface TurnTraceOptions {
  readonly topic: string;
  readonly group: string;
  readonly workerId: string;
  /** gen_ai.request.model: the model's name (the GGUF's file name without .gguf). */
  readonly model: string;
}

/** The spans of one run of a record; every method is free when tracing is off (NO_TRACE). */
export interface TurnTrace {
  /** The record's request, once decoded: its ids become attributes. */
  request(request: ChatRequest): void;
  /** The load waited for its partition's restore (the partition was just gained): said on `load conversation`. */
  restored(): void;
  /** A phase of kafka_llm_turn_phase_seconds, from start to end (performance.now() ms). */
  phase(phase: TurnPhase, start: number, end: number): void;
  /** The first token came: `prompt evaluation` is sent now, not at the reply's end, so a worker killed mid-reply leaves it in the trace. */
  firstToken(): void;
  /** Wraps a write in a span of its own (`write history`). */
  timed<T>(name: string, work: Promise<T>): Promise<T>;
  /** The generation's outcome on the chat span. */
  generated(result: GenerateResult | undefined, prompt: readonly ChatMessage[], error?: Error): void;
  /** The headers that put an event in this run's trace. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** The sampled trace id, for exemplars. */
  readonly traceId: string | undefined;
  /** Ends the run's spans with its outcome (`error`, with the error, when the run threw: it runs again). */
  end(outcome: string, error?: Error): void;
}

export const NO_TRACE: TurnTrace = {
  request: () => {},
  restored: () => {},
  phase: () => {},
  firstToken: () => {},
  timed: (_name, work) => work,
  generated: () => {},
  headers: undefined,
  traceId: undefined,
  end: () => {},
};

/** The trace of a record's run, continuing the context in its headers; NO_TRACE when tracing is off. */
export function startTurnTrace(record: Pick<GroupRecord, "partition" | "offset" | "headers">, options: TurnTraceOptions): TurnTrace {
  if (!tracingOn()) return NO_TRACE;
  return new RecordTrace(record, options);
}

class RecordTrace implements TurnTrace {
  readonly #parent: Context;
  readonly #process: Span;
  readonly #options: TurnTraceOptions;
  #chat: Span | undefined;
  #chatEnded = false;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly traceId: string | undefined;

  constructor(record: Pick<GroupRecord, "partition" | "offset" | "headers">, options: TurnTraceOptions) {
    this.#options = options;
    this.#parent = contextOfHeaders(record.headers);
    this.#process = startSpan(`process ${options.topic}`, this.#parent, {
      kind: SpanKind.CONSUMER,
      attributes: {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": options.topic,
        "messaging.destination.partition.id": String(record.partition),
        "messaging.kafka.offset": Number(record.offset),
        "messaging.consumer.group.name": options.group,
        "kafka_llm.worker_id": options.workerId,
      },
    });
    this.headers = traceHeaders(this.#process);
    this.traceId = sampledTraceId(this.#process);
  }

  request(request: ChatRequest): void {
    this.#process.setAttributes({
      "messaging.message.id": request.request_id,
      "kafka_llm.request.id": request.request_id,
      "kafka_llm.request.type": request.type,
      "kafka_llm.tenant": request.tenant,
      "gen_ai.conversation.id": request.conversation_id,
    });
    // From the gateway's acceptance to this run: Kafka, the partition's queue and the scheduler's.
    recordSpan("queue wait", this.#parent, Math.min(request.created_at, Date.now()), Date.now(), {
      "kafka_llm.worker_id": this.#options.workerId,
      "kafka_llm.request.id": request.request_id,
    });
    if (request.type === "turn") {
      this.#chatAttributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "kafka-llm",
        "gen_ai.request.model": this.#options.model,
        "gen_ai.conversation.id": request.conversation_id,
        "gen_ai.response.id": request.request_id,
        ...(request.params?.max_tokens !== undefined && { "gen_ai.request.max_tokens": request.params.max_tokens }),
        ...(request.params?.temperature !== undefined && { "gen_ai.request.temperature": request.params.temperature }),
        ...(request.params?.top_p !== undefined && { "gen_ai.request.top_p": request.params.top_p }),
        ...(request.params?.seed !== undefined && { "gen_ai.request.seed": request.params.seed }),
      };
    }
  }

  #chatAttributes: Attributes = {};

  #restored = false;

  restored(): void {
    this.#restored = true;
  }

  phase(phase: TurnPhase, start: number, end: number): void {
    this.#lastPhaseEnd = end;
    let parent: Span = this.#process;
    if (CHAT_PHASES.has(phase)) {
      parent = this.#chatSpan(start);
      // Sent live at the first token (firstToken).
      if (phase === "first_token" && this.#firstTokenSent) return;
      if (phase === "generate") {
        // Its start is the first token's, as the live span had it.
        start = this.#firstTokenAt ?? start;
        this.#chatEnd = epochMs(end);
      }
    }
    recordSpan(PHASE_SPANS[phase], parent, epochMs(start), epochMs(end), phase === "load" && this.#restored ? { "kafka_llm.memory.restore": true } : undefined);
  }

  firstToken(): void {
    if (this.#firstTokenSent) return;
    this.#firstTokenSent = true;
    const now = performance.now();
    this.#firstTokenAt = now;
    recordSpan(PHASE_SPANS.first_token, this.#chatSpan(this.#lastPhaseEnd), epochMs(this.#lastPhaseEnd), epochMs(now));
  }

  #lastPhaseEnd = performance.now();
  #firstTokenSent = false;
  #firstTokenAt: number | undefined;
  /** When the chat span ends: the generate phase's end (ms since the epoch). */
  #chatEnd: number | undefined;

  #chatSpan(start: number): Span {
    return (this.#chat ??= startSpan(`chat ${this.#options.model}`, this.#process, { attributes: this.#chatAttributes, startTime: epochMs(start) }));
  }

  async timed<T>(name: string, work: Promise<T>): Promise<T> {
    const span = startSpan(name, this.#process);
    try {
      return await work;
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  }

  generated(result: GenerateResult | undefined, prompt: readonly ChatMessage[], error?: Error): void {
    const chat = this.#chatSpan(performance.now());
    if (result) {
      chat.setAttributes({
        "gen_ai.response.model": this.#options.model,
        "gen_ai.response.finish_reasons": [result.stopReason],
        "gen_ai.usage.input_tokens": result.promptTokens,
        "gen_ai.usage.cached_input_tokens": result.cachedPromptTokens,
        "gen_ai.usage.output_tokens": result.completionTokens,
        "gen_ai.server.time_to_first_token": result.timeToFirstTokenMs / 1000,
      });
      if (captureMessageContent()) {
        chat.setAttributes({
          "gen_ai.input.messages": JSON.stringify(prompt.map((m) => ({ role: m.role, parts: [{ type: "text", content: m.content }] }))),
          "gen_ai.output.messages": JSON.stringify([{ role: "assistant", parts: [{ type: "text", content: result.reply }], finish_reason: result.stopReason }]),
        });
      }
    }
    if (error) {
      chat.recordException(error);
      chat.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      chat.setAttribute("error.type", (error as { code?: string }).code ?? error.name);
    }
    this.#endChat(this.#chatEnd);
  }

  end(outcome: string, error?: Error): void {
    this.#endChat();
    this.#process.setAttribute("kafka_llm.outcome", outcome);
    if (error) this.#process.recordException(error);
    if (outcome === "failed" || outcome === "dead_lettered" || error)
      this.#process.setStatus({ code: SpanStatusCode.ERROR, message: error?.message ?? outcome });
    this.#process.end();
  }

  #endChat(at?: number): void {
    if (!this.#chat || this.#chatEnded) return;
    this.#chatEnded = true;
    this.#chat.end(at);
  }
}

/** The model's name in spans: the GGUF's file name without .gguf (of a path or an hf: URI). */
export function modelNameOf(source: string): string {
  return (source.split(/[\\/:]/).pop() ?? source).replace(/\.gguf$/i, "");
}
