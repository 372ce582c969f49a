/**
 * Which partition a key lands on, with the producers' own partitioner (kafkajs's
 * murmur2 DefaultPartitioner, the Java client's), so a benchmark can put concurrent
 * conversations on distinct partitions, as a worker runs one turn per partition at a time.
 */
import kafkajs from "kafkajs";

const partitioner = kafkajs.Partitioners.DefaultPartitioner();

export function partitionOf(key: string, partitions: number): number {
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 }));
  return partitioner({ topic: "t", partitionMetadata: partitionMetadata as never, message: { key, value: null } });
}

/** Hands out fresh keys `${prefix}-…` that hash to a chosen partition. */
export class KeyMaker {
  #counter = 0;
  constructor(
    private readonly prefix: string,
    private readonly partitions: number,
  ) {}

  next(partition: number): string {
    for (;;) {
      const key = `${this.prefix}-${(this.#counter++).toString(36)}`;
      if (partitionOf(key, this.partitions) === partition % this.partitions) return key;
    }
  }
}
