/**
 * Reads chosen partitions of chat.events into the hub: a reader by assignment
 * (platform/kafka/assigned-reader.ts), so partitions are added and dropped one at a time
 * without disturbing the others. Which partitions, and from where, is the caller's
 * (gateway/kafka/event-partitions.ts): those the gateways' group gives this replica and
 * those a follower here needs.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { chatEventSchema, type ChatEvent } from "../../contracts/records/events.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import { AssignedReader, type AssignedConsumer } from "../../platform/kafka/assigned-reader.js";
import type { Logger } from "../../platform/logger.js";

export interface EventsReaderOptions {
  readonly kafka: KafkaConfig;
  readonly topic: string;
  /** The group id the consumer is given (never joined): a private group of the gateways'. */
  readonly groupId: string;
  readonly logger: Logger;
  /** Each event read, with its partition. */
  /** `headers`: the record's (its writer's trace context). */
  onEvent(event: ChatEvent, partition: number, headers: Readonly<Record<string, Buffer | string>>): void;
  /** Each record read (events and malformed ones alike), for the events_read counter. */
  onRecord?(partition: number): void;
  /** The consumer was replaced because it stopped fetching (the restarts counter). */
  onRestart?(): void;
  /** The topic's partition ends now, asked of another client (the reader's watchdog). */
  ends(): Promise<ReadonlyMap<number, number>>;
  /** Watchdog bounds (tests shorten them). */
  readonly stallMs?: number;
  readonly watchMs?: number;
  /** Makes and connects a consumer (tests give a stand-in). */
  readonly makeConsumer?: () => Promise<AssignedConsumer>;
}

/** The chat.events reader: what AssignedReader reads, decoded into events. */
export function eventsReader(options: EventsReaderOptions): AssignedReader {
  const log = options.logger.child({ component: "events-reader" });
  return new AssignedReader({
    kafka: options.kafka,
    topic: options.topic,
    name: "events-reader",
    groupId: options.groupId,
    logger: options.logger,
    ends: options.ends,
    ...(options.onRestart && { onRestart: options.onRestart }),
    ...(options.stallMs !== undefined && { stallMs: options.stallMs }),
    ...(options.watchMs !== undefined && { watchMs: options.watchMs }),
    ...(options.makeConsumer && { makeConsumer: options.makeConsumer }),
    onRecords(records) {
      for (const r of records) {
        options.onRecord?.(r.partition);
        const decoded = decodeRecord(chatEventSchema, r.value);
        if (!decoded.ok) log.warn({ partition: r.partition, offset: r.offset, reason: decoded.reason }, "ignored malformed event");
        else options.onEvent(decoded.value, r.partition, r.headers);
      }
    },
  });
}
