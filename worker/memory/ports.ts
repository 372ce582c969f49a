/**
 * What the memory store's parts need of the world outside them, each as a narrow interface:
 * the disk-backed state store, the reader of chat.memory, the admin's partition offsets and
 * the clock. The store wires the real ones (worker/state-store.ts, the AssignedReader, the
 * KafkaAdmin, the system clock); a part's unit tests give small in-memory stand-ins, so its
 * decisions are checked without a broker or a disk.
 */
import type { KafkaAdmin } from "../../platform/kafka/admin.js";
import type { AssignedReader } from "../../platform/kafka/assigned-reader.js";
import type { StateStore } from "../state-store.js";

/** The state store's verbs the parts use (each part takes the few it needs). */
export type MemoryState = Pick<
  StateStore,
  "checkpoint" | "setCheckpoint" | "dropCheckpoint" | "clearPartition" | "write" | "writeBulk" | "get" | "has" | "count" | "sweep"
>;

/** The reader of chat.memory by assignment: partitions given to it from an offset and taken back, and their ends. */
export type MemoryReader = Pick<AssignedReader, "seek" | "add" | "remove" | "waitFor" | "end">;

/** The admin's offsets of a topic's partitions (a restore's plan, and the log's end when the reader cannot say). */
export type LogOffsets = Pick<KafkaAdmin, "offsets">;

export interface Clock {
  /** Wall-clock time, ms since the epoch: record times, checkpoint ages, the TTL. */
  now(): number;
  /** A monotonic time in ms, for durations. */
  monotonic(): number;
}

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
