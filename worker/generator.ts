/**
 * Generates one reply with node-llama-cpp, streaming text as it comes.
 * The prompt is built with the model's own chat template (node-llama-cpp's chat wrapper
 * for the model), so any chat GGUF works without per-model prompt code.
 */
import { LlamaChat, type ChatHistoryItem, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import type { GenerationParams, StopReason } from "../contracts/records.js";
import { KafkaLlmError } from "../contracts/errors.js";
import { turnStopTriggers, type StopTrigger } from "./turn-stop-triggers.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface GenerateInput {
  messages: readonly ChatMessage[];
  params: GenerationParams;
  defaultMaxTokens: number;
  signal?: AbortSignal;
  onText(text: string): void;
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
}

export function toChatHistory(messages: readonly ChatMessage[], replyStart = ""): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((m) =>
    m.role === "assistant" ? { type: "model", response: [m.content] } : { type: m.role, text: m.content },
  );
  // LlamaChat generates the reply to the model turn at the end of the history, continuing
  // whatever that turn already holds.
  history.push({ type: "model", response: replyStart ? [replyStart] : [] });
  return history;
}

/** The worker's generation settings a generator applies to every reply (WorkerConfig.generation). */
export interface GeneratorOptions {
  /** Plain-text stop triggers besides the chat template's turn headers (STOP_TRIGGERS). */
  readonly stopTriggers?: readonly string[];
  /** Repeat penalty when the request gives none (DEFAULT_REPEAT_PENALTY). */
  readonly defaultRepeatPenalty?: number;
}

/** One context sequence and the chat state on it. Not safe for concurrent calls. */
export class SequenceGenerator {
  readonly #chat: LlamaChat;
  readonly #sequence: LlamaContextSequence;
  readonly #defaultRepeatPenalty: number | undefined;
  /** Where a reply ends because the model starts a new turn (computed once per template). */
  readonly #turnStops: StopTrigger[];

  constructor(sequence: LlamaContextSequence, options: GeneratorOptions = {}) {
    this.#sequence = sequence;
    this.#chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
    this.#defaultRepeatPenalty = options.defaultRepeatPenalty;
    this.#turnStops = turnStopTriggers(this.#chat.chatWrapper, options.stopTriggers);
  }

  /** Tokens of the prompt for `messages`, rendered with the model's chat template. */
  countPromptTokens(messages: readonly ChatMessage[], replyStart = ""): number {
    const { contextText } = this.#chat.chatWrapper.generateContextState({ chatHistory: toChatHistory(messages, replyStart) });
    return contextText.tokenize(this.#sequence.model.tokenizer).length;
  }

  /**
   * Generates the reply to `messages`. Throws KafkaLlmError `prompt_too_long` when the
   * prompt leaves no room in the context; the reply is capped to the room that is left,
   * so the prompt is never shifted out of the context behind the caller's back.
   */
  async generate(input: GenerateInput): Promise<GenerateResult> {
    const replyStart = input.continueFrom ?? "";
    const history = toChatHistory(input.messages, replyStart);
    const promptTokens = this.countPromptTokens(input.messages, replyStart);
    const room = this.#sequence.contextSize - promptTokens;
    if (room < 1) {
      throw new KafkaLlmError(
        "prompt_too_long",
        `the prompt is ${promptTokens} tokens and the model's context holds ${this.#sequence.contextSize}; send a shorter message`,
      );
    }
    const meterBefore = this.#sequence.tokenMeter.getState();
    const started = performance.now();
    let firstTokenAt: number | null = null;
    let streamed = "";
    // A continued reply's first token is detokenized on its own, and SentencePiece drops a
    // leading space at the start of a text: " a" after "there was" would come out "a".
    // Detokenized after the reply's start it keeps it; the difference is put back.
    const seam = replyStart ? new ContinuationSeam(this.#sequence.model, replyStart) : null;
    const p = input.params;
    const repeatPenalty = p.repeat_penalty ?? this.#defaultRepeatPenalty;
    let response;
    try {
      response = await this.#chat.generateResponse(history, {
        maxTokens: Math.min(p.max_tokens ?? input.defaultMaxTokens, room),
        temperature: p.temperature,
        topP: p.top_p,
        topK: p.top_k,
        repeatPenalty: repeatPenalty === undefined ? undefined : { penalty: repeatPenalty },
        customStopTriggers: this.#turnStops,
        signal: input.signal,
        stopOnAbortSignal: true,
        ...(seam && { onToken: (tokens: Token[]) => seam.sawTokens(tokens) }),
        onTextChunk: (chunk) => {
          const text = seam ? seam.mend(chunk) : chunk;
          if (!text) return;
          firstTokenAt ??= performance.now();
          streamed += text;
          input.onText(text);
        },
      });
    } catch (err) {
      // Aborted before or between evaluations, node-llama-cpp throws instead of stopping.
      if (input.signal?.aborted) {
        const ended = performance.now();
        const used = this.#sequence.tokenMeter.diff(meterBefore);
        return {
          reply: replyStart + streamed,
          stopReason: "cancelled",
          promptTokens,
          cachedPromptTokens: Math.max(0, promptTokens - used.usedInputTokens),
          completionTokens: used.usedOutputTokens,
          timeToFirstTokenMs: (firstTokenAt ?? ended) - started,
          generationMs: ended - started,
        };
      }
      const message = (err as Error).message ?? String(err);
      if (/context size|too long|exceeds|does not fit/i.test(message)) {
        throw new KafkaLlmError("prompt_too_long", `the prompt does not fit the model's context: ${message}`, { cause: err });
      }
      throw new KafkaLlmError("generation_failed", `generation failed: ${message}`, { cause: err });
    }
    const ended = performance.now();
    const used = this.#sequence.tokenMeter.diff(meterBefore);
    const completionTokens = used.usedOutputTokens;
    return {
      reply: replyStart + (seam?.prefix ?? "") + response.response,
      stopReason: mapStopReason(response.metadata.stopReason),
      promptTokens,
      cachedPromptTokens: Math.max(0, promptTokens - used.usedInputTokens),
      completionTokens,
      timeToFirstTokenMs: (firstTokenAt ?? ended) - started,
      generationMs: ended - started,
    };
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
