/**
 * WORKER_SLOTS generations at once on one model: one context with that many sequences,
 * which node-llama-cpp evaluates in shared batches. A conversation's next turn goes back to
 * the slot that holds its previous turn in the KV cache, when that slot is free, so only
 * the new tokens are evaluated.
 *
 * A slot's KV cache never crosses tenants. A prompt reuses a slot's tokens as far as they
 * are the same tokens, and a reply says how many of its prompt tokens were cached: left
 * alone, a slot would let one tenant confirm another's system prompt token by token. So
 * each slot remembers the tenant whose tokens it holds, a turn prefers a free slot of its
 * own tenant (or an empty one), and a slot that passes to another tenant is cleared first.
 *
 * A pool that serves LoRA adapters (MODEL_ADAPTERS) has a context per adapter, since
 * node-llama-cpp applies adapters per context: each slot belongs to its context's model (null:
 * the base model's), and a turn takes only a slot of the model it asked for.
 */

import { conversationKey, type ConversationRef } from "../contracts/conversation-key.js";

/** Who takes a slot: a conversation (its key: contracts/conversation-key.ts) of a tenant, on a model (an adapter's name; absent: the base model). */
export interface SlotOwner {
  readonly key: string;
  readonly tenant: string;
  readonly adapter?: string;
}

/** The slot owner of a request's conversation; `adapter` when the request asked for one of the pool's adapters. */
export function slotOwner(ref: ConversationRef, adapter?: string): SlotOwner {
  return { key: conversationKey(ref), tenant: ref.tenant, ...(adapter !== undefined && { adapter }) };
}

/** The adapter a request asked for by its model name, when the pool serves it as one (else the base model). */
export function adapterOf(request: { model?: string | undefined }, config: { pool: { adapters: readonly { name: string }[] } }): string | undefined {
  return request.model !== undefined && config.pool.adapters.some((a) => a.name === request.model) ? request.model : undefined;
}

export interface Slot<G> {
  readonly index: number;
  readonly generator: G;
  /** The adapter whose context this slot's sequence is of; null: the base model's. */
  readonly adapter: string | null;
  /** The conversation whose tokens this slot's sequence holds, if any. */
  key: string | null;
  /** The tenant whose tokens this slot's sequence holds; null when it holds none. */
  tenant: string | null;
  lastUsed: number;
  busy: boolean;
}

/** The tenant of a slot whose clearing failed: it matches no tenant, so whoever takes it next clears it again. */
const UNKNOWN_TENANT = "#unknown";

export interface SlotPoolOptions<G> {
  /** Empties a slot's KV cache (before another tenant uses it). */
  clear(generator: G): Promise<void>;
  /** Each generator's adapter, by index (absent or null: the base model's). */
  adapters?: readonly (string | null)[];
}

export class SlotPool<G> {
  readonly #slots: Slot<G>[];
  readonly #waiting: Array<{ owner: SlotOwner; resolve(slot: Slot<G>): void; reject(err: unknown): void }> = [];
  readonly #clear: (generator: G) => Promise<void>;
  #clock = 0;

  constructor(generators: readonly G[], options: SlotPoolOptions<G>) {
    this.#slots = generators.map((generator, index) => ({
      index,
      generator,
      adapter: options.adapters?.[index] ?? null,
      key: null,
      tenant: null,
      lastUsed: 0,
      busy: false,
    }));
    this.#clear = options.clear;
  }

  get size(): number {
    return this.#slots.length;
  }

  get busyCount(): number {
    return this.#slots.filter((s) => s.busy).length;
  }

  /** Free slots of a model (an adapter's name; absent: the base model's). */
  freeCount(adapter?: string): number {
    return this.#slots.filter((s) => !s.busy && s.adapter === (adapter ?? null)).length;
  }

  /** Acquires waiting for a release: the extra choices of an n > 1 request hold slots the scheduler counts as free. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  /** Every slot's generator, busy or not (the metrics read their KV caches). */
  get generators(): readonly G[] {
    return this.#slots.map((s) => s.generator);
  }

  /**
   * A slot for `owner`: the one holding its conversation when free; else the least recently
   * used free slot of its tenant or an empty one; else the least recently used free slot,
   * cleared. Waits for a release when none is free.
   */
  acquire(owner: SlotOwner): Promise<Slot<G>> {
    const slot = this.#pick(owner);
    if (slot) return this.#take(slot, owner);
    return new Promise((resolve, reject) => this.#waiting.push({ owner, resolve, reject }));
  }

  release(slot: Slot<G>): void {
    slot.busy = false;
    // The first waiter for this slot's model (a waiter for another model waits for its own).
    const i = this.#waiting.findIndex((w) => (w.owner.adapter ?? null) === slot.adapter);
    if (i < 0) return;
    const [next] = this.#waiting.splice(i, 1);
    this.#take(this.#pick(next!.owner) ?? slot, next!.owner).then(next!.resolve, next!.reject);
  }

  /** Whether a conversation's tokens are still held by a slot. */
  holds(key: string): boolean {
    return this.#slots.some((s) => s.key === key);
  }

  /** Forgets which conversation a slot holds (after a failure left its tokens unknown); its tenant stays. */
  forget(key: string): void {
    for (const s of this.#slots) if (s.key === key) s.key = null;
  }

  #pick(owner: SlotOwner): Slot<G> | undefined {
    const free = this.#slots.filter((s) => !s.busy && s.adapter === (owner.adapter ?? null));
    const own = free.find((s) => s.key === owner.key);
    if (own) return own;
    const lru = (slots: Slot<G>[]) => slots.sort((a, b) => a.lastUsed - b.lastUsed)[0];
    return lru(free.filter((s) => s.tenant === owner.tenant || s.tenant === null)) ?? lru(free);
  }

  /** Marks the slot taken (at once, so no other turn picks it) and clears it when it held another tenant's tokens. */
  async #take(slot: Slot<G>, owner: SlotOwner): Promise<Slot<G>> {
    slot.busy = true;
    slot.lastUsed = ++this.#clock;
    const foreign = slot.tenant !== null && slot.tenant !== owner.tenant;
    slot.key = owner.key;
    slot.tenant = owner.tenant;
    if (foreign) {
      try {
        await this.#clear(slot.generator);
      } catch (err) {
        // What it holds is unknown now: whoever takes it next clears it again.
        slot.key = null;
        slot.tenant = UNKNOWN_TENANT;
        this.release(slot);
        throw err;
      }
    }
    return slot;
  }
}
