/**
 * Generation with token log probabilities (a request with `params.logprobs`). LlamaChat,
 * which generates every other reply, reports no token probabilities, so this loop
 * evaluates the same prompt on the same context sequence with evaluateWithMetadata, which
 * does. It samples with the settings LlamaChat passes to the sequence (the request's
 * sampling, the repeat penalty over the last 64 generated tokens without newlines, a
 * response_format's grammar) and ends where LlamaChat would: an end-of-generation token,
 * a stop text (the template's own and turn headers, STOP_TRIGGERS, the request's stop),
 * max tokens, or the abort signal. It runs no tool calls (LlamaChat's function-call syntax
 * is LlamaChat's own): the request schema refuses logprobs with tools.
 *
 * The probabilities are llama.cpp's after its sampler chain, the distribution the token
 * was drawn from: the whole vocabulary, after the penalties, when greedy (temperature 0,
 * the default); only the candidates top-k and top-p keep, scaled by the temperature, when
 * sampling, so top_logprobs may then hold fewer alternatives than asked. Alternatives of a
 * greedy token cost a probability for every token of the vocabulary (node-llama-cpp hands
 * them all over): that is the loop's price in throughput; without alternatives
 * (top_logprobs 0) only the token's own probability crosses over.
 */
import {
  LlamaGrammarEvaluationState,
  SpecialToken,
  isLlamaText,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  type LlamaText,
  type SequenceEvaluateOptions,
  type Token,
} from "node-llama-cpp";
import type { TokenLogprob } from "../contracts/records/events.js";
import type { SamplingOptions } from "./sampling.js";
import { StopTextFilter } from "./stop-text-filter.js";

/** OpenAI's stand-in for log(0), which JSON cannot hold. */
export const MIN_LOGPROB = -9999;

/** LlamaChat's repeat-penalty window (its default `lastTokens`). */
const PENALTY_TOKENS = 64;
/** Tokens before a text that detokenizing it looks at (a SentencePiece leading space depends on them). */
const CONTEXT_TOKENS = 8;
/** The most tokens one character spans (UTF-8's longest sequence). */
const MAX_CHAR_TOKENS = 4;

/** A probability (0-1) as a log probability, MIN_LOGPROB for 0. */
export function logprobOf(probability: number): number {
  return probability > 0 ? Math.min(0, Math.max(MIN_LOGPROB, Math.log(probability))) : MIN_LOGPROB;
}

/**
 * A stop trigger as the text it stops on: special tokens' text as written, builtin tokens
 * (EOS) left out (evaluation ends on those), a token as its text.
 */
export function stopText(trigger: LlamaText | string | readonly (string | Token)[], model: LlamaModel): string {
  if (typeof trigger === "string") return trigger;
  if (isLlamaText(trigger)) return trigger.mapValues((v) => (v instanceof SpecialToken ? "" : v)).toString();
  return trigger.map((part) => (typeof part === "string" ? part : model.detokenize([part], true))).join("");
}

export interface LogprobGenerationInput {
  sequence: LlamaContextSequence;
  /** The whole prompt, rendered as LlamaChat renders it. */
  promptTokens: readonly Token[];
  maxTokens: number;
  sampling: SamplingOptions;
  grammar?: LlamaGrammar;
  stops: readonly string[];
  /** Alternatives per token, 0-20. */
  topLogprobs: number;
  signal?: AbortSignal;
  /** Text as it goes out, with its tokens (their texts join to it). */
  onText(text: string, logprobs: TokenLogprob[]): void;
}

export interface LogprobGenerationResult {
  reply: string;
  stopReason: "stop" | "length" | "cancelled";
  /** performance.now() of the first text, null when there was none. */
  firstTextAt: number | null;
}

export async function generateWithLogprobs(input: LogprobGenerationInput): Promise<LogprobGenerationResult> {
  const { sequence } = input;
  const model = sequence.model;
  // Keep what the sequence holds of the prompt (LlamaChat's reuse); at least the prompt's
  // last token is evaluated, for the logits of the first generated one.
  await sequence.adaptStateToTokens(input.promptTokens.slice(0, -1), false);
  const fresh = input.promptTokens.slice(sequence.nextTokenIndex);
  const generated: Token[] = [];
  const texts = new TokenTexts(model, input.promptTokens.slice(-CONTEXT_TOKENS));
  const stops = new StopTextFilter(input.stops);
  let reply = "";
  let firstTextAt: number | null = null;
  const send = (groups: readonly TokenLogprob[][]) => {
    for (const group of groups) {
      const text = group.map((t) => t.token).join("");
      if (!text) continue;
      firstTextAt ??= performance.now();
      reply += text;
      input.onText(text, group);
    }
  };
  let stopReason: LogprobGenerationResult["stopReason"] = "stop";
  let stopped = false;
  // Without alternatives, the token's own probability (confidence) spares handing the whole vocabulary's over.
  const metadata = { confidence: true, probabilities: input.topLogprobs > 0 };
  const evaluation = sequence.evaluateWithMetadata([...fresh], metadata, evaluateOptions(input, model, generated));
  for await (const out of evaluation) {
    // Which of the two are there follows `metadata`, decided at run time.
    const next = out as { token: Token; confidence?: number; probabilities?: Map<Token, number> };
    if (input.signal?.aborted) {
      stopReason = "cancelled";
      break;
    }
    generated.push(next.token);
    const top: TokenLogprob["top_logprobs"] = [];
    if (input.topLogprobs > 0) {
      // The map is sorted, most likely first.
      for (const [token, probability] of next.probabilities ?? []) {
        top.push({ token: texts.alternative(token), logprob: logprobOf(probability) });
        if (top.length === input.topLogprobs) break;
      }
    }
    const group = texts.push(next.token, logprobOf(next.confidence ?? 0), top);
    if (group !== null) {
      const { out, stopped: hit } = stops.push(group);
      send(out);
      if (hit) {
        stopped = true;
        break;
      }
    }
    if (generated.length >= input.maxTokens) {
      stopReason = "length";
      break;
    }
  }
  if (!stopped) {
    const last = texts.end();
    if (last !== null) send(stops.push(last).out);
    send(stops.end());
  }
  return { reply, stopReason, firstTextAt };
}

/** The sequence options LlamaChat would evaluate with for these sampling settings. */
function evaluateOptions(input: LogprobGenerationInput, model: LlamaModel, generated: readonly Token[]): SequenceEvaluateOptions {
  const s = input.sampling;
  const nl = model.tokens.nl;
  const penalty = s.repeatPenalty === false ? undefined : s.repeatPenalty;
  return {
    ...(s.temperature === undefined ? {} : { temperature: s.temperature }),
    ...(s.topK === undefined ? {} : { topK: s.topK }),
    ...(s.topP === undefined ? {} : { topP: s.topP }),
    ...(s.seed === undefined ? {} : { seed: s.seed }),
    repeatPenalty: {
      punishTokens: () => generated.slice(-PENALTY_TOKENS).filter((t) => t !== nl),
      maxPunishTokens: PENALTY_TOKENS,
      ...(penalty?.penalty === undefined ? {} : { penalty: penalty.penalty }),
      ...(penalty?.frequencyPenalty === undefined ? {} : { frequencyPenalty: penalty.frequencyPenalty }),
      ...(penalty?.presencePenalty === undefined ? {} : { presencePenalty: penalty.presencePenalty }),
    },
    ...(input.grammar === undefined ? {} : { grammarEvaluationState: new LlamaGrammarEvaluationState({ model, grammar: input.grammar }) }),
  };
}

/**
 * Generated tokens as the text each adds to the reply. A character split across tokens
 * (UTF-8 bytes of one character in two tokens) is one group: its last token carries the
 * character, the ones before it "", so the group's texts still join to the reply.
 */
class TokenTexts {
  readonly #model: LlamaModel;
  #before: Token[];
  #run: Array<{ token: Token; logprob: number; top: TokenLogprob["top_logprobs"] }> = [];

  constructor(model: LlamaModel, before: readonly Token[]) {
    this.#model = model;
    this.#before = [...before];
  }

  /** The text `token` would add where the next token goes. */
  alternative(token: Token): string {
    return this.#model.detokenize([token], true, [...this.#before, ...this.#run.map((r) => r.token)]);
  }

  /** Takes the next token; returns its group once its text is whole, else null. */
  push(token: Token, logprob: number, top: TokenLogprob["top_logprobs"]): TokenLogprob[] | null {
    this.#run.push({ token, logprob, top });
    return this.#resolve(false);
  }

  /** The group left open at the end of generation, if any. */
  end(): TokenLogprob[] | null {
    return this.#run.length === 0 ? null : this.#resolve(true);
  }

  #resolve(force: boolean): TokenLogprob[] | null {
    const tokens = this.#run.map((r) => r.token);
    // Special tokens as their text, so a stop text written with them is found.
    const text = this.#model.detokenize(tokens, true, this.#before);
    if (!force && text.endsWith("\uFFFD") && this.#run.length < MAX_CHAR_TOKENS) return null;
    const group = this.#run.map((r, i) => ({ token: i === this.#run.length - 1 ? text : "", logprob: r.logprob, top_logprobs: r.top }));
    this.#before = [...this.#before, ...tokens].slice(-CONTEXT_TOKENS);
    this.#run = [];
    return group;
  }
}
