/**
 * Per-tenant quotas, the OpenAI way: requests and tokens per minute, and what a tenant may
 * hold at once (requests waiting or running, event streams, named history readers). Past
 * a limit the answer is 429 with `Retry-After` and OpenAI's `x-ratelimit-*` headers, so the
 * clients people use (the openai SDKs back off on exactly these) wait and retry by themselves.
 *
 * Limits come from the keys file, per tenant, over defaults from the environment; 0 is no
 * limit. Every counter is per tenant, and only tenants with a key have counters, so the
 * state is bounded by the keys file.
 *
 * Across replicas: each gateway enforces its share of a limit, the limit divided by the
 * replicas it knows of (the members of the gateways' group on chat.events), rounded up. A
 * tenant whose calls all reach one replica of N is held to about 1/N of its limit there,
 * so the tolerance is one share: a tenant gets between limit/N (all its calls on one
 * replica) and the limit plus N-1 (spread evenly, each share rounded up). Load balancers
 * spread a tenant's connections, which keeps it near the limit; a shared store would be
 * exact, and this avoids one on every call.
 *
 * Minute windows slide in one-second steps (sixty buckets), so a burst at the end of one
 * minute and the start of the next is still one minute's worth.
 */
import type { TenantLimits } from "../contracts/config/gateway.js";

export type { TenantLimits };

export type HeldKind = "concurrentRequests" | "openStreams";

/** What a 429 says: which limit, when to retry, and the headers to send. */
export class QuotaExceeded extends Error {
  readonly limit: keyof TenantLimits;
  readonly retryAfterSeconds: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(limit: keyof TenantLimits, message: string, retryAfterSeconds: number, headers: Record<string, string>) {
    super(message);
    this.name = "QuotaExceeded";
    this.limit = limit;
    this.retryAfterSeconds = retryAfterSeconds;
    this.headers = headers;
  }
}

const BUCKETS = 60;
const BUCKET_MS = 1000;

/** A count over the last minute, in one-second buckets. */
class MinuteWindow {
  readonly #counts = new Float64Array(BUCKETS);
  readonly #stamps = new Float64Array(BUCKETS).fill(-1);

  add(now: number, n: number): void {
    const second = Math.floor(now / BUCKET_MS);
    const i = second % BUCKETS;
    if (this.#stamps[i] !== second) {
      this.#stamps[i] = second;
      this.#counts[i] = 0;
    }
    this.#counts[i]! += n;
  }

  total(now: number): number {
    const second = Math.floor(now / BUCKET_MS);
    let sum = 0;
    for (let i = 0; i < BUCKETS; i++) if (second - this.#stamps[i]! < BUCKETS) sum += this.#counts[i]!;
    return sum;
  }

  /** Seconds until the window's total drops below `limit` (the oldest buckets age out first). */
  secondsUntilBelow(now: number, limit: number): number {
    const second = Math.floor(now / BUCKET_MS);
    let total = this.total(now);
    for (let age = BUCKETS - 1; age >= 0 && total >= limit; age--) {
      const i = (((second - age) % BUCKETS) + BUCKETS) % BUCKETS;
      if (this.#stamps[i] === second - age) total -= this.#counts[i]!;
      if (total < limit) return BUCKETS - age;
    }
    return total < limit ? 0 : BUCKETS;
  }
}

/**
 * How long a named reader counts after its last use: Kafka keeps an idle consumer group's
 * offsets, the reader's position, for offsets.retention.minutes (7 days by default).
 */
export const READER_RETENTION_MS = 7 * 24 * 3_600_000;

interface TenantState {
  requests: MinuteWindow;
  tokens: MinuteWindow;
  held: Record<HeldKind, number>;
  /** Named readers this replica has kept a position for, by id, with when last used (ms). */
  readers: Map<string, number>;
}

const HELD_NAMES: Record<HeldKind, string> = {
  concurrentRequests: "requests waiting or running",
  openStreams: "open event streams",
};

/** OpenAI's reset format: "1s", "6m0s". */
export function resetAfter(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

export class TenantQuotas {
  readonly #defaults: TenantLimits;
  readonly #perTenant: (tenant: string) => Partial<TenantLimits> | undefined;
  readonly #replicas: () => number;
  readonly #clock: () => number;
  readonly #tenants = new Map<string, TenantState>();
  readonly #onRejected: (tenant: string, limit: keyof TenantLimits) => void;

  constructor(options: {
    defaults: TenantLimits;
    /** The tenant's own limits (from the keys file), over the defaults. */
    perTenant?: (tenant: string) => Partial<TenantLimits> | undefined;
    /** Gateway replicas sharing the limits (at least 1). */
    replicas?: () => number;
    clock?: () => number;
    /** A rejection, for the per-tenant counter. */
    onRejected?: (tenant: string, limit: keyof TenantLimits) => void;
  }) {
    this.#defaults = options.defaults;
    this.#perTenant = options.perTenant ?? (() => undefined);
    this.#replicas = options.replicas ?? (() => 1);
    this.#clock = options.clock ?? Date.now;
    this.#onRejected = options.onRejected ?? (() => {});
  }

  /** This replica's share of the tenant's limits (0: none). */
  limits(tenant: string): TenantLimits {
    const own = this.#perTenant(tenant) ?? {};
    const replicas = Math.max(1, Math.floor(this.#replicas()));
    const share = (n: number) => (n > 0 ? Math.ceil(n / replicas) : 0);
    const pick = (k: keyof TenantLimits) => share(own[k] ?? this.#defaults[k]);
    return {
      requestsPerMinute: pick("requestsPerMinute"),
      tokensPerMinute: pick("tokensPerMinute"),
      concurrentRequests: pick("concurrentRequests"),
      openStreams: pick("openStreams"),
      namedReaders: pick("namedReaders"),
    };
  }

  #state(tenant: string): TenantState {
    let state = this.#tenants.get(tenant);
    if (!state) {
      state = { requests: new MinuteWindow(), tokens: new MinuteWindow(), held: { concurrentRequests: 0, openStreams: 0 }, readers: new Map() };
      this.#tenants.set(tenant, state);
    }
    return state;
  }

  /** The tenant's per-minute windows with their limits, as OpenAI names them in its headers. */
  #windows(tenant: string) {
    const limits = this.limits(tenant);
    const state = this.#state(tenant);
    return [
      { limit: "requestsPerMinute", name: "requests", most: limits.requestsPerMinute, window: state.requests },
      { limit: "tokensPerMinute", name: "tokens", most: limits.tokensPerMinute, window: state.tokens },
    ] as const;
  }

  /** OpenAI's x-ratelimit-* headers for the tenant now. */
  headers(tenant: string): Record<string, string> {
    const now = this.#clock();
    const headers: Record<string, string> = {};
    for (const { name, most, window } of this.#windows(tenant)) {
      if (most <= 0) continue;
      headers[`x-ratelimit-limit-${name}`] = String(most);
      headers[`x-ratelimit-remaining-${name}`] = String(Math.max(0, most - window.total(now)));
      // OpenAI's reset: until the whole budget is back (everything counted aged out).
      headers[`x-ratelimit-reset-${name}`] = resetAfter(window.secondsUntilBelow(now, 1));
    }
    return headers;
  }

  /**
   * One call that creates work: counted, or refused with QuotaExceeded when the tenant is
   * at its requests or tokens per minute. Returns the headers to send with the answer.
   */
  admit(tenant: string): Record<string, string> {
    const now = this.#clock();
    for (const { limit, name, most, window } of this.#windows(tenant)) {
      if (most <= 0 || window.total(now) < most) continue;
      const wait = Math.max(1, window.secondsUntilBelow(now, most));
      throw this.#reject(tenant, limit, `tenant ${tenant} is at its limit of ${most} ${name} per minute on this gateway; retry after ${wait} s`, wait);
    }
    this.#state(tenant).requests.add(now, 1);
    return this.headers(tenant);
  }

  /** Tokens a finished request of the tenant used (its usage), counted against tokens per minute. */
  spend(tenant: string, tokens: number): void {
    if (tokens > 0) this.#state(tenant).tokens.add(this.#clock(), tokens);
  }

  /**
   * Takes one of what the tenant may hold open (a waiting request, a stream, a reader), or
   * refuses with QuotaExceeded. The returned function gives it back (once; later calls do nothing).
   */
  hold(tenant: string, kind: HeldKind): () => void {
    const limit = this.limits(tenant)[kind];
    const state = this.#state(tenant);
    if (limit > 0 && state.held[kind] >= limit) {
      throw this.#reject(
        tenant,
        kind,
        `tenant ${tenant} has ${state.held[kind]} ${HELD_NAMES[kind]} on this gateway, its limit; close one or wait for one to end`,
        1,
      );
    }
    state.held[kind]++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.held[kind]--;
    };
  }

  /**
   * A read that keeps named reader `id`'s position: a reader this replica kept within
   * READER_RETENTION_MS is used again; a new one is counted, or refused with QuotaExceeded
   * when the tenant is at its named readers. Each reader is a Kafka consumer group, so this
   * bounds the groups a tenant makes. Counted per replica (a reader used at two replicas
   * counts at both; one made before a restart counts again once used), like the rest.
   */
  useReader(tenant: string, id: string): void {
    const now = this.#clock();
    const readers = this.#state(tenant).readers;
    if (readers.has(id)) {
      readers.delete(id); // re-inserted last: the map stays in order of last use
      readers.set(id, now);
      return;
    }
    for (const [old, at] of readers) {
      if (now - at < READER_RETENTION_MS) break;
      readers.delete(old);
    }
    const limit = this.limits(tenant).namedReaders;
    if (limit > 0 && readers.size >= limit) {
      const oldest = readers.values().next().value ?? now;
      const wait = Math.max(1, Math.ceil((oldest + READER_RETENTION_MS - now) / 1000));
      throw this.#reject(
        tenant,
        "namedReaders",
        `tenant ${tenant} has ${readers.size} named history readers on this gateway, its limit: read with a reader it has used before, or without one (cursors need no reader)`,
        wait,
      );
    }
    readers.set(id, now);
  }

  /**
   * Refuses a call for a limit counted elsewhere (e.g. requests in flight, which the request
   * tracker knows): counted as a rejection, with the headers of any other.
   */
  refuse(tenant: string, limit: keyof TenantLimits, message: string, retryAfterSeconds = 1): never {
    throw this.#reject(tenant, limit, message, retryAfterSeconds);
  }

  /** What the tenant holds now, per kind. */
  held(tenant: string): Readonly<Record<HeldKind, number>> {
    return { ...this.#state(tenant).held };
  }

  #reject(tenant: string, limit: keyof TenantLimits, message: string, retryAfterSeconds: number): QuotaExceeded {
    this.#onRejected(tenant, limit);
    return new QuotaExceeded(limit, message, retryAfterSeconds, { ...this.headers(tenant), "retry-after": String(retryAfterSeconds) });
  }
}
