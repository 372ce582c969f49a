import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { MAX_DELTA_LOGPROBS } from "../../../contracts/limits.js";
import { DeltaBatcher, type DeltaChunk } from "../../../worker/delta-batcher.js";

describe("DeltaBatcher", () => {
  it("sends the first text at once, then what comes within one interval as one chunk", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const chunks: string[] = [];
      const batcher = new DeltaBatcher({ flushMs: 50, maxChars: 1000, emit: (c) => chunks.push(c.text) });
      for (const t of ["Once", " upon", " a", " time"]) batcher.push(t);
      assert.deepEqual(chunks, ["Once"], "the first token goes out at once; the rest waits for the interval");
      mock.timers.tick(50);
      assert.deepEqual(chunks, ["Once", " upon a time"]);
      batcher.push(" there");
      mock.timers.tick(49);
      assert.deepEqual(chunks, ["Once", " upon a time"]);
      mock.timers.tick(1);
      assert.deepEqual(chunks, ["Once", " upon a time", " there"]);
    } finally {
      mock.timers.reset();
    }
  });

  it("sends early when maxChars pile up, and flush() sends the rest", () => {
    const chunks: string[] = [];
    const batcher = new DeltaBatcher({ flushMs: 10_000, maxChars: 5, emit: (c) => chunks.push(c.text) });
    batcher.push("first");
    batcher.push("abc");
    batcher.push("def");
    assert.deepEqual(chunks, ["first", "abcdef"]);
    batcher.push("g");
    batcher.flush();
    batcher.flush();
    assert.deepEqual(chunks, ["first", "abcdef", "g"], "flush sends once and never sends empty chunks");
    batcher.push("");
    batcher.flush();
    assert.equal(chunks.length, 3);
  });

  it("keeps each chunk's logprobs with its text, and sends once MAX_DELTA_LOGPROBS tokens pile up", () => {
    const chunks: DeltaChunk[] = [];
    const batcher = new DeltaBatcher({ flushMs: 10_000, maxChars: 100_000, emit: (c) => chunks.push(c) });
    const lp = (token: string) => ({ token, logprob: -0.5, top_logprobs: [] });
    batcher.push("a", [lp("a")]);
    assert.deepEqual(chunks, [{ text: "a", logprobs: [lp("a")] }]);
    for (let i = 0; i < MAX_DELTA_LOGPROBS - 1; i++) batcher.push("b", [lp("b")]);
    assert.equal(chunks.length, 1, "under the bound it waits for the interval");
    batcher.push("b", [lp("b")]);
    assert.equal(chunks.length, 2, "at the bound it goes out at once");
    assert.equal(chunks[1]!.text, "b".repeat(MAX_DELTA_LOGPROBS));
    assert.equal(chunks[1]!.logprobs!.map((l) => l.token).join(""), chunks[1]!.text, "the tokens join to the chunk's text");
    for (let i = 0; i < MAX_DELTA_LOGPROBS - 1; i++) batcher.push("b", [lp("b")]);
    batcher.push("cd", [lp("c"), lp("d")]);
    assert.equal(chunks.length, 3, "a push that would pass the bound sends what is buffered first");
    assert.equal(chunks[2]!.logprobs!.length, MAX_DELTA_LOGPROBS - 1);
    assert.deepEqual(batcher.take(), { text: "cd", logprobs: [lp("c"), lp("d")] });
    batcher.push("e");
    assert.deepEqual(batcher.take(), { text: "e" }, "text without logprobs carries none");
  });
});
