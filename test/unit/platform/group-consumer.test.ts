/**
 * The request consumer's fetch watchdog decides from what it is told (stalledPartitions):
 * a partition counts as stalled only when it is quiet, not paused, and the broker holds
 * records past the consumer's position; anything else is left to librdkafka.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stalledPartitions } from "../../../platform/kafka/group-consumer.js";

describe("the request consumer's fetch watchdog", () => {
  const now = 100_000;
  const base = {
    now,
    stallMs: 5000,
    paused: new Set<number>(),
  };

  it("finds a quiet partition whose log holds records past its position", () => {
    const stalled = stalledPartitions({
      ...base,
      progress: new Map([
        [0, now - 6000],
        [1, now - 6000],
      ]),
      positions: new Map([
        [0, 3],
        [1, 7],
      ]),
      ends: new Map([
        [0, 4],
        [1, 7],
      ]),
    });
    assert.deepEqual(stalled, [0], "partition 1 is read to its end: idle, not stalled");
  });

  it("leaves a partition that delivered within the bound, a paused one, and one it cannot judge", () => {
    const stalled = stalledPartitions({
      ...base,
      paused: new Set([1]),
      progress: new Map([
        [0, now - 1000], // delivered a second ago
        [1, now - 60_000], // paused by the worker (flow control)
        [2, now - 60_000], // no position yet (never fetched since assigned)
        [3, now - 60_000], // the broker did not answer
        [4, now - 60_000], // position not known (librdkafka's invalid offset)
      ]),
      positions: new Map<number, number | undefined>([
        [0, 3],
        [1, 3],
        [2, undefined],
        [3, 3],
        [4, -1001],
      ]),
      ends: new Map([
        [0, 10],
        [1, 10],
        [2, 10],
        [4, 10],
      ]),
    });
    assert.deepEqual(stalled, []);
  });

  it("judges from the stall bound exactly", () => {
    const at = (quietMs: number) =>
      stalledPartitions({ ...base, progress: new Map([[5, now - quietMs]]), positions: new Map([[5, 0]]), ends: new Map([[5, 1]]) });
    assert.deepEqual(at(4999), []);
    assert.deepEqual(at(5000), [5]);
  });
});
