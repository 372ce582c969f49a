/**
 * How far a consumer has read each partition, and a way to wait until it has read up to
 * given offsets: the basis of "caught up" (readiness). Positions come from kafkajs's end-of-batch events, which also fire for
 * batches of control records only (transaction markers), so a partition whose last
 * offset is a marker still counts as read to its end.
 */
import type { Consumer } from "kafkajs";

export type Offsets = ReadonlyArray<{ topic: string; partition: number; offset: string }>;

export class ReadProgress {
  /** "topic/partition" → next offset to read. */
  readonly #next = new Map<string, bigint>();
  readonly #waiters = new Set<() => void>();

  /** Starts following a consumer's batches; call before consumer.run. */
  watch(consumer: Consumer): void {
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      this.advance(payload.topic, payload.partition, BigInt(payload.lastOffset) + 1n);
    });
  }

  advance(topic: string, partition: number, next: bigint): void {
    const key = `${topic}/${partition}`;
    if ((this.#next.get(key) ?? -1n) >= next) return;
    this.#next.set(key, next);
    for (const wake of [...this.#waiters]) wake();
  }

  /** The next offset to read in a partition, or undefined before anything is known of it. */
  next(topic: string, partition: number): bigint | undefined {
    return this.#next.get(`${topic}/${partition}`);
  }

  /** True when every partition named has been read up to (not including) its offset. */
  reached(targets: Offsets): boolean {
    return targets.every(({ topic, partition, offset }) => {
      const want = BigInt(offset);
      return want <= 0n || (this.#next.get(`${topic}/${partition}`) ?? 0n) >= want;
    });
  }

  /** Resolves true once `reached(targets)`, false after `timeoutMs`. */
  waitFor(targets: Offsets, timeoutMs: number): Promise<boolean> {
    if (this.reached(targets)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!this.reached(targets)) return;
        finish(true);
      };
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.#waiters.add(check);
    });
  }
}
