/**
 * Runs turns off the consumer's fetch loop. The request loop hands every record it is
 * given to `offer` and returns at once; the scheduler runs the record's turn when one of
 * the worker's slots is free. Fetching, heartbeats and rebalances therefore never wait on
 * a generation.
 *
 * Order is owed per conversation, not per partition: a conversation's records run one at a
 * time, in offset order, and different conversations of one partition run side by side
 * (key-level parallelism, as Confluent's Parallel Consumer does). So one tenant's queue of
 * long turns on a partition never holds another tenant's short one behind it. A partition's
 * committed offset is its lowest record not yet done (RecordCommit): a record done above it
 * is fetched again after a move, and its next owner finds it applied in memory and
 * re-announces it, as any replay (worker/turn.ts). A conversation remembers its last
 * APPLIED_WINDOW requests, so a partition runs ahead of its lowest record not done by fewer
 * records than that: past it, only that record may start.
 *
 * Fair slots: the next turn to start is the oldest waiting record of the tenant with the
 * fewest turns running. While several tenants are active, none holds more than its share
 * of the slots (the slots over the active tenants, rounded up), even when the others have
 * nothing waiting at that instant: a tenant that sends its next turn once its last reply
 * has come is active for FAIR_SHARE_WINDOW_MS after, so a flooding tenant cannot take the
 * slot back in between and make every one of its turns wait for a long generation to end.
 * One tenant alone has every slot.
 *
 * After gaining a partition, its first record runs alone until it is done: it is the one
 * record an earlier owner may have been running when it died (worker/attempts.ts counts
 * such runs), so a request that kills its worker is never run beside others that would
 * then die with it and be counted as if they had.
 *
 * Flow control: a partition is paused once it holds `prefetch` records not yet started
 * (or PREFETCH_BYTES of them), and resumed when it holds fewer. Records held ahead matter
 * twice: a partition's next turn need not wait for a fresh fetch; and while a revocation
 * drains, librdkafka pauses fetching for every partition of the member, so a partition
 * this worker keeps goes on only with the records it already holds.
 *
 * A revoked partition's records that have not started are dropped (they are uncommitted,
 * so its next owner fetches them). Its running turns may finish within a drain bound; past
 * the bound they are asked to hand over (stop at a token boundary and leave the partial
 * reply for the next owner). A partition that is lost (the member was fenced) is stopped at once.
 */
import { parseConversationKey } from "../contracts/conversation-key.js";
import { APPLIED_WINDOW } from "../contracts/records/memory.js";
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

/**
 * Where a partition's commits stand for one record. The committed offset is the partition's
 * lowest record not done; a record is done once its effects are written and `settle` is
 * called, whether or not its own commit moved the offset.
 */
export interface RecordCommit {
  /** The offset to commit once this record is done: the lowest offset of its partition not done but this one's; never below what is committed. */
  next(): bigint;
  /** The record is done, and `to` (its next()) committed: true when that moved the partition's committed offset. */
  settle(to: bigint): boolean;
}

/** Records a partition may hold not yet started before it is paused (see flow control above). */
export const DEFAULT_PREFETCH = 16;
/** Bytes of records a partition may hold not yet started before it is paused. */
export const PREFETCH_BYTES = 8 * 1024 * 1024;
/**
 * Records of a partition that may be done above its committed offset: below the records a
 * conversation remembers as applied, so that every one is found applied when fetched again.
 */
export const MAX_DONE_AHEAD = APPLIED_WINDOW - 1;
/** How long a tenant counts as active after its last turn ended (ms; see fair slots above). */
export const FAIR_SHARE_WINDOW_MS = 2000;

export interface TurnSchedulerOptions {
  /** Turns run at once (the worker's generation slots). */
  readonly concurrency: number;
  /**
   * Runs one record's turn; `revoke` aborts with a RevokeCause. `first`: the first record
   * this scheduler starts of its partition since gaining it, the only one an earlier owner
   * may have started (worker/attempts.ts). `commit`: where the partition's commits stand.
   * A throw is retried after a back-off: the caller decides when a record has failed often
   * enough (it gives it up and returns `done`).
   */
  run(record: RequestRecord, revoke: AbortSignal, first: boolean, commit: RecordCommit): Promise<RunVerdict>;
  pause(partition: number): void;
  resume(partition: number): void;
  readonly logger: Logger;
  /** First back-off before a record is retried, ms (doubles up to 5 s). Default 200. */
  readonly retryBackoffMs?: number;
  /** Records not started a partition may hold before it is paused. Default DEFAULT_PREFETCH. */
  readonly prefetch?: number;
  /** See FAIR_SHARE_WINDOW_MS. */
  readonly fairShareWindowMs?: number;
  /** The clock (ms), for tests. */
  readonly now?: () => number;
}

interface Held {
  readonly record: RequestRecord;
  readonly offset: bigint;
  /** The conversation key (the record's Kafka key): its records run one at a time. */
  readonly key: string;
  readonly tenant: string;
  readonly bytes: number;
  /** Arrival order across partitions (first come, first served within a tenant). */
  readonly seq: number;
  /** Runs of it that failed and asked to be retried. */
  retries: number;
  /** Not started again before this time (ms): a retry's back-off. */
  notBefore: number;
}

interface Running {
  readonly held: Held;
  readonly revoke: AbortController;
  readonly done: Promise<void>;
}

interface PartitionTurns {
  /** Records received and not started, in offset order. */
  readonly queue: Held[];
  readonly running: Set<Running>;
  /** Offsets received and not done (queued, running, or ended without being settled). */
  readonly pending: Set<bigint>;
  /** Offsets done above the committed offset (fetched again after a move, found applied). */
  readonly ahead: Set<bigint>;
  /** Bytes of the queued records. */
  queuedBytes: number;
  /** Highest offset received, so a record delivered twice is not run twice. */
  lastOffset: bigint;
  /** The offset this worker last committed (-1: none since gaining the partition). */
  committed: bigint;
  paused: boolean;
  /** Whether a record of this partition has been started since it was gained. */
  begun: boolean;
  /** Whether a record of it has been done since it was gained: until then its records run one at a time. */
  settledOnce: boolean;
}

export class TurnScheduler {
  readonly #options: TurnSchedulerOptions;
  readonly #partitions = new Map<number, PartitionTurns>();
  /** Turns running per tenant. */
  readonly #runningOf = new Map<string, number>();
  /** When each tenant last had a turn end (ms), for the fair-share window. */
  readonly #lastActive = new Map<string, number>();
  #active = 0;
  #seq = 0;
  #closed = false;
  #wake: NodeJS.Timeout | null = null;

  constructor(options: TurnSchedulerOptions) {
    this.#options = options;
  }

  /** Turns running now. */
  get running(): number {
    return this.#active;
  }

  /** Records received and not started (their conversation's turn runs, their tenant is at its share, no slot is free, or a retry backs off). */
  get waiting(): number {
    let n = 0;
    for (const state of this.#partitions.values()) n += state.queue.length;
    return n;
  }

  /** Partitions with a running turn or a record waiting. */
  get busyPartitions(): number[] {
    return [...this.#partitions].filter(([, s]) => s.running.size || s.queue.length).map(([p]) => p);
  }

  /** A record from the consumer; its partition is paused while it holds enough (see prefetch). */
  offer(record: RequestRecord): void {
    if (this.#closed) return;
    const state = this.#state(record.partition);
    const offset = BigInt(record.offset);
    if (offset <= state.lastOffset) return; // delivered again after a pause or seek
    state.lastOffset = offset;
    const key = record.key?.toString("utf8") ?? `#unkeyed@${record.offset}`;
    const bytes = (record.value?.length ?? 0) + (record.key?.length ?? 0);
    const held: Held = { record, offset, key, tenant: parseConversationKey(key)?.tenant ?? "", bytes, seq: this.#seq++, retries: 0, notBefore: 0 };
    state.queue.push(held);
    state.pending.add(offset);
    state.queuedBytes += bytes;
    if (!state.paused && this.#full(state)) {
      state.paused = true;
      this.#options.pause(record.partition);
    }
    this.#pump();
  }

  /**
   * Gives partitions up. Records not started are dropped. Running turns have `drainMs` to
   * finish (and commit) before they are asked to hand over; with `lost` they are stopped at
   * once. Resolves once no turn of these partitions runs: only then may they be released.
   */
  async revoke(partitions: readonly number[], options: { drainMs: number; lost: boolean }): Promise<void> {
    const runs: Array<Promise<void>> = [];
    for (const p of partitions) {
      const state = this.#partitions.get(p);
      if (!state) continue;
      this.#partitions.delete(p);
      state.queue.length = 0;
      state.queuedBytes = 0;
      for (const running of state.running) runs.push(this.#stopWithin(running, options.lost ? 0 : options.drainMs, options.lost));
    }
    await Promise.all(runs);
  }

  /** Stops taking records and gives up every partition (SIGTERM): see revoke. */
  async close(drainMs: number): Promise<void> {
    this.#closed = true;
    if (this.#wake) clearTimeout(this.#wake);
    await this.revoke([...this.#partitions.keys()], { drainMs, lost: false });
  }

  async #stopWithin(running: Running, drainMs: number, lost: boolean): Promise<void> {
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
      const { record } = running.held;
      this.#options.logger.info({ partition: record.partition, offset: record.offset, drain_ms: drainMs }, "drain bound passed; handing the running turn over");
      running.revoke.abort(cause);
      await running.done;
    }
  }

  #state(partition: number): PartitionTurns {
    let state = this.#partitions.get(partition);
    if (!state) {
      state = {
        queue: [],
        running: new Set(),
        pending: new Set(),
        ahead: new Set(),
        queuedBytes: 0,
        lastOffset: -1n,
        committed: -1n,
        paused: false,
        begun: false,
        settledOnce: false,
      };
      this.#partitions.set(partition, state);
    }
    return state;
  }

  #full(state: PartitionTurns): boolean {
    return state.queue.length > (this.#options.prefetch ?? DEFAULT_PREFETCH) || state.queuedBytes > PREFETCH_BYTES;
  }

  /** Starts turns while slots are free and records may run (see fair slots above). */
  #pump(): void {
    if (this.#closed) return;
    while (this.#active < this.#options.concurrency) {
      const next = this.#pick();
      if (!next) return;
      this.#start(next.partition, next.state, next.held);
    }
  }

  /**
   * The record to start next, if any may: among each partition's records that may run (the
   * oldest of a conversation with nothing running, not backing off, and not behind a
   * partition's first record), the oldest of the tenant with the fewest turns running that
   * is under its share.
   */
  #pick(): { partition: number; state: PartitionTurns; held: Held } | null {
    const now = this.#now();
    const { share, changesAt } = this.#share(now);
    let best: { partition: number; state: PartitionTurns; held: Held; running: number } | null = null;
    let wakeAt = Infinity;
    for (const [partition, state] of this.#partitions) {
      // Until a record of the partition is done, its first record runs alone.
      if (!state.settledOnce && state.running.size > 0) continue;
      // Run ahead as far as conversations remember (MAX_DONE_AHEAD): then only the lowest record may start.
      const lowestOnly = state.ahead.size >= MAX_DONE_AHEAD;
      if (lowestOnly && state.queue[0]?.offset !== lowest(state.pending)) continue;
      const busy = new Set<string>();
      for (const r of state.running) busy.add(r.held.key);
      for (const held of state.queue) {
        if (busy.has(held.key)) continue;
        busy.add(held.key); // a conversation's later records wait for this one
        const running = this.#runningOf.get(held.tenant) ?? 0;
        if (held.notBefore > now) wakeAt = Math.min(wakeAt, held.notBefore);
        else if (running >= share) wakeAt = Math.min(wakeAt, changesAt);
        else if (!best || running < best.running || (running === best.running && held.seq < best.held.seq)) best = { partition, state, held, running };
        if (!state.settledOnce || lowestOnly) break;
      }
    }
    if (!best && wakeAt !== Infinity) this.#wakeAt(wakeAt, now);
    return best;
  }

  /**
   * How many turns a tenant may run now: the slots over the tenants active (running,
   * waiting, or within the window), and when that may next grow (a tenant's window ends).
   */
  #share(now: number): { share: number; changesAt: number } {
    const window = this.#options.fairShareWindowMs ?? FAIR_SHARE_WINDOW_MS;
    const active = new Set<string>();
    for (const tenant of this.#runningOf.keys()) active.add(tenant);
    for (const state of this.#partitions.values()) for (const held of state.queue) active.add(held.tenant);
    let changesAt = Infinity;
    for (const [tenant, at] of this.#lastActive) {
      if (now - at >= window) this.#lastActive.delete(tenant);
      else if (!active.has(tenant)) {
        active.add(tenant);
        changesAt = Math.min(changesAt, at + window);
      }
    }
    return { share: Math.max(1, Math.ceil(this.#options.concurrency / Math.max(1, active.size))), changesAt };
  }

  #wakeAt(at: number, now: number): void {
    if (this.#wake) clearTimeout(this.#wake);
    this.#wake = setTimeout(
      () => {
        this.#wake = null;
        this.#pump();
      },
      Math.max(1, at - now),
    );
    this.#wake.unref();
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }

  #start(partition: number, state: PartitionTurns, held: Held): void {
    state.queue.splice(state.queue.indexOf(held), 1);
    state.queuedBytes -= held.bytes;
    this.#active++;
    this.#runningOf.set(held.tenant, (this.#runningOf.get(held.tenant) ?? 0) + 1);
    const revoke = new AbortController();
    const first = !state.begun;
    state.begun = true;
    const commit = this.#commitFor(state, held);
    const done = this.#options
      .run(held.record, revoke.signal, first, commit)
      .catch((err: unknown) => {
        this.#options.logger.error({ err, partition, offset: held.record.offset }, "turn failed unexpectedly; retrying the record");
        return "retry" as const;
      })
      .then((result) => this.#finished(partition, state, running, result));
    const running: Running = { held, revoke, done };
    state.running.add(running);
  }

  #commitFor(state: PartitionTurns, held: Held): RecordCommit {
    return {
      next: () => {
        let lowest = state.lastOffset + 1n;
        for (const offset of state.pending) if (offset !== held.offset && offset < lowest) lowest = offset;
        return lowest > state.committed ? lowest : state.committed;
      },
      settle: (to) => {
        state.pending.delete(held.offset);
        state.settledOnce = true;
        const moved = to > state.committed;
        if (moved) state.committed = to;
        if (held.offset >= state.committed) state.ahead.add(held.offset);
        for (const offset of state.ahead) if (offset < state.committed) state.ahead.delete(offset);
        return moved;
      },
    };
  }

  #finished(partition: number, state: PartitionTurns, running: Running, result: RunVerdict): void {
    const { held } = running;
    state.running.delete(running);
    this.#active--;
    const left = (this.#runningOf.get(held.tenant) ?? 1) - 1;
    if (left > 0) this.#runningOf.set(held.tenant, left);
    else this.#runningOf.delete(held.tenant);
    this.#lastActive.set(held.tenant, this.#now());
    const owned = this.#partitions.get(partition) === state && !running.revoke.signal.aborted;
    // A run that ended without its record done, on a partition still held, is run again: one
    // that asked to be (a broker that refused a write), or one that was left for a next owner
    // that is not coming (a transaction refused for a group generation that moved on while
    // the member kept the partition). Left as it was, the record would hold every commit of
    // the partition back, unanswered.
    const again = owned && (result === "retry" || state.pending.has(held.offset));
    if (again) {
      // Back off before the same record runs again; its conversation waits, the partition's
      // others go on.
      held.notBefore = this.#now() + Math.min(5000, (this.#options.retryBackoffMs ?? 200) * 2 ** held.retries);
      held.retries++;
      const at = state.queue.findIndex((h) => h.offset > held.offset);
      state.queue.splice(at < 0 ? state.queue.length : at, 0, held);
      state.queuedBytes += held.bytes;
    }
    // A revoked partition's record that ended without being done stays pending: no commit passes it.
    this.#pump();
    // A partition whose record is to run again is not resumed for it (it may start at once, off the queue).
    if (owned && !again) this.#relieve(partition, state);
  }

  /** Resumes a paused partition that holds few enough records again. */
  #relieve(partition: number, state: PartitionTurns): void {
    if (state.paused && !this.#closed && !this.#full(state) && this.#partitions.get(partition) === state) {
      state.paused = false;
      this.#options.resume(partition);
    }
  }
}

function lowest(offsets: ReadonlySet<bigint>): bigint | undefined {
  let min: bigint | undefined;
  for (const o of offsets) if (min === undefined || o < min) min = o;
  return min;
}
