import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { DeltaBatcher } from "../../../worker/delta-batcher.js";

describe("DeltaBatcher", () => {
  it("sends the first text at once, then what comes within one interval as one chunk", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const chunks: string[] = [];
      const batcher = new DeltaBatcher({ flushMs: 50, maxChars: 1000, emit: (t) => chunks.push(t) });
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
    const batcher = new DeltaBatcher({ flushMs: 10_000, maxChars: 5, emit: (t) => chunks.push(t) });
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
});
