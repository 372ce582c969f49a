import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { restartDelayMs } from "../../../scripts/local/supervisor.js";

describe("run-local's restart back-off", () => {
  it("starts at 1 s and doubles to at most 30 s while a worker keeps dying", () => {
    const delays: number[] = [];
    let last: number | null = null;
    for (let i = 0; i < 8; i++) delays.push((last = restartDelayMs(last, 2000)));
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("starts over at 1 s after a worker stayed up a minute", () => {
    assert.equal(restartDelayMs(30_000, 60_000), 1000);
    assert.equal(restartDelayMs(30_000, 59_999), 30_000);
  });
});
