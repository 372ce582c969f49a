import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TokenLogprob } from "../../../contracts/records/events.js";
import { StopTextFilter } from "../../../worker/stop-text-filter.js";

const tok = (token: string): TokenLogprob => ({ token, logprob: -1, top_logprobs: [] });
const text = (groups: readonly TokenLogprob[][]) =>
  groups
    .flat()
    .map((t) => t.token)
    .join("");

/** Feeds one token a group; returns what went out and whether a stop ended it. */
function run(stops: string[], tokens: string[]) {
  const filter = new StopTextFilter(stops);
  const out: TokenLogprob[][] = [];
  for (const t of tokens) {
    const r = filter.push([tok(t)]);
    out.push(...r.out);
    if (r.stopped) return { out, stopped: true };
  }
  out.push(...filter.end());
  return { out, stopped: false };
}

describe("StopTextFilter", () => {
  it("lets text through at once when it cannot start a stop text", () => {
    const filter = new StopTextFilter(["<end>"]);
    assert.deepEqual(filter.push([tok("Once")]), { out: [[tok("Once")]], stopped: false });
    assert.deepEqual(filter.push([tok(" upon")]).out, [[tok(" upon")]]);
  });

  it("holds back what may start a stop text, and lets it go once it cannot", () => {
    const filter = new StopTextFilter(["<end>"]);
    assert.deepEqual(filter.push([tok("a <")]).out, [], "the token holding '<' waits");
    assert.deepEqual(filter.push([tok("e")]).out, []);
    const r = filter.push([tok("x")]);
    assert.equal(text(r.out), "a <ex");
    assert.equal(r.stopped, false);
  });

  it("ends before a stop text across tokens, cutting the token it starts in, so the tokens join to the reply", () => {
    const r = run(["<end>"], ["Hi", " there<", "en", "d>", " more"]);
    assert.equal(r.stopped, true);
    assert.equal(text(r.out), "Hi there");
    assert.deepEqual(
      r.out.flat().map((t) => t.token),
      ["Hi", " there"],
      "the cut token keeps its logprob, with its text before the stop",
    );
  });

  it("stops at the earliest of several stop texts, and drops a token wholly inside a stop", () => {
    const r = run(["\nUser:", "END"], ["one", "\n", "User", ":", "two"]);
    assert.equal(text(r.out), "one");
    assert.equal(r.stopped, true);
    assert.equal(text(run(["bc", "abcd"], ["xa", "bcd"]).out), "x", "of two found in one token, the one that starts first");
  });

  it("gives everything held at the end of generation", () => {
    const r = run(["<end>"], ["a", " <e"]);
    assert.equal(r.stopped, false);
    assert.equal(text(r.out), "a <e");
  });

  it("keeps a group whole: a character split over tokens goes out with all its tokens", () => {
    const filter = new StopTextFilter(["zz"]);
    const group = [tok(""), tok("é")];
    assert.deepEqual(filter.push(group).out, [group]);
  });
});
