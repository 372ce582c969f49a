/**
 * Which partition a conversation lands on, with the producers' own partitioner (the Java
 * client's murmur2, platform/kafka/partitioner.ts) over its conversation key (tenant and id), so a
 * benchmark can put concurrent conversations on distinct partitions, as a worker runs one
 * turn per partition at a time.
 */
import { conversationKey } from "../../contracts/conversation-key.js";
import { keyPartition } from "../../platform/kafka/partitioner.js";

export function partitionOf(tenant: string, conversationId: string, partitions: number): number {
  return keyPartition(conversationKey({ tenant, conversation_id: conversationId }), partitions);
}

/** Hands out fresh conversation ids `${prefix}-…` of `tenant` that hash to a chosen partition. */
export class KeyMaker {
  #counter = 0;
  constructor(
    private readonly prefix: string,
    private readonly partitions: number,
    private readonly tenant: string,
  ) {}

  next(partition: number): string {
    for (;;) {
      const id = `${this.prefix}-${(this.#counter++).toString(36)}`;
      if (partitionOf(this.tenant, id, this.partitions) === partition % this.partitions) return id;
    }
  }
}
