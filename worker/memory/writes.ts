/**
 * How the memory store writes. A record goes to chat.memory first (acks=all, through a
 * transaction's sink when the turn has one); once Kafka has it, the state store takes it
 * without being waited for (it reads its own writes) and the partition's position follows
 * (worker/memory/ownership.ts). A store write that fails is logged and drops the
 * partition's checkpoint: the store now lacks a record the log has, so the next restore of
 * the partition reads it from the beginning instead of serving without it.
 *
 * Each record carries the offset this worker expects it to land at (EXPECTED_OFFSET_HEADER,
 * contracts/records/memory.ts): the partition's end as its owner knows it. The broker gives
 * each offset to one record, so a record lands there only if nobody else wrote to the
 * partition in between; otherwise it landed elsewhere, every reader skips it, and the write
 * reports false (the caller's turn does not announce it; its next turn catches up with the
 * log). That is what closes the fence's last gap: a worker frozen between its ownership
 * check and its write, replaced meanwhile, writes a record no reader takes. A partition's
 * writes go one after another, so this worker's own writes never take each other's offsets.
 */
import { EXPECTED_OFFSET_HEADER } from "../../contracts/records/memory.js";
import type { RecordSink } from "../../platform/kafka/producer.js";
import type { Logger } from "../../platform/logger.js";
import type { RecordWrite } from "../state-store.js";
import { recordWrite, type MemoryRecord } from "./keys.js";
import type { Ownership } from "./ownership.js";
import type { Clock, MemoryState } from "./ports.js";
import type { Checkpoints } from "./upkeep.js";

export interface MemoryWriterOptions {
  topic: string;
  /** Where records go outside a transaction. */
  producer: RecordSink;
  store: Pick<MemoryState, "write">;
  checkpoints: Pick<Checkpoints, "drop">;
  positions: Pick<Ownership, "holds" | "wrote" | "position" | "behind">;
  clock: Clock;
  logger: Logger;
}

export class MemoryWriter {
  readonly #options: MemoryWriterOptions;
  /** Each partition's last send: the next starts once it has landed. */
  readonly #queues = new Map<number, Promise<unknown>>();

  constructor(options: MemoryWriterOptions) {
    this.#options = options;
  }

  /**
   * Writes records to memory partition p in one batch (through `transaction` when given);
   * a held partition's store takes them and its position follows to after the last. False
   * when they did not land where this worker expected (another worker wrote to the
   * partition since): no reader takes them, the store does not either, and the partition's
   * position is forgotten so its next turn reads the log again.
   */
  send(partition: number, records: readonly MemoryRecord[], transaction?: RecordSink): Promise<boolean> {
    return this.between(partition, () => this.#send(partition, records, transaction));
  }

  /**
   * Runs `work` once partition p's writes so far have landed, and before any later one is
   * sent. A question about the log's end asked this way is not confused by this worker's own
   * write in flight (a partition's conversations run side by side, worker/turn-scheduler.ts):
   * an end past the position then means another writer.
   */
  between<T>(partition: number, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(partition) ?? Promise.resolve();
    const done = previous.catch(() => undefined).then(work);
    this.#queues.set(partition, done);
    void done
      .finally(() => {
        if (this.#queues.get(partition) === done) this.#queues.delete(partition);
      })
      .catch(() => undefined);
    return done;
  }

  async #send(partition: number, records: readonly MemoryRecord[], transaction?: RecordSink): Promise<boolean> {
    const { topic, producer, positions, clock, logger } = this.#options;
    const at = positions.position(partition);
    // A held partition being restored (or caught up) has no position to fence a write with.
    if (at === undefined && positions.holds(partition)) return false;
    const messages = records.map((r, i) => ({
      partition,
      ...r,
      ...(at !== undefined && { headers: { [EXPECTED_OFFSET_HEADER]: String(at + BigInt(i)) } }),
    }));
    const delivered = await (transaction ?? producer).send({ topic, messages });
    if (at !== undefined && delivered.some((d, i) => BigInt(d.offset) !== at + BigInt(i))) {
      logger.warn(
        { partition, expected: String(at), landed: delivered[0]?.offset },
        "memory records did not land where this worker expected: another worker wrote to the partition; readers skip them",
      );
      positions.behind(partition);
      return false;
    }
    if (!positions.holds(partition)) return true;
    const now = clock.now();
    void this.local(
      partition,
      records.map((r) => recordWrite(r.key, r.value, now)),
    );
    positions.wrote(partition, delivered);
    return true;
  }

  /** A store write the caller does not wait for; never rejects (a failure drops the partition's checkpoint). */
  local(partition: number, writes: RecordWrite[]): Promise<void> {
    const { store, checkpoints, logger } = this.#options;
    return store.write(partition, writes).catch((err: unknown) => {
      logger.error({ partition, err }, "state store write failed; the partition's next restore reads from the beginning");
      return checkpoints.drop(partition);
    });
  }
}
