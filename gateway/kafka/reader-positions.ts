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
import { privateGroup } from "../../contracts/kafka-acls.js";
import type { KafkaAdmin } from "../../platform/kafka/admin.js";

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

/**
 * The group that holds one reader's position: a private group of the gateways' (so only
 * gateways may touch it: contracts/kafka-acls.ts), hashed, so any tenant or reader name
 * makes a valid, bounded id.
 */
export function readerGroupId(gatewayGroup: string, at: ReaderPosition): string {
  return privateGroup(gatewayGroup, `reader.${readerKey(at)}`);
}

/** A reader's bounded name: the same for the same (tenant, conversation, epoch, reader), whatever their length. */
export function readerKey(at: ReaderPosition): string {
  return createHash("sha256").update(`${at.tenant}\0${at.conversationId}\0${at.epoch}\0${at.reader}`).digest("hex").slice(0, 40);
}

/**
 * Positions through `admin`: OffsetFetch to read one; to set one, an OffsetCommit by a
 * consumer of that group id that never joins it (librdkafka's admin has no
 * AlterConsumerGroupOffsets, and a librdkafka client has one group id: a short-lived one per
 * commit). Each call answers, or fails, within the admin's timeout (a read that names a
 * reader answers 503 within seconds when Kafka is away). `gatewayGroup`: the gateways'
 * group, so installs sharing a cluster keep apart. The position is kept on partition 0.
 */
export function kafkaReaderPositions(admin: KafkaAdmin, topic: string, gatewayGroup: string): ReaderPositions {
  return {
    async get(at) {
      const committed = await admin.committed(readerGroupId(gatewayGroup, at), topic, [0]);
      return committed.get(0);
    },
    async set(at, next) {
      await admin.commit(readerGroupId(gatewayGroup, at), [{ topic, partition: 0, offset: next }]);
    },
  };
}
