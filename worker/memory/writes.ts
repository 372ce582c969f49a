/**
 * How the memory store writes. A record goes to chat.memory first (acks=all, through a
 * transaction's sink when the turn has one); once Kafka has it, the state store takes it
 * without being waited for (it reads its own writes) and the partition's position follows
 * (worker/memory/ownership.ts). A store write that fails is logged and drops the
 * partition's checkpoint: the store now lacks a record the log has, so the next restore of
 * the partition reads it from the beginning instead of serving without it.
 */
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
  positions: Pick<Ownership, "holds" | "wrote">;
  clock: Clock;
  logger: Logger;
}

export class MemoryWriter {
  readonly #options: MemoryWriterOptions;

  constructor(options: MemoryWriterOptions) {
    this.#options = options;
  }

  /**
   * Writes records to memory partition p in one batch (through `transaction` when given);
   * a held partition's store takes them and its position follows to after the last.
   */
  async send(partition: number, records: readonly MemoryRecord[], transaction?: RecordSink): Promise<void> {
    const { topic, producer, positions, clock } = this.#options;
    const delivered = await (transaction ?? producer).send({ topic, messages: records.map((r) => ({ partition, ...r })) });
    if (!positions.holds(partition)) return;
    const now = clock.now();
    void this.local(
      partition,
      records.map((r) => recordWrite(r.key, r.value, now)),
    );
    positions.wrote(partition, delivered);
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
