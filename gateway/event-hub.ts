/**
 * Holds the recent events of each request this gateway has seen, so a client can connect
 * before or after the worker started, and resume with Last-Event-ID. Bounded: at most
 * `maxTracked` requests, each dropped `ttlMs` after its last event.
 */
import { isTerminalEvent, type ChatEvent } from "../contracts/records.js";

export type EventListener = (event: ChatEvent) => void;

interface RequestState {
  conversationId: string;
  events: ChatEvent[];
  done: boolean;
  listeners: Set<EventListener>;
  touchedAt: number;
}

export class EventHub {
  readonly #requests = new Map<string, RequestState>();
  readonly #ttlMs: number;
  readonly #maxTracked: number;
  readonly #now: () => number;

  constructor(options: { ttlMs: number; maxTracked: number; now?: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#maxTracked = options.maxTracked;
    this.#now = options.now ?? Date.now;
  }

  /** Starts tracking a request that was just accepted, before any event exists for it. */
  track(requestId: string, conversationId: string): void {
    this.#stateFor(requestId, conversationId);
  }

  has(requestId: string): boolean {
    return this.#requests.has(requestId);
  }

  get size(): number {
    return this.#requests.size;
  }

  /**
   * Takes an event read from chat.events. Events arrive in order per request (one key,
   * one partition); a duplicate or an event that would leave a gap is ignored.
   */
  accept(event: ChatEvent): boolean {
    const state = this.#stateFor(event.request_id, event.conversation_id);
    if (state.done || event.seq !== state.events.length) return false;
    state.events.push(event);
    state.touchedAt = this.#now();
    if (isTerminalEvent(event)) state.done = true;
    for (const listener of state.listeners) listener(event);
    if (state.done) state.listeners.clear();
    return true;
  }

  /**
   * Replays the events after `afterSeq` (-1 for all) and then follows new ones. Returns
   * null for an unknown request, else a function that stops following.
   */
  follow(requestId: string, afterSeq: number, listener: EventListener): (() => void) | null {
    const state = this.#requests.get(requestId);
    if (!state) return null;
    for (const event of state.events) if (event.seq > afterSeq) listener(event);
    if (state.done) return () => {};
    state.listeners.add(listener);
    return () => state.listeners.delete(listener);
  }

  /** Drops requests idle for longer than the TTL; returns how many were dropped. */
  sweep(): number {
    const cutoff = this.#now() - this.#ttlMs;
    let dropped = 0;
    for (const [id, state] of this.#requests) {
      if (state.touchedAt < cutoff && state.listeners.size === 0) {
        this.#requests.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  #stateFor(requestId: string, conversationId: string): RequestState {
    let state = this.#requests.get(requestId);
    if (!state) {
      state = { conversationId, events: [], done: false, listeners: new Set(), touchedAt: this.#now() };
      this.#requests.set(requestId, state);
      this.#evictOverflow();
    }
    return state;
  }

  /** Map iteration is insertion order: the oldest tracked request goes first. */
  #evictOverflow(): void {
    for (const [id] of this.#requests) {
      if (this.#requests.size <= this.#maxTracked) return;
      this.#requests.delete(id);
    }
  }
}
