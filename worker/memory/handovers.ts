/**
 * Replies handed over between owners of a partition. A worker that must give a partition
 * up mid-reply writes what it has so far to chat.memory under the request's handover key;
 * the partition's next owner restores it with the rest and continues the reply instead of
 * starting over, then removes it (with the conversation's new state, in the same send).
 * Writing or removing one outside a transaction first checks that this store still owns
 * the partition, so a worker another has replaced writes nothing there. A handover
 * is only ever given for the conversation it belongs to, and one that does not decode is
 * removed from the store so the request runs afresh.
 */
import { conversationKey } from "../../contracts/conversation-key.js";
import { decodeRecord, encodeRecord } from "../../contracts/records/codec.js";
import { handoverSchema, type Handover } from "../../contracts/records/memory.js";
import type { RecordSink } from "../../platform/kafka/producer.js";
import type { Logger } from "../../platform/logger.js";
import { handoverKey, type MemoryRecord } from "./keys.js";
import type { Ownership } from "./ownership.js";
import type { Clock, MemoryState } from "./ports.js";
import type { MemoryWriter } from "./writes.js";

export interface HandoversOptions {
  store: Pick<MemoryState, "get" | "has">;
  writer: Pick<MemoryWriter, "send" | "local">;
  ownership: Pick<Ownership, "holds" | "isCurrent">;
  clock: Clock;
  logger: Logger;
}

export class Handovers {
  readonly #options: HandoversOptions;

  constructor(options: HandoversOptions) {
    this.#options = options;
  }

  /** Leaves a stopped reply for the partition's next owner; false, writing nothing, when no longer the owner. */
  async handOver(partition: number, handover: Handover): Promise<boolean> {
    const { ownership, writer } = this.#options;
    if (!(await ownership.isCurrent(partition))) return false;
    return writer.send(partition, [{ key: handoverKey(handover.request_id), value: encodeRecord(handover) }]);
  }

  /** Removes a request's handed-over reply (its continuation is done); false when no longer the owner (checked outside a transaction only). */
  async clear(partition: number, requestId: string, transaction?: RecordSink): Promise<boolean> {
    const { ownership, writer } = this.#options;
    if (!transaction && !(await ownership.isCurrent(partition))) return false;
    return writer.send(partition, [{ key: handoverKey(requestId), value: null }], transaction);
  }

  /** The tombstone of request `requestId`'s handover, to send with the conversation's state: none when the store has no such handover. */
  clearing(partition: number, requestId: string | undefined): MemoryRecord[] {
    const { ownership, store } = this.#options;
    if (requestId === undefined || !ownership.holds(partition) || !store.has(partition, "handover", requestId)) return [];
    return [{ key: handoverKey(requestId), value: null }];
  }

  /** The reply a previous owner handed over for request `requestId` of conversation `key` (contracts/conversation-key.ts), if any. */
  find(partition: number, requestId: string, key: string): Handover | undefined {
    const handed = this.#read(partition, requestId);
    return handed && conversationKey(handed) === key ? handed : undefined;
  }

  #read(partition: number, requestId: string): Handover | undefined {
    const { ownership, store, writer, clock, logger } = this.#options;
    if (!ownership.holds(partition)) return undefined;
    const stored = store.get(partition, "handover", requestId);
    if (!stored) return undefined;
    const decoded = decodeRecord(handoverSchema, stored.bytes);
    if (!decoded.ok) {
      logger.error({ partition, request_id: requestId, reason: decoded.reason }, "unreadable handover record; the request runs afresh");
      void writer.local(partition, [{ kind: "handover", id: requestId, value: null, writtenAt: clock.now() }]);
      return undefined;
    }
    return decoded.value;
  }
}
