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
import { Admin } from "@platformatic/kafka";
import type { KafkaConfig } from "../../contracts/config.js";
import { privateGroup } from "../../contracts/kafka-acls.js";
import { platformaticConnection } from "../../platform/kafka.js";

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
  close(): Promise<void>;
}

/**
 * The group that holds one reader's position: a private group of the gateways' (so only
 * gateways may touch it: contracts/kafka-acls.ts), hashed, so any tenant or reader name
 * makes a valid, bounded id.
 */
export function readerGroupId(gatewayGroup: string, at: ReaderPosition): string {
  const h = createHash("sha256").update(`${at.tenant}\0${at.conversationId}\0${at.epoch}\0${at.reader}`).digest("hex");
  return privateGroup(gatewayGroup, `reader.${h.slice(0, 40)}`);
}

/**
 * `gatewayGroup`: the gateways' group, so installs sharing a cluster keep apart. The
 * position is kept on partition 0.
 *
 * The admin client is @platformatic/kafka's: its OffsetCommit and OffsetFetch name any
 * group without joining it (one round trip each, a few ms). kafkajs can commit only as a
 * group member (its admin.setOffsets joins the group first, seconds on a broker's initial
 * rebalance delay), and librdkafka ties a client to one group id.
 */
export function kafkaReaderPositions(kafka: KafkaConfig, topic: string, gatewayGroup: string): ReaderPositions {
  // A read that names a reader answers 503 within seconds when Kafka is away, not after long retries.
  const admin = new Admin(platformaticConnection(kafka, "history-readers", 2));
  return {
    async get(at) {
      const groupId = readerGroupId(gatewayGroup, at);
      const [group] = await admin.listConsumerGroupOffsets({ groups: [{ groupId, topics: [{ name: topic, partitionIndexes: [0] }] }] });
      const offset = group?.topics.find((t) => t.name === topic)?.partitions.find((p) => p.partitionIndex === 0)?.committedOffset;
      return offset === undefined || offset < 0n ? undefined : Number(offset);
    },
    async set(at, next) {
      await admin.alterConsumerGroupOffsets({
        groupId: readerGroupId(gatewayGroup, at),
        topics: [{ name: topic, partitionOffsets: [{ partition: 0, offset: BigInt(next) }] }],
      });
    },
    close: () => admin.close(),
  };
}
