/**
 * The skip list that links a conversation's records in chat.history, as pure functions.
 * Kafka has no index by key, so each record carries `links[k]`: the offset of the newest
 * earlier record whose seq is a multiple of 2^k. The memory record carries the same list
 * for the chain as a whole (its `fingers`), so the next record's links are known without
 * reading anything, and any record is found from the newest in at most log2(n) + 1 hops,
 * the level dropping at every hop.
 */

/** Bits needed for n (0 for 0). */
function bitLength(n: number): number {
  return n === 0 ? 0 : Math.floor(Math.log2(n)) + 1;
}

/**
 * The fingers after appending record `seq` at `offset` to a chain whose fingers were
 * `fingers` (empty for the first record). Levels whose multiples of 2^k `seq` is take the
 * new offset; the top level always points at record 0.
 */
export function nextFingers(fingers: readonly number[], seq: number, offset: number): number[] {
  const levels = bitLength(seq) + 1;
  const next: number[] = [];
  for (let k = 0; k < levels; k++) {
    if (seq % 2 ** k === 0) next.push(offset);
    else next.push(fingers[Math.min(k, fingers.length - 1)]!);
  }
  return next;
}

/** The seq that link k of record `seq` points to. */
export function linkedSeq(seq: number, k: number): number {
  return Math.floor((seq - 1) / 2 ** k) * 2 ** k;
}

/**
 * The link to follow from record `seq` (holding `links` links) toward record `target`
 * (< seq): the one that gets closest without passing it.
 */
export function hopToward(seq: number, linkCount: number, target: number): { level: number; seq: number } {
  if (target >= seq || target < 0) throw new RangeError(`cannot hop from record ${seq} to ${target}`);
  let level = 0;
  for (let k = 1; k < linkCount; k++) {
    if (linkedSeq(seq, k) >= target) level = k;
  }
  return { level, seq: linkedSeq(seq, level) };
}
