/**
 * Tells a client whose request waits why nothing happens yet: every QUEUE_NOTICE_MS, for
 * each open event stream of a request no worker has started, a `queued` notice with how
 * many requests are ahead of it on its partition of chat.requests and whether any member
 * of the worker group owns that partition (none while scaled to zero, a worker starting,
 * or during a rebalance).
 *
 * The request's partition and offset come from the gateway's own read of chat.requests
 * (requests-reader.ts), so any replica can say it. One check per tick serves every waiting
 * stream: the group's committed offsets and its members' assignments (one OffsetFetch, one
 * group description: ConsumerGroupDescribe on the workers' KIP-848 group, where each
 * member's assignment is what it owns now). When Kafka cannot be asked the notice is
 * skipped, never guessed.
 */
import type { KafkaAdmin } from "../../platform/kafka/admin.js";
import type { GroupDescriber } from "../../platform/kafka/group-describer.js";
import type { Logger } from "../../platform/logger.js";
import { groupPositions } from "./group-positions.js";

/** The SSE `queued` notice. Not a chat.events record: it has no seq and is not replayed. */
export interface QueuedNotice {
  type: "queued";
  request_id: string;
  partition: number;
  /** Requests on the same partition the worker group has yet to finish before this one. */
  ahead: number;
  /** Whether a member of the worker group owns the partition right now. */
  worker_assigned: boolean;
  /** How many members the worker group has. */
  workers: number;
  /** Milliseconds since the epoch when this was measured. */
  at: number;
}

export interface QueuePosition {
  partition: number;
  offset: bigint;
}

export interface GroupView {
  /** Committed offset per partition (the next to process); absent when none is committed. */
  committed: Map<number, bigint>;
  /** Low watermark per partition (where a group without commits starts). */
  low: Map<number, bigint>;
  /** Partitions owned by some member. */
  owned: Set<number>;
  members: number;
}

/** The notice for a request at `pos`, from one view of the group. */
export function queuedNotice(requestId: string, pos: QueuePosition, view: GroupView, at: number): QueuedNotice {
  const from = view.committed.get(pos.partition) ?? view.low.get(pos.partition) ?? 0n;
  const ahead = pos.offset > from ? Number(pos.offset - from) : 0;
  return { type: "queued", request_id: requestId, partition: pos.partition, ahead, worker_assigned: view.owned.has(pos.partition), workers: view.members, at };
}

export function formatQueued(notice: QueuedNotice): string {
  return `event: queued\ndata: ${JSON.stringify(notice)}\n\n`;
}

type Watcher = (notice: QueuedNotice) => void;

/** librdkafka's ConsumerGroupState STABLE. */
const CLASSIC_STABLE = 3;
/** A stream's watcher and when it last got a notice (0: never). */
interface Watch {
  send: Watcher;
  lastAt: number;
}

export class QueueWatch {
  readonly #admin: KafkaAdmin;
  readonly #describer: GroupDescriber;
  readonly #topic: string;
  readonly #groupId: string;
  readonly #intervalMs: number;
  readonly #logger: Logger;
  /** Where each request read from chat.requests sits; bounded like the hub. */
  readonly #positions = new Map<string, QueuePosition>();
  readonly #maxPositions: number;
  readonly #watchers = new Map<string, Set<Watch>>();
  #timer: NodeJS.Timeout | null = null;
  #due = 0;
  #failing = false;

  constructor(options: {
    admin: KafkaAdmin;
    describer: GroupDescriber;
    topic: string;
    groupId: string;
    intervalMs: number;
    maxPositions: number;
    logger: Logger;
  }) {
    this.#admin = options.admin;
    this.#describer = options.describer;
    this.#topic = options.topic;
    this.#groupId = options.groupId;
    this.#intervalMs = options.intervalMs;
    this.#maxPositions = options.maxPositions;
    this.#logger = options.logger.child({ component: "queue-watch" });
  }

  /** Records where a request was read in chat.requests (called by the requests reader). */
  place(requestId: string, partition: number, offset: string): void {
    this.#positions.delete(requestId);
    this.#positions.set(requestId, { partition, offset: BigInt(offset) });
    for (const [id] of this.#positions) {
      if (this.#positions.size <= this.#maxPositions) break;
      this.#positions.delete(id);
    }
  }

  /**
   * Sends `onNotice` a notice now and every interval until the returned function is called
   * (when the request starts or the stream closes).
   */
  watch(requestId: string, onNotice: Watcher): () => void {
    let set = this.#watchers.get(requestId);
    if (!set) this.#watchers.set(requestId, (set = new Set()));
    const entry: Watch = { send: onNotice, lastAt: 0 };
    set.add(entry);
    this.#schedule(0);
    return () => {
      set!.delete(entry);
      if (set!.size === 0) this.#watchers.delete(requestId);
      if (this.#watchers.size === 0 && this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
      }
    };
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#watchers.clear();
  }

  /** Runs a tick in `delayMs` unless one is due sooner. */
  #schedule(delayMs: number): void {
    const due = Date.now() + delayMs;
    if (this.#timer && this.#due <= due) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(() => void this.#tick(), delayMs);
  }

  async #tick(): Promise<void> {
    this.#timer = null;
    if (this.#watchers.size === 0) return;
    const view = await this.#view();
    const now = Date.now();
    // A stream gets a notice at once, then one per interval (a new stream's early tick
    // does not make the others' notices come faster).
    let pending = false;
    for (const [requestId, watchers] of this.#watchers) {
      const pos = this.#positions.get(requestId);
      for (const w of [...watchers]) {
        if (w.lastAt !== 0 && now - w.lastAt < this.#intervalMs - 50) continue;
        // Not read back from chat.requests yet (a few ms after the produce): soon again.
        if (!pos) {
          pending = true;
          continue;
        }
        if (!view) continue; // Kafka did not answer: the next interval
        w.lastAt = now;
        w.send(queuedNotice(requestId, pos, view, now));
      }
    }
    if (this.#watchers.size > 0) this.#schedule(pending ? Math.min(250, this.#intervalMs) : this.#intervalMs);
  }

  /** The group's commits and assignments now; null when Kafka did not answer. */
  async #view(): Promise<GroupView | null> {
    try {
      const budget = Math.max(1000, this.#intervalMs);
      const [{ ends, committed: committedOffsets }, group] = await Promise.all([
        groupPositions(this.#admin, this.#topic, this.#groupId, budget),
        this.#describer.describe(this.#groupId, this.#topic, budget),
      ]);
      const committed = new Map([...committedOffsets].map(([p, o]) => [p, BigInt(o)] as const));
      const low = new Map(ends.map((e) => [e.partition, BigInt(e.low)] as const));
      const owned = new Set<number>();
      const members = group?.members ?? [];
      // A KIP-848 member's assignment is what it owns now; a classic group's assignments
      // mean something only while it is stable (mid-rebalance nobody owns anything yet).
      if (group && (group.type === "consumer" || group.state === CLASSIC_STABLE)) for (const m of members) for (const p of m.partitions) owned.add(p);
      if (this.#failing) this.#logger.info("queue notices work again");
      this.#failing = false;
      return { committed, low, owned, members: members.length };
    } catch (err) {
      if (!this.#failing) this.#logger.warn({ err }, "cannot read the worker group's position; skipping queued notices until Kafka answers");
      this.#failing = true;
      return null;
    }
  }
}
