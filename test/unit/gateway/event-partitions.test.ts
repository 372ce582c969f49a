import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defaultEventsPartition, pickEventsPartition } from "../../../gateway/kafka/event-partitions.js";
import { keyPartition } from "../../../platform/kafka/partitioner.js";

describe("the default events partition", () => {
  it("is the partition the workers' producer picks by key (murmur2, as the Java client)", () => {
    // keyPartition names the producers' partition for a key (test/unit/platform/partitioner.test.ts
    // holds it to the Java client's murmur2).
    for (const partitions of [1, 2, 3, 12]) {
      for (const id of ["c1", "conversation-2", "a0b1c2d3-0000-4000-8000-000000000000"]) {
        assert.equal(defaultEventsPartition(id, partitions), keyPartition(id, partitions));
      }
    }
  });

  it("picks, for a new request, a partition the replica owns: the key's own when it has it, else one of its by conversation", () => {
    const ids = Array.from({ length: 200 }, (_, i) => `conversation-${i}`);
    for (const id of ids) {
      assert.equal(pickEventsPartition(id, [0, 1, 2, 3], 4), defaultEventsPartition(id, 4), "a lone replica keeps the default layout");
      const owned = [1, 3];
      const picked = pickEventsPartition(id, owned, 4)!;
      assert.ok(owned.includes(picked));
      if (owned.includes(defaultEventsPartition(id, 4))) assert.equal(picked, defaultEventsPartition(id, 4));
      assert.equal(pickEventsPartition(id, owned, 4), picked, "the same conversation, the same partition");
      assert.equal(pickEventsPartition(id, [], 4), undefined, "none while the replica owns none");
    }
    const spread = new Set(ids.map((id) => pickEventsPartition(id, [1, 3], 4)));
    assert.deepEqual([...spread].sort(), [1, 3], "conversations spread over every owned partition");
  });
});
