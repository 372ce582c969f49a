/**
 * WORKER_SLOTS generations at once on one model: one context with that many sequences,
 * which node-llama-cpp evaluates in shared batches. A conversation's next turn goes back to
 * the slot that holds its previous turn in the KV cache, when that slot is free, so only
 * the new tokens are evaluated; otherwise the least recently used free slot is reclaimed.
 */
export interface Slot<G> {
  readonly index: number;
  readonly generator: G;
  /** The conversation whose tokens this slot's sequence holds, if any. */
  conversationId: string | null;
  lastUsed: number;
  busy: boolean;
}

export class SlotPool<G> {
  readonly #slots: Slot<G>[];
  readonly #waiting: Array<{ conversationId: string; resolve(slot: Slot<G>): void }> = [];
  #clock = 0;

  constructor(generators: readonly G[]) {
    this.#slots = generators.map((generator, index) => ({ index, generator, conversationId: null, lastUsed: 0, busy: false }));
  }

  get size(): number {
    return this.#slots.length;
  }

  get busyCount(): number {
    return this.#slots.filter((s) => s.busy).length;
  }

  /** A slot for `conversationId`: its own when free, else the least recently used free one. */
  acquire(conversationId: string): Promise<Slot<G>> {
    const slot = this.#pick(conversationId);
    if (slot) return Promise.resolve(this.#take(slot, conversationId));
    return new Promise((resolve) => this.#waiting.push({ conversationId, resolve }));
  }

  release(slot: Slot<G>): void {
    slot.busy = false;
    const next = this.#waiting.shift();
    if (next) next.resolve(this.#take(this.#pick(next.conversationId) ?? slot, next.conversationId));
  }

  /** Whether `conversationId`'s tokens are still held by a slot. */
  holds(conversationId: string): boolean {
    return this.#slots.some((s) => s.conversationId === conversationId);
  }

  /** Forgets which conversation a slot holds (after a failure left its tokens unknown). */
  forget(conversationId: string): void {
    for (const s of this.#slots) if (s.conversationId === conversationId) s.conversationId = null;
  }

  #pick(conversationId: string): Slot<G> | undefined {
    const free = this.#slots.filter((s) => !s.busy);
    const own = free.find((s) => s.conversationId === conversationId);
    if (own) return own;
    return free.sort((a, b) => a.lastUsed - b.lastUsed)[0];
  }

  #take(slot: Slot<G>, conversationId: string): Slot<G> {
    slot.busy = true;
    slot.conversationId = conversationId;
    slot.lastUsed = ++this.#clock;
    return slot;
  }
}
