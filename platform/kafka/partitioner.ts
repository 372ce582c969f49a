/**
 * The partition of a keyed record: the Java client's default partitioner (murmur2 of the
 * key's UTF-8 bytes, made positive, modulo the partition count), so that a conversation key
 * lands on the same partition number in chat.requests, chat.events and chat.memory whoever
 * writes it, in any language. Every producer of the project names the partition from here;
 * librdkafka's own `murmur2_random` partitioner is the same function.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2): a signed 32-bit hash. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const blocks = length >> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i * 4;
    let k = data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const tail = blocks * 4;
  switch (length & 3) {
    case 3:
      h ^= data[tail + 2]! << 16;
    // falls through
    case 2:
      h ^= data[tail + 1]! << 8;
    // falls through
    case 1:
      h ^= data[tail]!;
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition a record keyed `key` lands on among `partitions`. */
export function keyPartition(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  // toPositive: the sign bit cleared, as the Java client does (not Math.abs).
  return (murmur2(Buffer.from(key, "utf8")) & 0x7fffffff) % partitions;
}
