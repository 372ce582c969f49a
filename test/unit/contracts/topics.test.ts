/**
 * What the created topics promise about durability: min.insync.replicas with acks=all is
 * what keeps an acknowledged request when one broker is lost.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../../contracts/config/env.js";
import { loadGatewayConfig } from "../../../contracts/config/gateway.js";
import { minInsyncReplicasFor, topicNames, topicSpecs } from "../../../contracts/topics.js";

const settings = (replicationFactor: number, minInsyncReplicas?: number, historyReplicationFactor = replicationFactor) => ({
  requestPartitions: 2,
  eventPartitions: 2,
  replicationFactor,
  conversationTtlMs: 3_600_000,
  history: { retentionMs: 3_600_000, partitions: 2, replicationFactor: historyReplicationFactor },
  ...(minInsyncReplicas === undefined ? {} : { minInsyncReplicas }),
});

const isrByTopic = (specs: ReturnType<typeof topicSpecs>) => Object.fromEntries(specs.map((s) => [s.name, s.configs["min.insync.replicas"]]));

describe("min.insync.replicas of the created topics", () => {
  it("is 2 on every topic with a replication factor of 3, so one broker lost loses no acknowledged write", () => {
    const specs = topicSpecs(topicNames(""), settings(3));
    assert.ok(specs.length >= 6);
    for (const spec of specs) assert.equal(spec.configs["min.insync.replicas"], "2", spec.name);
    // The topic's own settings stay beside it.
    assert.equal(specs.find((s) => s.name === "chat.memory")!.configs["cleanup.policy"], "compact,delete");
  });

  it("is left to the broker where it cannot be 2: one or two replicas, or the broker's own factor", () => {
    for (const rf of [1, 2, -1])
      assert.deepEqual(
        Object.values(isrByTopic(topicSpecs(topicNames(""), settings(rf)))),
        [undefined, undefined, undefined, undefined, undefined, undefined, undefined],
        `rf ${rf}`,
      );
    assert.equal(minInsyncReplicasFor(5), 2);
  });

  it("takes the configured value, per topic by its own replication factor when derived", () => {
    assert.equal(isrByTopic(topicSpecs(topicNames(""), settings(3, 3)))["chat.requests"], "3");
    const mixed = isrByTopic(topicSpecs(topicNames(""), settings(1, 0, 3)));
    assert.equal(mixed["chat.history"], "2", "chat.history has its own replication factor");
    assert.equal(mixed["chat.requests"], undefined);
  });

  it("refuses a configured value above a topic's replication factor, saying why", () => {
    const base = { GATEWAY_AUTH: "none", KAFKA_REPLICATION_FACTOR: "3", HISTORY_REPLICATION_FACTOR: "2" };
    assert.equal(loadGatewayConfig({ ...base, KAFKA_MIN_INSYNC_REPLICAS: "2" }).kafka.minInsyncReplicas, 2);
    assert.throws(
      () => loadGatewayConfig({ ...base, KAFKA_MIN_INSYNC_REPLICAS: "3" }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /KAFKA_MIN_INSYNC_REPLICAS: is 3, more than a topic's replication factor \(2\): Kafka would refuse every write/.test(err.problems.join("\n")),
    );
    assert.equal(loadGatewayConfig({ GATEWAY_AUTH: "none" }).kafka.minInsyncReplicas, 0, "derived by default");
  });
});
