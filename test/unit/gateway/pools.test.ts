import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PoolRecord } from "../../../contracts/records/models.js";
import { ConversationPools, PoolRouter } from "../../../gateway/pools.js";
import { PoolLanes, type LaneParts } from "../../../gateway/kafka/pool-lanes.js";
import { ApiError } from "../../../gateway/errors.js";

const record = (pool: string, models: string[], at = 1, adapters?: Record<string, string>): PoolRecord => ({
  v: 1,
  pool,
  models,
  ...(adapters && { adapters }),
  at,
  by: "test",
});
const declared = (...records: PoolRecord[]) => new Map(records.map((r) => [r.pool, r]));

describe("PoolRouter", () => {
  it("serves MODEL_NAME from the default pool's topics until chat.models declares a pool", () => {
    const router = new PoolRouter({ topicPrefix: "p.", workerGroup: "w", defaultModel: "gemma" });
    assert.deepEqual(router.models(), [{ id: "gemma", pool: "default" }]);
    assert.deepEqual(router.route("gemma"), { pool: "default", topic: "p.chat.requests", group: "w", models: ["gemma"], adapters: {} });
    assert.equal(router.route(undefined).pool, "default");
  });

  it("routes each model to its pool's topic and group, lists adapters with their base, and says which pools are new", () => {
    const router = new PoolRouter({ topicPrefix: "", workerGroup: "w", defaultModel: "gemma" });
    const added = router.update(declared(record("default", []), record("fast", ["small", "small-support"], 2, { "small-support": "small" })));
    assert.deepEqual(added.map((l) => l.pool).sort(), ["fast"], "the default pool was there before");
    assert.equal(router.route("small-support").topic, "chat.requests.pool.fast");
    assert.equal(router.route("small").group, "w.pool.fast");
    assert.equal(router.route("gemma").pool, "default", "the default pool answers to MODEL_NAME");
    assert.deepEqual(router.models(), [
      { id: "gemma", pool: "default" },
      { id: "small", pool: "fast" },
      { id: "small-support", pool: "fast", parent: "small" },
    ]);
  });

  it("answers 404 naming the model parameter and every model served, for a model no pool serves", () => {
    const router = new PoolRouter({ topicPrefix: "", workerGroup: "w", defaultModel: "gemma" });
    router.update(declared(record("fast", ["small"]), record("big", ["large"])));
    assert.throws(
      () => router.route("gpt-4o"),
      (err: unknown) => err instanceof ApiError && err.code === "not_found" && err.param === "model" && /no model gpt-4o .*: large, small$/.test(err.message),
    );
    // No default pool declared: a request naming no model has nowhere to go.
    assert.throws(() => router.route(undefined), /no model was named and there is no default pool; name one of: large, small/);
    assert.equal(router.lane("default"), undefined, "once chat.models declares pools, the default is only there if declared");
  });

  it("gives a model two pools claim to the later declaration, and forgets a withdrawn pool", () => {
    const router = new PoolRouter({ topicPrefix: "", workerGroup: "w", defaultModel: "gemma" });
    router.update(declared(record("old", ["m"], 5), record("new", ["m"], 9)));
    assert.equal(router.route("m").pool, "new");
    router.update(declared(record("old", ["m"], 5)));
    assert.equal(router.route("m").pool, "old");
  });
});

describe("ConversationPools", () => {
  it("keeps each tenant's conversations apart: the same id of two tenants is two entries", () => {
    const pools = new ConversationPools({ maxPerTenant: 10, ttlMs: 1000 });
    pools.note("a", "c1", "fast");
    pools.note("b", "c1", "big");
    assert.equal(pools.get("a", "c1"), "fast");
    assert.equal(pools.get("b", "c1"), "big");
    pools.forget("a", "c1");
    assert.equal(pools.get("a", "c1"), undefined);
    assert.equal(pools.get("b", "c1"), "big");
  });

  it("bounds each tenant's entries, dropping its least recently noted, without touching another tenant's", () => {
    const pools = new ConversationPools({ maxPerTenant: 2, ttlMs: 1000 });
    pools.note("b", "keep", "x");
    pools.note("a", "c1", "x");
    pools.note("a", "c2", "x");
    pools.note("a", "c1", "y");
    pools.note("a", "c3", "x");
    assert.equal(pools.get("a", "c2"), undefined, "a's oldest went");
    assert.equal(pools.get("a", "c1"), "y");
    assert.equal(pools.get("b", "keep"), "x");
    assert.equal(pools.size, 3);
  });

  it("forgets an entry not noted within the TTL", () => {
    let now = 0;
    const pools = new ConversationPools({ maxPerTenant: 2, ttlMs: 100, now: () => now });
    pools.note("a", "c", "x");
    now = 101;
    assert.equal(pools.get("a", "c"), undefined);
    assert.equal(pools.size, 0);
  });
});

describe("PoolLanes' queued notices", () => {
  /** A lane whose queue watch records what it was asked to watch. */
  const fakeLane = (watched: string[]) =>
    ({
      queueWatch: { watch: (id: string) => (watched.push(id), () => watched.splice(watched.indexOf(id), 1)) },
      conversations: { get: async () => undefined, cachedOwners: 0, stop: async () => {} },
      startLag: () => {},
      caughtUp: () => true,
      stop: async () => {},
    }) as unknown as LaneParts;

  it("watches a request only on the pool whose topic it was read on, once it is read there", async () => {
    const watched: Record<string, string[]> = { default: [], fast: [] };
    const lanes = new PoolLanes({ start: async (lane) => fakeLane(watched[lane.pool]!), onError: () => {}, maxRequests: 10 });
    const router = new PoolRouter({ topicPrefix: "", workerGroup: "w", defaultModel: "m" });
    router.update(declared(record("default", []), record("fast", ["small"])));
    await lanes.ensure(router.lanes());

    lanes.requestRead("r1", "fast");
    const stop1 = lanes.queueWatch.watch("r1", () => {});
    assert.deepEqual(watched, { default: [], fast: ["r1"] });
    // Not read yet: watched nowhere until it is, then on its pool alone.
    const stop2 = lanes.queueWatch.watch("r2", () => {});
    assert.deepEqual(watched, { default: [], fast: ["r1"] });
    lanes.requestRead("r2", "default");
    assert.deepEqual(watched, { default: ["r2"], fast: ["r1"] });
    stop1();
    stop2();
    assert.deepEqual(watched, { default: [], fast: [] });
    // A stream that ends before its request is read leaves nothing behind.
    lanes.queueWatch.watch("r3", () => {})();
    lanes.requestRead("r3", "fast");
    assert.deepEqual(watched, { default: [], fast: [] });
  });
});
