/**
 * Stop texts over a stream of tokens, for the logprobs generation loop
 * (worker/logprob-generation.ts), which has no LlamaChat to find them. Tokens come in
 * groups whose texts join to the text they add (a group is one token, or the few tokens
 * of one character split across tokens). Text that may be the start of a stop text is
 * held back until it is known not to be; a stop text ends the reply just before it, the
 * token it starts in cut to the text before it, so the tokens that go out always join to
 * the reply.
 */
import type { TokenLogprob } from "../contracts/records/events.js";

const textOf = (group: readonly TokenLogprob[]) => group.map((t) => t.token).join("");

export class StopTextFilter {
  readonly #stops: readonly string[];
  #held: TokenLogprob[][] = [];

  constructor(stops: readonly string[]) {
    this.#stops = [...new Set(stops.filter((s) => s !== ""))];
  }

  /** Takes one group; returns the groups that may go out now, and whether a stop text ended the reply (nothing more goes out). */
  push(group: TokenLogprob[]): { out: TokenLogprob[][]; stopped: boolean } {
    this.#held.push(group);
    const held = this.#held.map(textOf);
    const text = held.join("");
    let at = -1;
    for (const stop of this.#stops) {
      const i = text.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      const out = cutAt(this.#held, held, at);
      this.#held = [];
      return { out, stopped: true };
    }
    // Keep from the group the longest stop-text start at the end of the text begins in.
    let keep = 0;
    for (const stop of this.#stops) {
      for (let k = Math.min(stop.length - 1, text.length); k > keep; k--) {
        if (text.endsWith(stop.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    let end = 0;
    let free = 0;
    while (free < held.length && end + held[free]!.length <= text.length - keep) end += held[free++]!.length;
    return { out: this.#held.splice(0, free), stopped: false };
  }

  /** The end of generation without a stop text: what was held goes out. */
  end(): TokenLogprob[][] {
    const out = this.#held;
    this.#held = [];
    return out;
  }
}

/** The groups' tokens before text position `at`, the token that crosses it cut there. */
function cutAt(groups: readonly TokenLogprob[][], texts: readonly string[], at: number): TokenLogprob[][] {
  const out: TokenLogprob[][] = [];
  let pos = 0;
  for (let g = 0; g < groups.length && pos < at; g++) {
    const group = groups[g]!;
    if (pos + texts[g]!.length <= at) {
      out.push(group);
      pos += texts[g]!.length;
      continue;
    }
    const cut: TokenLogprob[] = [];
    for (const t of group) {
      if (pos >= at) break;
      const token = t.token.slice(0, at - pos);
      cut.push(token === t.token ? t : { ...t, token });
      pos += token.length;
    }
    if (textOf(cut) !== "") out.push(cut);
    break;
  }
  return out;
}
