/**
 * Runs turns off the consumer's fetch loop. The request loop hands every record it is
 * given to `offer` and returns at once; the scheduler runs the record's turn when one of
 * the worker's slots is free (first come, first served across partitions) and the
 * partition's previous turn has committed. Fetching, heartbeats and rebalances therefore
 * never wait on a generation, and a partition is processed strictly one record at a time,
 * in offset order.
 *
 * Flow control: a partition is paused once it holds its running record and `prefetch`
 * more, and resumed when it holds fewer. Records held ahead matter twice: with none (pause
 * at once, resume after the commit) a partition's next turn would wait for a fresh fetch
 * after each commit; and while a revocation drains, librdkafka pauses fetching for every
 * partition of the member, so a partition this worker keeps goes on only with the records
 * it already holds.
 *
 * A revoked partition's records that have not started are dropped (they are uncommitted,
 * so its next owner fetches them). Its running turn may finish within a drain bound; past
 * the bound it is asked to hand over (stop at a token boundary and leave the partial reply
 * for the next owner). A partition that is lost (the member was fenced) is stopped at once.
 */
import type { GroupRecord } from "../platform/kafka/group-consumer.js";
import type { Logger } from "../platform/logger.js";

/** What the consumer delivers: one record of chat.requests (the lag is the consumer's business). */
export type RequestRecord = Omit<GroupRecord, "lag">;

/** Why a running turn is asked to stop early. */
export type RevokeCause = { kind: "handover" } | { kind: "lost" };

/**
 * What the scheduler does with a record once it has run: `done` (committed, or deliberately left for the
 * next owner), or `retry` (the turn was interrupted on a partition this worker still owns,
 * e.g. Kafka refused a write: run the same record again after a back-off).
 */
export type RunVerdict = "done" | "retry";

/** Records held ahead per partition (see flow control above). */
export const DEFAULT_PREFETCH = 4;

export interface TurnSchedulerOptions {
  /** Turns run at once (the worker's generation slots). */
  readonly concurrency: number;
  /**
   * Runs one record's turn; `revoke` aborts with a RevokeCause. `first`: the first record
   * this scheduler starts of its partition since gaining it, the only one an earlier owner
   * may have started (worker/attempts.ts). A throw is retried after a back-off: the caller
   * decides when a record has failed often enough (it gives it up and returns `done`).
   */
  run(record: RequestRecord, revoke: AbortSignal, first: boolean): Promise<RunVerdict>;
  pause(partition: number): void;
  resume(partition: number): void;
  readonly logger: Logger;
  /** First back-off before a record is retried, ms (doubles up to 5 s). Default 200. */
  readonly retryBackoffMs?: number;
  /** Records a partition may hold beyond its running one before it is paused. Default DEFAULT_PREFETCH. */
  readonly prefetch?: number;
}

interface PartitionTurns {
  /** Records received and not yet run, in offset order. */
  queue: RequestRecord[];
  running: { record: RequestRecord; revoke: AbortController; done: Promise<void> } | null;
  /** Highest offset received, so a record delivered twice is not run twice. */
  lastOffset: bigint;
  retries: number;
  paused: boolean;
  /** Whether a record of this partition has been started since it was gained. */
  begun: boolean;
}

export class TurnScheduler {
  readonly #options: TurnSchedulerOptions;
  readonly #partitions = new Map<number, PartitionTurns>();
  /** Partitions whose head record waits for a free slot, in arrival order. */
  readonly #waiting: number[] = [];
  #active = 0;
  #closed = false;

  constructor(options: TurnSchedulerOptions) {
    this.#options = options;
  }

  /** Turns running now. */
  get running(): number {
    return this.#active;
  }

  /** Partitions with a running turn or a record waiting. */
  get busyPartitions(): number[] {
    return [...this.#partitions].filter(([, s]) => s.running || s.queue.length).map(([p]) => p);
  }

  /** A record from the consumer; its partition is paused while it holds enough (see prefetch). */
  offer(record: RequestRecord): void {
    if (this.#closed) return;
    const state = this.#state(record.partition);
    const offset = BigInt(record.offset);
    if (offset <= state.lastOffset) return; // delivered again after a pause or seek
    state.lastOffset = offset;
    state.queue.push(record);
    if (!state.paused && state.queue.length > (this.#options.prefetch ?? DEFAULT_PREFETCH)) {
      state.paused = true;
      this.#options.pause(record.partition);
    }
    if (!state.running && state.queue.length === 1) this.#enqueue(record.partition);
  }

  /**
   * Gives partitions up. Records not started are dropped. A running turn has `drainMs` to
   * finish (and commit) before it is asked to hand over; with `lost` it is stopped at once.
   * Resolves once no turn of these partitions runs: only then may they be released.
   */
  async revoke(partitions: readonly number[], options: { drainMs: number; lost: boolean }): Promise<void> {
    const runs: Array<Promise<void>> = [];
    for (const p of partitions) {
      const state = this.#partitions.get(p);
      if (!state) continue;
      this.#partitions.delete(p);
      state.queue.length = 0;
      const waitingAt = this.#waiting.indexOf(p);
      if (waitingAt >= 0) this.#waiting.splice(waitingAt, 1);
      if (state.running) runs.push(this.#stopWithin(state.running, options.lost ? 0 : options.drainMs, options.lost));
    }
    await Promise.all(runs);
  }

  /** Stops taking records and gives up every partition (SIGTERM): see revoke. */
  async close(drainMs: number): Promise<void> {
    this.#closed = true;
    await this.revoke([...this.#partitions.keys()], { drainMs, lost: false });
  }

  async #stopWithin(running: NonNullable<PartitionTurns["running"]>, drainMs: number, lost: boolean): Promise<void> {
    const cause: RevokeCause = lost ? { kind: "lost" } : { kind: "handover" };
    if (drainMs <= 0) {
      running.revoke.abort(cause);
      return running.done;
    }
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<"bound">((resolve) => {
      timer = setTimeout(() => resolve("bound"), drainMs);
    });
    const first = await Promise.race([running.done.then(() => "done" as const), bound]);
    clearTimeout(timer);
    if (first === "bound") {
      this.#options.logger.info(
        { partition: running.record.partition, offset: running.record.offset, drain_ms: drainMs },
        "drain bound passed; handing the running turn over",
      );
      running.revoke.abort(cause);
      await running.done;
    }
  }

  #state(partition: number): PartitionTurns {
    let state = this.#partitions.get(partition);
    if (!state) {
      state = { queue: [], running: null, lastOffset: -1n, retries: 0, paused: false, begun: false };
      this.#partitions.set(partition, state);
    }
    return state;
  }

  #enqueue(partition: number): void {
    this.#waiting.push(partition);
    this.#pump();
  }

  #pump(): void {
    while (this.#active < this.#options.concurrency && this.#waiting.length) {
      const partition = this.#waiting.shift()!;
      const state = this.#partitions.get(partition);
      const record = state?.queue[0];
      if (!state || !record || state.running) continue;
      this.#start(partition, state, record);
    }
  }

  #start(partition: number, state: PartitionTurns, record: RequestRecord): void {
    this.#active++;
    const revoke = new AbortController();
    const first = !state.begun;
    state.begun = true;
    const done = this.#options
      .run(record, revoke.signal, first)
      .catch((err: unknown) => {
        this.#options.logger.error({ err, partition, offset: record.offset }, "turn failed unexpectedly; retrying the record");
        return "retry" as const;
      })
      .then((result) => this.#finished(partition, state, record, result, revoke.signal));
    state.running = { record, revoke, done };
  }

  async #finished(partition: number, state: PartitionTurns, record: RequestRecord, result: RunVerdict, revoked: AbortSignal): Promise<void> {
    state.running = null;
    this.#active--;
    const owned = this.#partitions.get(partition) === state && !revoked.aborted;
    if (owned && result === "retry") {
      // Back off before the same record runs again (a broker that refused a write).
      const delay = Math.min(5000, (this.#options.retryBackoffMs ?? 200) * 2 ** state.retries);
      state.retries++;
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.#partitions.get(partition) === state) this.#enqueue(partition);
      else this.#pump();
      return;
    }
    if (owned) {
      state.retries = 0;
      if (state.queue[0] === record) state.queue.shift();
      if (state.queue.length) this.#enqueue(partition);
      if (state.paused && !this.#closed && state.queue.length <= (this.#options.prefetch ?? DEFAULT_PREFETCH)) {
        state.paused = false;
        this.#options.resume(partition);
      }
    }
    this.#pump();
  }
}
