/**
 * Counts attempts at a request, so that one that fails every time ends (dead-lettered, its
 * client told) instead of stopping its partition for good. Two kinds of failure count:
 *
 * - In this process: a turn that throws for a reason that is the record's own (the broker
 *   refusing a record, a bug its input reaches). Such a failure is counted here, in memory.
 *   A failure of Kafka itself (a broker away, a timeout, a transaction aborted, a fence) is
 *   not: a broker outage would otherwise dead-letter the head of every partition. A record
 *   larger than its topic accepts cannot succeed on any attempt and is given up at once.
 * - Across owners: a worker that dies on a request (a native crash on its input, an OOM
 *   kill) leaves it uncommitted, and the next owner would run it again, forever. Such
 *   attempts are counted by a marker on chat.memory, `#attempts:<offset>` in the partition
 *   of the same number (chat.memory is co-partitioned with chat.requests, so the offset
 *   names the record), which the memory store restores with the rest, so a new owner sees
 *   it. A new owner starts at the partition's committed offset, its lowest record not done,
 *   which is the record an earlier owner that died on a request was running, or will be
 *   once the records below it are done. So only the first record a worker takes from a
 *   partition after gaining it reads and writes a marker, before it runs, and it runs alone
 *   until it is done (worker/turn-scheduler.ts), so that the records beside it are not
 *   counted for its crash; every other turn pays nothing. When it is done its marker gets a tombstone, which compaction
 *   removes. A run stopped by a graceful move (handed over past the drain bound) takes its
 *   attempt back: it did not fail.
 *
 * Why a marker and not counting the request's earlier `start` events on chat.events: those
 * are on the request's events partition at an offset nobody recorded, so finding them means
 * reading the partition from the request's time on; the marker is one record in a log the
 * worker reads anyway. What it does not see: a worker that died on a request that was not
 * its first of the partition left no marker, so a request can run a few times more than
 * MAX_REQUEST_ATTEMPTS before it is given up (once per owner until the records below it
 * are done and it is the first).
 */
import { ErrorCode } from "../platform/kafka/native.js";
import { ProducerFenced, TransactionAborted } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";
import type { RequestRecord } from "./turn-scheduler.js";

/** Why a request was dead-lettered: the `reason` label of kafka_llm_dead_lettered_total (a closed set). */
export type DeadLetterReason = "invalid_record" | "attempts_exhausted" | "record_too_large";

/** A request that will not be run again: why, in words for the dead letter and the log (never the prompt). */
export interface GivenUp {
  readonly reason: DeadLetterReason;
  readonly detail: string;
}

/** Librdkafka's and Kafka's codes for a record the broker refuses for its size. */
const TOO_LARGE_CODES = new Set<number>([ErrorCode.MSG_SIZE_TOO_LARGE, 18 /* RECORD_LIST_TOO_LARGE */]);
/** Kafka's codes for a record the broker refuses for what it is (not for where or when it was sent). */
const REFUSED_RECORD_CODES = new Set<number>([2 /* CORRUPT_MESSAGE */, 87 /* INVALID_RECORD */]);
/** Errors that JavaScript throws for a bug, which an input may reach every time. */
const BUG_ERRORS = new Set(["TypeError", "RangeError", "ReferenceError", "SyntaxError"]);

/**
 * What a failure thrown by a turn means for its request: `too_large` (give up now),
 * `counted` (an attempt failed for the record's own reason), `transient` (Kafka or the
 * worker itself was in the way; run it again without counting).
 */
export function failureKind(err: unknown): "too_large" | "counted" | "transient" {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "number" && TOO_LARGE_CODES.has(code)) return "too_large";
    if (typeof code === "number" && REFUSED_RECORD_CODES.has(code)) return "counted";
  }
  if (err instanceof ProducerFenced || err instanceof TransactionAborted) return "transient";
  if (err instanceof Error && typeof (err as { code?: unknown }).code !== "number" && BUG_ERRORS.has(err.name)) return "counted";
  return "transient";
}

/**
 * The decision after attempt `attempts` (1-based, counting earlier owners') failed with
 * `kind`: give up, or run the record again. Pure.
 */
export function afterFailure(kind: ReturnType<typeof failureKind>, attempts: number, maxAttempts: number): "give_up" | "retry" {
  if (kind === "too_large") return "give_up";
  if (kind === "counted" && attempts >= maxAttempts) return "give_up";
  return "retry";
}

/**
 * Whether attempt `attempt` (1-based, counting earlier owners') may run: a request started
 * `maxAttempts` times without finishing is not started again. Pure.
 */
export function mayStart(attempt: number, maxAttempts: number): boolean {
  return attempt <= maxAttempts;
}

/** The markers' store: chat.memory through the worker's memory store (worker/memory-store.ts). */
export interface AttemptMarkers {
  /** Attempts an earlier owner recorded at request `offset` of partition p (0: none); after p's restore. */
  attemptsAt(partition: number, offset: string): Promise<number>;
  /** Records `attempts` at it (null: a tombstone); false when this worker no longer owns p. */
  markAttempts(partition: number, offset: string, attempts: number | null): Promise<boolean>;
}

interface Counted {
  /** Attempts earlier owners started (from the marker). */
  prior: number;
  /** Failures of this process that count (see failureKind). */
  failed: number;
  /** Whether this record has a marker on chat.memory (it was its partition's first here). */
  marked: boolean;
}

/** The attempt a record's next run is, 1-based: earlier owners' and this worker's counted failures before it. */
function attemptOf(counted: Counted): number {
  return counted.prior + counted.failed + 1;
}

/** The attempt counts of the records this worker runs (see the header). */
export class AttemptLedger {
  readonly #markers: AttemptMarkers;
  readonly #maxAttempts: number;
  readonly #logger: Logger;
  readonly #records = new Map<string, Counted>();

  constructor(markers: AttemptMarkers, maxAttempts: number, logger: Logger) {
    this.#markers = markers;
    this.#maxAttempts = maxAttempts;
    this.#logger = logger;
  }

  /**
   * Before a record runs: counts the attempt, and returns why not to run it when it has had
   * its attempts. `first`: the record is the first this worker takes from its partition since
   * gaining it, so an earlier owner may have started it (its marker is read, and written).
   */
  async begin(record: RequestRecord, first: boolean): Promise<GivenUp | null> {
    const id = recordId(record);
    let counted = this.#records.get(id);
    if (!counted) {
      const prior = first ? await this.#markers.attemptsAt(record.partition, record.offset) : 0;
      counted = { prior, failed: 0, marked: first };
      this.#records.set(id, counted);
    }
    const attempt = attemptOf(counted);
    if (!mayStart(attempt, this.#maxAttempts)) {
      return {
        reason: "attempts_exhausted",
        detail: `started ${attempt - 1} times without finishing (a worker that ran it stopped: a crash on its input?); MAX_REQUEST_ATTEMPTS is ${this.#maxAttempts}`,
      };
    }
    // Written before the turn runs, so a worker that dies on it has counted the attempt.
    if (counted.marked && !(await this.#markers.markAttempts(record.partition, record.offset, attempt))) {
      this.#logger.warn({ partition: record.partition, offset: record.offset }, "could not record the request's attempt: the partition moved on");
    }
    return null;
  }

  /** A run of the record threw `err`: why to give it up, or null to run it again (after a back-off). */
  failed(record: RequestRecord, err: unknown): GivenUp | null {
    const counted = this.#records.get(recordId(record));
    const kind = failureKind(err);
    const attempts = counted ? attemptOf(counted) : 1;
    if (kind === "counted" && counted) counted.failed++;
    if (afterFailure(kind, attempts, this.#maxAttempts) === "retry") return null;
    const what = err instanceof Error ? err.message : String(err);
    return kind === "too_large"
      ? { reason: "record_too_large", detail: `a record it writes is larger than its topic accepts (max.message.bytes): ${what}` }
      : { reason: "attempts_exhausted", detail: `failed on all ${attempts} attempts (MAX_REQUEST_ATTEMPTS); the last: ${what}` };
  }

  /** The record is done (committed, or given up): its marker, if it has one, is removed. */
  async done(record: RequestRecord): Promise<void> {
    const id = recordId(record);
    const counted = this.#records.get(id);
    this.#records.delete(id);
    if (!counted?.marked) return;
    await this.#markers
      .markAttempts(record.partition, record.offset, null)
      .catch((err: unknown) =>
        this.#logger.warn(
          { partition: record.partition, offset: record.offset, err },
          "could not remove the request's attempt marker; it expires with the memory's retention",
        ),
      );
  }

  /**
   * The record's run was stopped by a partition move (handed over to the next owner, or the
   * partition lost): not an attempt that failed, so its marker goes back to what earlier
   * owners left, and a reply handed over at every scale event is never given up.
   */
  async interrupted(record: RequestRecord): Promise<void> {
    const id = recordId(record);
    const counted = this.#records.get(id);
    this.#records.delete(id);
    if (!counted?.marked) return;
    const before = attemptOf(counted) - 1;
    await this.#markers
      .markAttempts(record.partition, record.offset, before > 0 ? before : null)
      .catch((err: unknown) => this.#logger.warn({ partition: record.partition, offset: record.offset, err }, "could not take back the request's attempt"));
  }

  /** Forgets the counts of partition p's records (it was given up; its next owner reads the markers). */
  drop(partition: number): void {
    for (const id of [...this.#records.keys()]) if (id.startsWith(`${partition}@`)) this.#records.delete(id);
  }
}

function recordId(record: RequestRecord): string {
  return `${record.partition}@${record.offset}`;
}
