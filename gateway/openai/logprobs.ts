/**
 * Token logprobs as OpenAI's objects, for chat completions and responses. The worker sends
 * them with the reply's delta events only (contracts/records/events.ts), so a whole reply's
 * logprobs are gathered from the deltas of the attempt that made it; a final re-announced
 * without its deltas (a replay) has none to give.
 *
 * `bytes` is the UTF-8 of the token's text: a character split across tokens is the text of
 * the token that completes it (the tokens before it have ""), so the tokens' texts join to
 * the reply and their bytes to its UTF-8.
 */
import type { ChatEvent, TokenLogprob } from "../../contracts/records/events.js";

const bytesOf = (text: string) => [...Buffer.from(text, "utf8")];

/** Chat completions' `choices[].logprobs` for these tokens. */
export function chatLogprobs(tokens: readonly TokenLogprob[]) {
  return {
    content: tokens.map((t) => ({
      token: t.token,
      logprob: t.logprob,
      bytes: bytesOf(t.token),
      top_logprobs: t.top_logprobs.map((a) => ({ token: a.token, logprob: a.logprob, bytes: bytesOf(a.token) })),
    })),
    refusal: null,
  };
}

/** The Responses API's `logprobs` of an output_text part (and of its delta events). */
export function responseLogprobs(tokens: readonly TokenLogprob[]) {
  return tokens.map((t) => ({
    token: t.token,
    logprob: t.logprob,
    bytes: bytesOf(t.token),
    top_logprobs: t.top_logprobs.map((a) => ({ token: a.token, logprob: a.logprob, bytes: bytesOf(a.token) })),
  }));
}

/**
 * Choice `index`'s tokens from an attempt's events, when their texts make up `reply`
 * exactly; null when they do not (a final re-announced without its deltas, or deltas
 * without logprobs).
 */
export function gatheredLogprobs(events: readonly ChatEvent[], index: number, reply: string): TokenLogprob[] | null {
  const tokens: TokenLogprob[] = [];
  for (const e of events) {
    if (e.type !== "delta" || (e.choice ?? 0) !== index) continue;
    if (e.logprobs === undefined) return null;
    tokens.push(...e.logprobs);
  }
  return tokens.map((t) => t.token).join("") === reply ? tokens : null;
}
