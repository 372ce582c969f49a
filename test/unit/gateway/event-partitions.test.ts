import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Partitioners } from "kafkajs";
import { defaultEventsPartition } from "../../../gateway/kafka/event-partitions.js";

describe("the default events partition", () => {
  it("is the partition the workers' producer picks by key (murmur2, as the Java client)", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    for (const partitions of [1, 2, 3, 12]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 1,
        partitionErrorCode: 0,
        replicas: [1],
        isr: [1],
      }));
      for (const id of ["c1", "conversation-2", "a0b1c2d3-0000-4000-8000-000000000000"]) {
        assert.equal(defaultEventsPartition(id, partitions), partitioner({ topic: "t", partitionMetadata, message: { key: id, value: "x" } }));
      }
    }
  });
});
