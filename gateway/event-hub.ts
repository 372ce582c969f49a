/**
 * Holds the recent events of each request this gateway has seen, so a client can connect
 * before or after the worker started, and resume with Last-Event-ID. Bounded: at most
 * `maxTracked` requests, at most `maxPerTenant` of one tenant, each dropped `ttlMs` after
 * its last event.
 *
 * A full hub drops the oldest request nobody needs, never one a client follows (an open
 * stream, a call awaiting its reply) nor one accepted here that has not ended (its client
 * is about to follow it or poll it) within `pinMs` of its acceptance: a tenant over its
 * share drops its own requests first, so one tenant's flood cannot push out another's.
 * When a new request could only be tracked by dropping such a request, `track` refuses it
 * (429 for a tenant at its share, 503 for a hub full of them). Requests read from
 * chat.requests that other replicas accepted (`observe`) are never refused: they are
 * dropped first instead, and past the bound only while everything held is needed.
 *
 * Events of one request arrive in order (one key, one partition). A request may be run
 * more than once when its worker dies: each run is an attempt, and a new attempt's start
 * event replaces what the hub held of the earlier one. A terminal event ends the request
 * whichever attempt it belongs to (a worker re-announces the stored final event of a
 * request it finds already applied); anything after that is ignored.
 *
 * Each request's events come on one chat.events partition; the hub remembers which, and
 * asks `onFollow` (set by the gateway) to read it while a listener here follows the
 * request, so a replica that does not read that partition reads it for as long as needed.
 */
import { KafkaLlmError } from "../contracts/errors.js";
import { isTerminalEvent, type ChatEvent } from "../contracts/records/events.js";
import type { ResumePoint } from "./sse.js";

export type EventListener = (event: ChatEvent) => void;

const noop = () => {};

interface RequestState {
  conversationId: string;
  tenant: string;
  attempt: string | null;
  events: ChatEvent[];
  done: boolean;
  /** The chat.events partition its events use, once known (from its request or its events). */
  partition: number | null;
  /** Each listener with what ends its claim on the request's partition. */
  listeners: Map<EventListener, () => void>;
  touchedAt: number;
  /** Until when (ms) a request accepted here is kept while it has not ended; 0: never (read from chat.requests). */
  heldUntil: number;
  /** An open request: the conversation exists once it is applied. */
  opens: boolean;
  /** The W3C traceparent its record carries (tracing on), so a later poll joins its trace. */
  traceparent: string | null;
}

/** Called when a listener starts following a request; returns what to call when it stops. */
export type FollowHook = (requestId: string, snapshot: RequestSnapshot) => () => void;

export interface RequestSnapshot {
  readonly conversationId: string;
  readonly tenant: string;
  /** The attempt whose events are held; null before the first start event. */
  readonly attempt: string | null;
  readonly events: readonly ChatEvent[];
  readonly done: boolean;
  /** The chat.events partition its events use; null while unknown. */
  readonly partition: number | null;
  /** The W3C traceparent of its record; null without tracing. */
  readonly traceparent: string | null;
}

export interface EventHubOptions {
  ttlMs: number;
  maxTracked: number;
  /** Most requests of one tenant (default: maxTracked). */
  maxPerTenant?: number;
  /** How long a request accepted here is kept while it has not ended (default: ttlMs). */
  pinMs?: number;
  now?: () => number;
}

/** Seconds a client refused for a full hub should wait before it tries again. */
export const TRACKER_RETRY_AFTER_SECONDS = 5;

export class EventHub {
  readonly #requests = new Map<string, RequestState>();
  /** Each tenant's request ids, oldest first. */
  readonly #byTenant = new Map<string, Set<string>>();
  /** Callers waiting for a request id to become known (see whenKnown). */
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #ttlMs: number;
  readonly #maxTracked: number;
  readonly #maxPerTenant: number;
  readonly #pinMs: number;
  readonly #now: () => number;
  /** Told when a request gains a listener (the gateway then reads its partition). */
  onFollow: FollowHook | null = null;

  constructor(options: EventHubOptions) {
    this.#ttlMs = options.ttlMs;
    this.#maxTracked = options.maxTracked;
    this.#maxPerTenant = Math.min(options.maxPerTenant ?? options.maxTracked, options.maxTracked);
    this.#pinMs = options.pinMs ?? options.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Starts tracking a request this gateway is accepting, before any event exists for it;
   * `partition`: the chat.events partition its events use, when known. Throws a
   * KafkaLlmError (rate_limited for a tenant whose share is all needed, overloaded for a
   * hub that is) when it could be tracked only by dropping a request a client needs.
   */
  track(requestId: string, conversationId: string, tenant: string, partition?: number, opens = false, traceparent?: string): void {
    if (!this.#requests.has(requestId)) this.#admit(tenant);
    const state = this.#stateFor(requestId, conversationId, tenant);
    if (opens) state.opens = true;
    if (traceparent !== undefined) state.traceparent ??= traceparent;
    if (!state.done && state.heldUntil === 0) state.heldUntil = this.#now() + this.#pinMs;
    if (partition !== undefined && state.partition === null) state.partition = partition;
  }

  /** Starts tracking a request read from chat.requests (perhaps another replica's); never refused. */
  observe(requestId: string, conversationId: string, tenant: string, partition?: number, opens = false, traceparent?: string): void {
    const state = this.#stateFor(requestId, conversationId, tenant);
    if (opens) state.opens = true;
    if (traceparent !== undefined) state.traceparent ??= traceparent;
    if (partition !== undefined && state.partition === null) state.partition = partition;
  }

  has(requestId: string): boolean {
    return this.#requests.has(requestId);
  }

  /** Forgets a request, e.g. one whose publish failed. Its followers are not told. */
  forget(requestId: string): void {
    const state = this.#requests.get(requestId);
    if (state) {
      this.#release(state);
      this.#drop(requestId, state);
    }
  }

  /**
   * Resolves true as soon as the request is known here, false after `timeoutMs`. Another
   * replica's request becomes known a few ms after Kafka took it, when this replica reads it.
   */
  whenKnown(requestId: string, timeoutMs: number): Promise<boolean> {
    if (this.#requests.has(requestId)) return Promise.resolve(true);
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(requestId);
      if (!waiters) this.#waiters.set(requestId, (waiters = new Set()));
      const done = (known: boolean) => {
        clearTimeout(timer);
        waiters!.delete(onKnown);
        if (waiters!.size === 0) this.#waiters.delete(requestId);
        resolve(known);
      };
      const onKnown = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      waiters.add(onKnown);
    });
  }

  /** What the hub holds of a request, or undefined. */
  get(requestId: string): RequestSnapshot | undefined {
    return this.#requests.get(requestId);
  }

  get size(): number {
    return this.#requests.size;
  }

  /** The open of the tenant's conversation that has not been applied yet, as this replica knows it. */
  pendingOpen(tenant: string, conversationId: string): string | undefined {
    for (const id of this.#byTenant.get(tenant) ?? []) {
      const state = this.#requests.get(id);
      if (state && state.opens && !state.done && state.conversationId === conversationId) return id;
    }
    return undefined;
  }

  /** Requests of `tenant` held here. */
  tenantSize(tenant: string): number {
    return this.#byTenant.get(tenant)?.size ?? 0;
  }

  /** Requests of `tenant` accepted here that have not ended (waiting or generating): its quota of requests in flight. */
  inFlight(tenant: string): number {
    let n = 0;
    for (const id of this.#byTenant.get(tenant) ?? []) {
      const state = this.#requests.get(id);
      if (state && !state.done && state.heldUntil > 0) n++;
    }
    return n;
  }

  /** Listeners following requests (open event streams, calls awaiting a final): should fall back to 0 when clients leave. */
  get listenerCount(): number {
    let n = 0;
    for (const state of this.#requests.values()) n += state.listeners.size;
    return n;
  }

  /** Takes an event read from chat.events (at `partition`); returns whether it was new. */
  accept(event: ChatEvent, partition?: number): boolean {
    const state = this.#stateFor(event.request_id, event.conversation_id, event.tenant);
    if (partition !== undefined) state.partition = partition;
    if (state.done) return false;
    if (event.attempt !== state.attempt) {
      if (event.type === "start" && event.seq === 0) {
        state.attempt = event.attempt;
        state.events = [];
      } else if (!isTerminalEvent(event)) {
        return false; // a straggler of an attempt we no longer follow
      }
    } else if (event.seq !== state.events.length && !isTerminalEvent(event)) {
      return false; // duplicate (or a gap, which one partition's order rules out)
    }
    state.events.push(event);
    state.touchedAt = this.#now();
    if (isTerminalEvent(event)) state.done = true;
    for (const listener of [...state.listeners.keys()]) listener(event);
    if (state.done) this.#release(state);
    return true;
  }

  /**
   * Replays the current attempt's events after `from` (all of them when `from` is null or
   * names another attempt), then follows new ones. Returns null for an unknown request,
   * else a function that stops following.
   */
  follow(requestId: string, from: ResumePoint | null, listener: EventListener): (() => void) | null {
    const state = this.#requests.get(requestId);
    if (!state) return null;
    const afterSeq = from !== null && (from.attempt === null || from.attempt === state.attempt) ? from.seq : -1;
    for (const event of state.events) {
      // A re-announced final may carry another attempt's seq: always hand it over.
      if (event.seq > afterSeq || (isTerminalEvent(event) && event.attempt !== from?.attempt)) listener(event);
    }
    if (state.done) return () => {};
    // Events read after this (a partition this replica starts reading for the follower) may
    // still be ones the client had: never hand those over twice.
    const live: EventListener =
      from === null
        ? listener
        : (event) => {
            const sameAttempt = from.attempt === null || from.attempt === event.attempt;
            if (sameAttempt && event.seq <= from.seq && !(isTerminalEvent(event) && from.attempt === null)) return;
            listener(event);
          };
    state.listeners.set(live, this.onFollow?.(requestId, state) ?? noop);
    return () => {
      const release = state.listeners.get(live);
      if (!release) return;
      state.listeners.delete(live);
      release();
    };
  }

  /** Ends every listener's claim on a request that is done. */
  #release(state: RequestState): void {
    const releases = [...state.listeners.values()];
    state.listeners.clear();
    for (const release of releases) release();
  }

  /** Drops requests idle for longer than the TTL; returns how many were dropped. */
  sweep(): number {
    const cutoff = this.#now() - this.#ttlMs;
    let dropped = 0;
    for (const [id, state] of this.#requests) {
      if (state.touchedAt < cutoff && state.listeners.size === 0) {
        this.#drop(id, state);
        dropped++;
      }
    }
    return dropped;
  }

  #stateFor(requestId: string, conversationId: string, tenant: string): RequestState {
    let state = this.#requests.get(requestId);
    if (!state) {
      state = {
        conversationId,
        tenant,
        attempt: null,
        events: [],
        done: false,
        partition: null,
        listeners: new Map(),
        touchedAt: this.#now(),
        heldUntil: 0,
        opens: false,
        traceparent: null,
      };
      this.#requests.set(requestId, state);
      let ids = this.#byTenant.get(tenant);
      if (!ids) this.#byTenant.set(tenant, (ids = new Set()));
      ids.add(requestId);
      this.#evictOverflow(requestId, tenant);
      const waiters = this.#waiters.get(requestId);
      if (waiters) for (const wake of [...waiters]) wake();
    }
    return state;
  }

  /** Whether a client needs the request kept: one follows it, or it was accepted here and has not ended yet. */
  #needed(state: RequestState): boolean {
    return state.listeners.size > 0 || (!state.done && this.#now() < state.heldUntil);
  }

  /** Refuses a new request of `tenant` that could be tracked only by dropping a needed one. */
  #admit(tenant: string): void {
    const ids = this.#byTenant.get(tenant);
    if (ids && ids.size >= this.#maxPerTenant && this.#firstUnneeded(ids) === null) {
      throw new KafkaLlmError(
        "rate_limited",
        `tenant ${tenant} has ${ids.size} requests in flight or followed on this gateway, its most (MAX_TRACKED_REQUESTS_PER_TENANT=${this.#maxPerTenant}); retry once some have ended`,
      );
    }
    if (this.#requests.size >= this.#maxTracked && this.#firstUnneeded(this.#requests.keys()) === null) {
      throw new KafkaLlmError(
        "overloaded",
        `this gateway holds ${this.#requests.size} requests in flight or followed, its most (MAX_TRACKED_REQUESTS=${this.#maxTracked}); retry once some have ended`,
      );
    }
  }

  #firstUnneeded(ids: Iterable<string>, except?: string): string | null {
    for (const id of ids) {
      if (id === except) continue;
      const state = this.#requests.get(id);
      if (state && !this.#needed(state)) return id;
    }
    return null;
  }

  /**
   * Drops the oldest requests nobody needs, other than the one `added`: `tenant`'s own while
   * it is over its share, then the largest tenant's while the hub is over its bound. Needed
   * requests stay, even past the bound (only requests read from chat.requests, one at a
   * time, can take it there).
   */
  #evictOverflow(added: string, tenant: string): void {
    const own = this.#byTenant.get(tenant);
    while (own && own.size > this.#maxPerTenant && this.#evictOldest(own, added)) {
      /* dropped one */
    }
    while (this.#requests.size > this.#maxTracked) {
      const tenants = [...this.#byTenant.values()].sort((a, b) => b.size - a.size);
      if (!tenants.some((ids) => this.#evictOldest(ids, added))) return;
    }
  }

  #evictOldest(ids: Set<string>, except: string): boolean {
    const id = this.#firstUnneeded(ids, except);
    const state = id === null ? undefined : this.#requests.get(id);
    if (id === null || !state) return false;
    this.#release(state);
    this.#drop(id, state);
    return true;
  }

  #drop(requestId: string, state: RequestState): void {
    this.#requests.delete(requestId);
    const ids = this.#byTenant.get(state.tenant);
    ids?.delete(requestId);
    if (ids?.size === 0) this.#byTenant.delete(state.tenant);
  }
}
