/**
 * Per-tenant quotas as pure logic on a fake clock: what one tenant spends never limits
 * another; minute windows slide; held resources come back; the headers are OpenAI's; and a
 * limit is shared among the gateway replicas.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { QuotaExceeded, READER_RETENTION_MS, TenantQuotas, resetAfter, type TenantLimits } from "../../../gateway/quotas.js";

const none: TenantLimits = { requestsPerMinute: 0, tokensPerMinute: 0, concurrentRequests: 0, openStreams: 0, namedReaders: 0 };

function quotas(defaults: Partial<TenantLimits>, perTenant: Record<string, Partial<TenantLimits>> = {}, replicas = 1) {
  let now = 1_000_000;
  const rejected: string[] = [];
  const q = new TenantQuotas({
    defaults: { ...none, ...defaults },
    perTenant: (t) => perTenant[t],
    replicas: () => replicas,
    clock: () => now,
    onRejected: (t, limit) => rejected.push(`${t}:${limit}`),
  });
  return { q, rejected, advance: (ms: number) => (now += ms) };
}

const refusal = (f: () => unknown): QuotaExceeded => {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof QuotaExceeded, String(err));
    return err;
  }
  assert.fail("expected a 429");
};

describe("tenant quotas", () => {
  it("holds tenant b to its requests per minute while tenant a goes on, with OpenAI's headers", () => {
    const { q, rejected, advance } = quotas({ requestsPerMinute: 3 });
    for (let i = 0; i < 3; i++) q.admit("b");
    const e = refusal(() => q.admit("b"));
    assert.equal(e.limit, "requestsPerMinute");
    assert.match(e.message, /tenant b is at its limit of 3 requests per minute/);
    assert.equal(e.headers["x-ratelimit-limit-requests"], "3");
    assert.equal(e.headers["x-ratelimit-remaining-requests"], "0");
    assert.equal(e.headers["retry-after"], "60", "the first call ages out a minute after it was counted");
    assert.deepEqual(rejected, ["b:requestsPerMinute"]);
    // Tenant a has its own window.
    const headers = q.admit("a");
    assert.equal(headers["x-ratelimit-remaining-requests"], "2");
    // The window slides: a minute later b's calls have aged out.
    advance(60_000);
    assert.equal(q.admit("b")["x-ratelimit-remaining-requests"], "2");
  });

  it("slides in one-second steps: calls spread over the minute age out one by one", () => {
    const { q, advance } = quotas({ requestsPerMinute: 2 });
    q.admit("a");
    advance(30_000);
    q.admit("a");
    const e = refusal(() => q.admit("a"));
    assert.equal(e.retryAfterSeconds, 30, "the first call is 30 s old: it leaves the window in 30 s");
    advance(30_000);
    q.admit("a");
  });

  it("counts tokens from usage, and refuses new work once the minute's tokens are spent", () => {
    const { q } = quotas({ tokensPerMinute: 100 });
    q.admit("a");
    q.spend("a", 60);
    assert.equal(q.admit("a")["x-ratelimit-remaining-tokens"], "40");
    q.spend("a", 50);
    const e = refusal(() => q.admit("a"));
    assert.equal(e.limit, "tokensPerMinute");
    assert.equal(e.headers["x-ratelimit-remaining-tokens"], "0");
    q.admit("b");
  });

  it("gives held resources back once, and limits each kind on its own", () => {
    const { q } = quotas({ openStreams: 2, concurrentRequests: 1 });
    const first = q.hold("a", "openStreams");
    q.hold("a", "openStreams");
    assert.equal(refusal(() => q.hold("a", "openStreams")).limit, "openStreams");
    q.hold("a", "concurrentRequests");
    q.hold("b", "openStreams");
    first();
    first(); // a second release does not free another
    q.hold("a", "openStreams");
    assert.equal(refusal(() => q.hold("a", "openStreams")).limit, "openStreams");
    assert.deepEqual(q.held("a"), { concurrentRequests: 1, openStreams: 2 });
  });

  it("takes a tenant's own limits over the defaults; 0 is no limit", () => {
    const { q } = quotas({ requestsPerMinute: 1 }, { big: { requestsPerMinute: 0 }, small: { concurrentRequests: 1 } });
    for (let i = 0; i < 100; i++) q.admit("big");
    q.admit("small");
    refusal(() => q.admit("small"));
    q.hold("small", "concurrentRequests");
    refusal(() => q.hold("small", "concurrentRequests"));
  });

  it("enforces its share of a limit among the replicas, rounded up", () => {
    const { q } = quotas({ requestsPerMinute: 10, openStreams: 3 }, {}, 4);
    assert.deepEqual(q.limits("a"), { requestsPerMinute: 3, tokensPerMinute: 0, concurrentRequests: 0, openStreams: 1, namedReaders: 0 });
    for (let i = 0; i < 3; i++) q.admit("a");
    refusal(() => q.admit("a"));
  });

  it("counts each tenant's named readers: one used again is free, a new one past the limit is refused, and they age out", () => {
    const { q, rejected, advance } = quotas({ namedReaders: 2 });
    q.useReader("b", "r1");
    q.useReader("b", "r2");
    q.useReader("b", "r1");
    const refused = refusal(() => q.useReader("b", "r3"));
    assert.equal(refused.limit, "namedReaders");
    assert.match(refused.message, /2 named history readers/);
    assert.ok(Number(refused.headers["retry-after"]) > 0);
    q.useReader("a", "r3"); // tenant a's readers are its own
    assert.deepEqual(rejected, ["b:namedReaders"]);
    advance(READER_RETENTION_MS - 1000);
    q.useReader("b", "r1"); // used again: kept, r2 is now the oldest
    advance(2000);
    q.useReader("b", "r3"); // r2 is past its retention and no longer counts
    assert.throws(() => q.useReader("b", "r4"), QuotaExceeded, "r1 and r3 are held");
  });

  it("writes resets as OpenAI does", () => {
    assert.equal(resetAfter(0), "0s");
    assert.equal(resetAfter(1.2), "2s");
    assert.equal(resetAfter(360), "6m0s");
  });
});
