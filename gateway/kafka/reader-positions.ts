/**
 * Where each named history reader stopped, kept in Kafka as a consumer group's committed
 * offset: one always-empty group per (tenant, conversation, chain epoch, reader), its
 * offset on chat.history the number of the conversation's messages the reader has consumed
 * (a position in the conversation, since its records are not contiguous in the partition).
 * This is how Kafka keeps any consumer's position, so it holds across gateway replicas and
 * restarts, and readers never disturb each other. The broker forgets a group's offsets
 * after offsets.retention.minutes without a commit (7 days by default, as the conversation
 * TTL): an idle reader's position lives that long. A conversation deleted and opened
 * again has a new epoch, so its readers start afresh.
 */
import { createHash } from "node:crypto";
import type { Admin } from "kafkajs";

export interface ReaderPosition {
  tenant: string;
  conversationId: string;
  epoch: string;
  reader: string;
}

export interface ReaderPositions {
  /** Messages the reader has consumed (the index of the next it reads), or undefined when it has no position yet. */
  get(at: ReaderPosition): Promise<number | undefined>;
  set(at: ReaderPosition, next: number): Promise<void>;
}

/** The group that holds one reader's position: hashed, so any tenant or reader name makes a valid, bounded id. */
export function readerGroupId(prefix: string, at: ReaderPosition): string {
  const h = createHash("sha256").update(`${at.tenant}\0${at.conversationId}\0${at.epoch}\0${at.reader}`).digest("hex");
  return `${prefix}kafka-llm-history-reader.${h.slice(0, 40)}`;
}

/** `prefix`: the install's topic prefix, so installs sharing a cluster keep apart. The position is kept on partition 0. */
export function kafkaReaderPositions(admin: Admin, topic: string, prefix: string): ReaderPositions {
  return {
    async get(at) {
      const groups = await admin.fetchOffsets({ groupId: readerGroupId(prefix, at), topics: [topic] });
      const offset = groups.find((g) => g.topic === topic)?.partitions.find((p) => p.partition === 0)?.offset;
      return offset === undefined || Number(offset) < 0 ? undefined : Number(offset);
    },
    async set(at, next) {
      await admin.setOffsets({ groupId: readerGroupId(prefix, at), topic, partitions: [{ partition: 0, offset: String(next) }] });
    },
  };
}
