import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReadProgress } from "../../../gateway/kafka/read-progress.js";

describe("read progress", () => {
  it("is reached when every partition has been read up to its target", async () => {
    const progress = new ReadProgress();
    const targets = [
      { topic: "t", partition: 0, offset: "5" },
      { topic: "t", partition: 1, offset: "0" },
    ];
    assert.equal(progress.reached(targets), false);
    const waiting = progress.waitFor(targets, 5000);
    progress.advance("t", 0, 3n);
    assert.equal(progress.reached(targets), false);
    progress.advance("t", 0, 5n);
    assert.equal(await waiting, true);
    progress.advance("t", 0, 2n);
    assert.equal(progress.reached(targets), true, "positions never go back");
  });

  it("gives up after the timeout", async () => {
    assert.equal(await new ReadProgress().waitFor([{ topic: "t", partition: 0, offset: "1" }], 20), false);
  });
});
