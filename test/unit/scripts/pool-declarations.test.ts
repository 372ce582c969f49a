/**
 * The topics Job's pool logic (scripts/deploy/pool-declarations.ts), without Kafka: what it
 * accepts as KAFKA_POOLS, the topics the pools need, and the records that make chat.models
 * say what the release declares (a record per pool that changed, a tombstone per pool gone).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../../contracts/config/env.js";
import { poolRecordSchema, type PoolRecord } from "../../../contracts/records/models.js";
import { topicNames, topicSpecs, type TopicSettings } from "../../../contracts/topics.js";
import { declarationPlan, parsePools, poolTopicSpecs, TOPICS_JOB, type CurrentPool } from "../../../scripts/deploy/pool-declarations.js";

const SETTINGS: TopicSettings = {
  requestPartitions: 6,
  eventPartitions: 0,
  replicationFactor: -1,
  minInsyncReplicas: 0,
  conversationTtlMs: 604_800_000,
  history: { retentionMs: 0, partitions: 0, replicationFactor: 0 },
};

const record = (pool: string, models: string[], adapters?: Record<string, string>): PoolRecord => ({
  v: 1,
  pool,
  models,
  ...(adapters ? { adapters } : {}),
  at: 1,
  by: "worker-0",
});

describe("KAFKA_POOLS", () => {
  it("is the release's pools, as the chart renders them", () => {
    const text = '[{"models":["small"],"pool":"small"},{"adapters":{"large-sql":"large"},"models":["large","large-sql"],"pool":"large"}]';
    assert.deepEqual(parsePools(text), [
      { pool: "small", models: ["small"] },
      { pool: "large", models: ["large", "large-sql"], adapters: { "large-sql": "large" } },
    ]);
  });

  it("unset or empty: null (the default pool's topics, nothing declared)", () => {
    assert.equal(parsePools(undefined), null);
    assert.equal(parsePools("  "), null);
  });

  it("refuses what the contracts refuse, naming it", () => {
    const refused = (text: string) => {
      try {
        parsePools(text);
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        return err.message;
      }
      assert.fail(`accepted ${text}`);
    };
    assert.match(refused("not json"), /KAFKA_POOLS: must be a JSON array/);
    assert.match(refused("[]"), /declares no pool/);
    assert.match(refused('[{"pool":"Small","models":["a"]}]'), /KAFKA_POOLS: 0\.pool/);
    assert.match(refused('[{"pool":"a","models":[]}]'), /0\.models/);
    assert.match(refused('[{"pool":"a","models":["x"],"extra":1}]'), /KAFKA_POOLS/);
    assert.match(refused('[{"pool":"a","models":["x"]},{"pool":"a","models":["y"]}]'), /pool a is declared twice/);
    assert.match(refused('[{"pool":"a","models":["x"]},{"pool":"b","models":["x"]}]'), /model x is served by pool a and by pool b/);
    assert.match(refused('[{"pool":"a","models":["x","x"]}]'), /names a model twice/);
    assert.match(refused('[{"pool":"a","models":["x"],"adapters":{"y":"x"}}]'), /adapters\.y: is not one of the pool's models/);
  });
});

describe("the pools' topics", () => {
  it("the default pool's always, then each other pool's requests and memory, each once, with the same settings", () => {
    const specs = poolTopicSpecs(
      "p.",
      [
        { pool: "small", models: ["s"] },
        { pool: "default", models: ["d"] },
        { pool: "large", models: ["l"] },
      ],
      SETTINGS,
    );
    const names = specs.map((s) => s.name);
    assert.equal(new Set(names).size, names.length, "no topic twice");
    assert.deepEqual(names, [
      ...topicSpecs(topicNames("p."), SETTINGS).map((s) => s.name),
      "p.chat.requests.pool.small",
      "p.chat.memory.pool.small",
      "p.chat.requests.pool.large",
      "p.chat.memory.pool.large",
    ]);
    assert.ok(names.includes("p.chat.models"));
    const byName = new Map(specs.map((s) => [s.name, s]));
    const base = new Map(topicSpecs(topicNames("p."), SETTINGS).map((s) => [s.name, s]));
    assert.deepEqual({ ...byName.get("p.chat.requests.pool.small"), name: "" }, { ...base.get("p.chat.requests"), name: "" });
    assert.deepEqual({ ...byName.get("p.chat.memory.pool.large"), name: "" }, { ...base.get("p.chat.memory"), name: "" }, "compacted like chat.memory");
    assert.deepEqual(
      poolTopicSpecs("", null, SETTINGS).map((s) => s.name),
      topicSpecs(topicNames(""), SETTINGS).map((s) => s.name),
      "no KAFKA_POOLS: the topics of before pools, and chat.models",
    );
  });
});

describe("what the Job writes to chat.models", () => {
  const small = { pool: "small", models: ["small"] };
  const large = { pool: "large", models: ["large", "large-sql"], adapters: { "large-sql": "large" } };

  it("an empty chat.models: a PoolRecord per pool, keyed by its name, each a valid record", () => {
    const plan = declarationPlan([small, large], new Map(), 1234);
    assert.deepEqual(plan.records, [
      { key: "small", value: { v: 1, pool: "small", models: ["small"], at: 1234, by: TOPICS_JOB } },
      { key: "large", value: { v: 1, pool: "large", models: ["large", "large-sql"], adapters: { "large-sql": "large" }, at: 1234, by: TOPICS_JOB } },
    ]);
    for (const r of plan.records) assert.ok(poolRecordSchema.safeParse(r.value).success);
    assert.deepEqual([plan.unchanged, plan.removed], [[], []]);
  });

  it("a pool the release no longer declares gets a tombstone, before the declarations; a pool already removed gets none", () => {
    const current = new Map<string, CurrentPool>([
      ["small", record("small", ["small"])],
      ["old", record("old", ["old-model"])],
      ["gone", null],
      ["broken", "invalid"],
    ]);
    const plan = declarationPlan([small, large], current, 99);
    assert.deepEqual(
      plan.records.map((r) => [r.key, r.value === null ? null : r.value.models]),
      [
        ["broken", null],
        ["old", null],
        ["large", ["large", "large-sql"]],
      ],
      "tombstones first: a model that moves is briefly unknown, never routed to a pool that is going",
    );
    assert.deepEqual(plan.removed, ["broken", "old"]);
    assert.deepEqual(plan.unchanged, ["small"], "small's record (a worker's) says what the release says: not written again");
  });

  it("a pool whose record differs in models or adapters is declared again; the same adapters in another order are the same", () => {
    const current = new Map<string, CurrentPool>([
      ["small", record("small", ["small-old"])],
      ["large", record("large", ["large", "large-sql"])],
    ]);
    assert.deepEqual(
      declarationPlan([small, large], current, 5).records.map((r) => r.key),
      ["small", "large"],
      "small's model changed; large's record lacks its adapters",
    );
    const two = { pool: "two", models: ["b", "x", "y"], adapters: { x: "b", y: "b" } };
    const same = new Map<string, CurrentPool>([["two", record("two", ["b", "x", "y"], { y: "b", x: "b" })]]);
    assert.deepEqual(declarationPlan([two], same, 5), { records: [], unchanged: ["two"], removed: [] });
    const invalid = new Map<string, CurrentPool>([["two", "invalid"]]);
    assert.deepEqual(
      declarationPlan([two], invalid, 5).records.map((r) => r.key),
      ["two"],
      "a record that is not a pool record is replaced",
    );
  });

  it("the default pool of a single-model install: one record, and every other pool on chat.models removed", () => {
    const plan = declarationPlan([{ pool: "default", models: ["kafka-llm"] }], new Map<string, CurrentPool>([["small", record("small", ["small"])]]), 7);
    assert.deepEqual(plan.records, [
      { key: "small", value: null },
      { key: "default", value: { v: 1, pool: "default", models: ["kafka-llm"], at: 7, by: TOPICS_JOB } },
    ]);
  });
});
