/**
 * Generates one reply with node-llama-cpp, streaming text as it comes.
 * The prompt is built with the model's own chat template (node-llama-cpp's chat wrapper
 * for the model), so any chat GGUF works without per-model prompt code.
 */
import { LlamaChat, type ChatHistoryItem, type LLamaChatGenerateResponseOptions, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import type { Choice, StopReason, TokenLogprob } from "../contracts/records/events.js";
import type { GenerationParams, ToolCall } from "../contracts/generation-params.js";
import { KafkaLlmError } from "../contracts/errors.js";
import { assertParamsWithinGrammarBounds, grammarCacheFor } from "./grammar.js";
import { generateWithLogprobs, stopText } from "./logprob-generation.js";
import { samplingOptions } from "./sampling.js";
import { checkReply } from "./schema-check.js";
import { turnStopTriggers, type StopTrigger } from "./turn-stop-triggers.js";
import {
  forcedInstructions,
  forcedToolCalls,
  planTools,
  randomCallId,
  toChatHistory as historyOf,
  toolCall,
  type HistoryMessage,
  type ToolCallFragment,
  type ToolPlan,
} from "./tool-calls.js";

/** A prompt message; tool calls and tool results come only from the OpenAI route's tool calling. */
export type ChatMessage = HistoryMessage;

export interface GenerateInput {
  /** Tool calls' arguments as they are generated (a named forced call, or auto mode). */
  onToolCall?(fragment: ToolCallFragment): void;
  /** The id of the reply's call `index`: stable per request, so a re-run reuses it. Random by default. */
  toolCallId?(index: number): string;
  messages: readonly ChatMessage[];
  params: GenerationParams;
  defaultMaxTokens: number;
  signal?: AbortSignal;
  /** `logprobs`: the tokens of `text` (their texts join to it), when the request asked for them (`params.logprobs`). */
  onText(text: string, logprobs?: TokenLogprob[]): void;
  /**
   * The start of the reply, already generated (and streamed) by another worker that handed
   * the turn over: generation continues it instead of starting the reply again. The result's
   * `reply` is then the whole reply, this start included; `onText` gets only the new text.
   */
  continueFrom?: string;
}

export interface GenerateResult {
  reply: string;
  stopReason: StopReason;
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
  /** From the call to the first generated text, ms; equals generationMs when nothing was generated. */
  timeToFirstTokenMs: number;
  generationMs: number;
  /** The calls the model made (stopReason "tool_calls"), when the request had tools. */
  toolCalls?: ToolCall[];
  /** Every choice of a request with n > 1 (worker/choices.ts); the fields above are choice 0's. */
  choices?: Choice[];
}

/**
 * LlamaChat generates the reply to the model turn at the end of the history, continuing
 * whatever that turn already holds (`replyStart`: a reply handed over by another worker).
 */
export function toChatHistory(messages: readonly ChatMessage[], replyStart = ""): ChatHistoryItem[] {
  const history = historyOf(messages);
  const last = history.at(-1);
  if (replyStart && last?.type === "model" && last.response.length === 0) last.response.push(replyStart);
  return history;
}

/** A forced tool call is told to the model as a system message before the conversation. */
function withToolInstructions(messages: readonly ChatMessage[], plan: ToolPlan): readonly ChatMessage[] {
  if (plan.mode !== "forced") return messages;
  return [{ role: "system", content: forcedInstructions(plan) }, ...messages];
}

/** The worker's generation settings a generator applies to every reply (WorkerConfig.generation). */
export interface GeneratorOptions {
  /** Plain-text stop triggers besides the chat template's turn headers (STOP_TRIGGERS). */
  readonly stopTriggers?: readonly string[];
  /** Repeat penalty when the request gives none (DEFAULT_REPEAT_PENALTY). */
  readonly defaultRepeatPenalty?: number;
}

/** What a turn asks of a slot's generator; the metrics read its KV cache when it has one. */
export type SlotGenerator = Pick<SequenceGenerator, "generate" | "clearCache"> & Partial<Pick<SequenceGenerator, "kvCache">>;

/** One context sequence and the chat state on it. Not safe for concurrent calls. */
export class SequenceGenerator {
  readonly #chat: LlamaChat;
  readonly #sequence: LlamaContextSequence;
  readonly #defaultRepeatPenalty: number | undefined;
  /** Where a reply ends because the model starts a new turn (computed once per template), and STOP_TRIGGERS. */
  readonly #turnStops: StopTrigger[];

  constructor(sequence: LlamaContextSequence, options: GeneratorOptions = {}) {
    this.#sequence = sequence;
    this.#chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
    this.#defaultRepeatPenalty = options.defaultRepeatPenalty;
    this.#turnStops = turnStopTriggers(this.#chat.chatWrapper, options.stopTriggers);
  }

  /** The prompt for `messages` as tokens, rendered with the model's chat template. */
  promptTokens(messages: readonly ChatMessage[], tools: ToolPlan = { mode: "none" }, replyStart = ""): Token[] {
    return this.#contextState(messages, tools, replyStart).contextText.tokenize(this.#sequence.model.tokenizer);
  }

  /** What LlamaChat renders for `messages`: the prompt, and the template's own stop triggers. */
  #contextState(messages: readonly ChatMessage[], tools: ToolPlan, replyStart: string) {
    return this.#chat.chatWrapper.generateContextState({
      chatHistory: toChatHistory(messages, replyStart),
      ...(tools.mode === "auto" ? { availableFunctions: tools.functions, documentFunctionParams: true } : {}),
    });
  }

  /** Tokens of the prompt for `messages`, rendered with the model's chat template. */
  countPromptTokens(messages: readonly ChatMessage[], tools: ToolPlan = { mode: "none" }, replyStart = ""): number {
    return this.promptTokens(messages, tools, replyStart).length;
  }

  /**
   * Generates the reply to `messages`. Throws KafkaLlmError `prompt_too_long` when the
   * prompt leaves no room in the context; the reply is capped to the room that is left,
   * so the prompt is never shifted out of the context behind the caller's back.
   */
  async generate(input: GenerateInput): Promise<GenerateResult> {
    const p = input.params;
    // Before the prompt is evaluated: a schema over the grammar bounds is never compiled.
    assertParamsWithinGrammarBounds(p);
    const tools = planTools(p);
    const messages = withToolInstructions(input.messages, tools);
    const replyStart = input.continueFrom ?? "";
    const history = toChatHistory(messages, replyStart);
    const promptTokens = this.countPromptTokens(messages, tools, replyStart);
    const room = this.#sequence.contextSize - promptTokens;
    if (room < 1) {
      throw new KafkaLlmError(
        "prompt_too_long",
        `the prompt is ${promptTokens} tokens and the model's context holds ${this.#sequence.contextSize}; send a shorter message`,
      );
    }
    if (p.logprobs !== undefined) return this.#generateWithLogprobs(input, messages, tools, promptTokens, room);
    const meterBefore = this.#sequence.tokenMeter.getState();
    const started = performance.now();
    let firstTokenAt: number | null = null;
    let streamed = "";
    // A continued reply's first token is detokenized on its own, and SentencePiece drops a
    // leading space at the start of a text: " a" after "there was" would come out "a".
    // Detokenized after the reply's start it keeps it; the difference is put back.
    const seam = replyStart ? new ContinuationSeam(this.#sequence.model, replyStart) : null;
    const callId = input.toolCallId ?? randomCallId;
    // Auto mode: each call's arguments as node-llama-cpp streams them, by call index.
    const paramsText = new Map<number, string>();
    let response;
    try {
      const grammars = grammarCacheFor(this.#sequence.model.llama);
      const sampling = samplingOptions({ ...p, repeat_penalty: p.repeat_penalty ?? this.#defaultRepeatPenalty });
      const options: LLamaChatGenerateResponseOptions = {
        maxTokens: Math.min(p.max_tokens ?? input.defaultMaxTokens, room),
        ...sampling,
        // The request's stop texts, after the turn headers and STOP_TRIGGERS every reply has.
        customStopTriggers: [...this.#turnStops, ...(sampling.customStopTriggers ?? [])],
        signal: input.signal,
        stopOnAbortSignal: true,
        ...(seam && { onToken: (tokens: Token[]) => seam.sawTokens(tokens) }),
        onTextChunk: (chunk) => {
          const text = seam ? seam.mend(chunk) : chunk;
          if (!text) return;
          firstTokenAt ??= performance.now();
          streamed += text;
          // A forced call's text is the call, not content: a named call's text is its
          // arguments, streamed as they come; the other forced calls go whole at the end.
          if (tools.mode !== "forced") input.onText(text);
          else if (tools.named) {
            const first = streamed.length === text.length;
            input.onToolCall?.({ index: 0, ...(first ? { id: callId(0), name: tools.named.function.name } : {}), arguments: text });
          }
        },
      };
      if (tools.mode === "forced") {
        options.grammar = await grammars.forSchema(tools.schema);
      } else if (tools.mode === "auto") {
        Object.assign(options, {
          functions: tools.functions,
          documentFunctionParams: true,
          maxParallelFunctionCalls: tools.maxParallel,
          onFunctionCallParamsChunk: (chunk: { callIndex: number; functionName: string; paramsChunk: string }) => {
            const before = paramsText.get(chunk.callIndex);
            paramsText.set(chunk.callIndex, (before ?? "") + chunk.paramsChunk);
            if (!chunk.paramsChunk && before !== undefined) return;
            input.onToolCall?.({
              index: chunk.callIndex,
              ...(before === undefined ? { id: callId(chunk.callIndex), name: chunk.functionName } : {}),
              arguments: chunk.paramsChunk,
            });
          },
        });
      } else {
        const grammar = await grammars.forResponseFormat(p.response_format);
        if (grammar !== undefined) options.grammar = grammar;
      }
      response = await this.#chat.generateResponse(history, options);
    } catch (err) {
      // Aborted before or between evaluations, node-llama-cpp throws instead of stopping.
      if (input.signal?.aborted) {
        const ended = performance.now();
        const used = this.#sequence.tokenMeter.diff(meterBefore);
        return {
          reply: replyStart + streamed,
          stopReason: "cancelled",
          promptTokens,
          cachedPromptTokens: cachedOf(promptTokens, used),
          completionTokens: used.usedOutputTokens,
          timeToFirstTokenMs: (firstTokenAt ?? ended) - started,
          generationMs: ended - started,
        };
      }
      // Already says what failed (a grammar that could not be built), without the schema.
      if (err instanceof KafkaLlmError) throw err;
      const message = (err as Error).message ?? String(err);
      if (/context size|too long|exceeds|does not fit/i.test(message)) {
        throw new KafkaLlmError("prompt_too_long", `the prompt does not fit the model's context: ${message}`, { cause: err });
      }
      throw new KafkaLlmError("generation_failed", `generation failed: ${message}`, { cause: err });
    }
    const ended = performance.now();
    const used = this.#sequence.tokenMeter.diff(meterBefore);
    const completionTokens = used.usedOutputTokens;
    let reply = replyStart + (seam?.prefix ?? "") + response.response;
    let stopReason = mapStopReason(response.metadata.stopReason);
    let toolCalls: ToolCall[] | undefined;
    if (tools.mode === "forced" && stopReason !== "cancelled") {
      toolCalls = forcedToolCalls(tools, reply, callId(0)) ?? undefined;
      // Cut short by max_tokens: no whole call; the partial text stays the reply.
      if (toolCalls !== undefined) {
        reply = "";
        stopReason = "tool_calls";
      }
    } else if (response.functionCalls !== undefined && response.functionCalls.length > 0) {
      // The arguments as streamed when they parse (so the fragments add up to them), else as parsed.
      toolCalls = response.functionCalls.map((c, i) => toolCall(c.functionName, argumentsText(paramsText.get(i), c.params), callId(i)));
      stopReason = "tool_calls";
    }
    // What the grammar cannot hold of the request's schemas is checked on the finished reply.
    checkReply(p, { text: reply, stopReason, toolCalls });
    return {
      reply,
      stopReason,
      ...(toolCalls === undefined ? {} : { toolCalls }),
      promptTokens,
      cachedPromptTokens: cachedOf(promptTokens, used),
      completionTokens,
      timeToFirstTokenMs: (firstTokenAt ?? ended) - started,
      generationMs: ended - started,
    };
  }

  /**
   * generate() for a request with `params.logprobs`: node-llama-cpp's token probabilities
   * come from the sequence's own evaluation, not LlamaChat (worker/logprob-generation.ts).
   */
  async #generateWithLogprobs(
    input: GenerateInput,
    messages: readonly ChatMessage[],
    tools: ToolPlan,
    promptTokens: number,
    room: number,
  ): Promise<GenerateResult> {
    const p = input.params;
    // The request schema refuses this; a record written past it fails here, not as a reply without its calls.
    if (tools.mode !== "none") throw new KafkaLlmError("invalid_request", "logprobs cannot be combined with tools");
    const replyStart = input.continueFrom ?? "";
    const state = this.#contextState(messages, tools, replyStart);
    const meterBefore = this.#sequence.tokenMeter.getState();
    const started = performance.now();
    let out;
    try {
      const sampling = samplingOptions({ ...p, repeat_penalty: p.repeat_penalty ?? this.#defaultRepeatPenalty });
      const grammar = await grammarCacheFor(this.#sequence.model.llama).forResponseFormat(p.response_format);
      out = await generateWithLogprobs({
        sequence: this.#sequence,
        promptTokens: state.contextText.tokenize(this.#sequence.model.tokenizer),
        maxTokens: Math.min(p.max_tokens ?? input.defaultMaxTokens, room),
        sampling,
        ...(grammar === undefined ? {} : { grammar }),
        stops: [...state.stopGenerationTriggers, ...this.#turnStops, ...(sampling.customStopTriggers ?? [])].map((t) => stopText(t, this.#sequence.model)),
        topLogprobs: p.logprobs ?? 0,
        ...(input.signal === undefined ? {} : { signal: input.signal }),
        onText: (text, logprobs) => input.onText(text, logprobs),
      });
    } catch (err) {
      if (err instanceof KafkaLlmError) throw err;
      const message = (err as Error).message ?? String(err);
      throw new KafkaLlmError("generation_failed", `generation failed: ${message}`, { cause: err });
    }
    const ended = performance.now();
    const used = this.#sequence.tokenMeter.diff(meterBefore);
    const reply = replyStart + out.reply;
    checkReply(p, { text: reply, stopReason: out.stopReason });
    return {
      reply,
      stopReason: out.stopReason,
      promptTokens,
      cachedPromptTokens: cachedOf(promptTokens, used),
      completionTokens: used.usedOutputTokens,
      timeToFirstTokenMs: (out.firstTextAt ?? ended) - started,
      generationMs: ended - started,
    };
  }

  /** Empties the sequence's KV cache: the next prompt is evaluated whole (a slot passing to another tenant). */
  async clearCache(): Promise<void> {
    await this.#sequence.clearHistory();
  }

  /** Tokens the sequence holds in the KV cache now, and the most it can hold (the context size of one sequence). */
  kvCache(): { tokens: number; capacity: number } {
    if (this.#sequence.disposed) return { tokens: 0, capacity: 0 };
    return { tokens: this.#sequence.nextTokenIndex, capacity: this.#sequence.contextSize };
  }

  dispose(): void {
    this.#chat.dispose({ disposeSequence: false });
  }
}

/** Mends the seam between a handed-over reply's start and its continuation (see generate). */
class ContinuationSeam {
  readonly #model: LlamaModel;
  readonly #startTokens: Token[];
  #firstToken: Token | null = null;
  #mended = false;
  /** Text the continuation's first chunk lost (a leading space), once known. */
  prefix = "";

  constructor(model: LlamaModel, start: string) {
    this.#model = model;
    this.#startTokens = model.tokenize(start).slice(-8);
  }

  sawTokens(tokens: Token[]): void {
    this.#firstToken ??= tokens[0] ?? null;
  }

  mend(chunk: string): string {
    if (this.#mended || !chunk || this.#firstToken === null) return chunk;
    this.#mended = true;
    const alone = this.#model.detokenize([this.#firstToken]);
    const afterStart = this.#model.detokenize([this.#firstToken], false, this.#startTokens);
    if (afterStart !== alone && afterStart.endsWith(alone) && chunk.startsWith(alone)) {
      this.prefix = afterStart.slice(0, afterStart.length - alone.length);
    }
    return this.prefix + chunk;
  }
}

/**
 * Prompt tokens found in the sequence's KV cache. node-llama-cpp evaluates the prompt's last
 * token with the first generation step and meters it as output, so once anything was
 * generated one of the prompt's tokens is missing from the input count; without this the
 * figure was one more than the tokens reused (1 for a slot that held nothing).
 */
function cachedOf(promptTokens: number, used: { usedInputTokens: number; usedOutputTokens: number }): number {
  return Math.max(0, promptTokens - used.usedInputTokens - (used.usedOutputTokens > 0 ? 1 : 0));
}

function mapStopReason(reason: string): StopReason {
  switch (reason) {
    case "maxTokens":
      return "length";
    case "abort":
      return "cancelled";
    default:
      return "stop";
  }
}

function argumentsText(streamed: string | undefined, params: unknown): string {
  if (streamed !== undefined) {
    try {
      JSON.parse(streamed);
      return streamed;
    } catch {
      // not whole: fall back to the parsed params
    }
  }
  return JSON.stringify(params ?? {});
}
