import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeLag } from "../../../gateway/kafka/lag-exporter.js";

describe("consumer group lag", () => {
  it("is the end offset minus the committed offset, per partition", () => {
    const ends = [
      { partition: 1, high: 10, low: 0 },
      { partition: 0, high: 7, low: 0 },
    ];
    assert.deepEqual(
      computeLag(
        ends,
        new Map([
          [0, 7],
          [1, 4],
        ]),
      ),
      [
        { partition: 0, lag: 0 },
        { partition: 1, lag: 6 },
      ],
    );
  });

  it("counts every retained record of a partition the group never committed", () => {
    const ends = [
      { partition: 0, high: 12, low: 5 },
      { partition: 1, high: 3, low: 0 },
    ];
    assert.deepEqual(computeLag(ends, new Map()), [
      { partition: 0, lag: 7 },
      { partition: 1, lag: 3 },
    ]);
  });

  it("is never negative", () => {
    assert.deepEqual(computeLag([{ partition: 0, high: 3, low: 0 }], new Map([[0, 5]])), [{ partition: 0, lag: 0 }]);
  });
});
