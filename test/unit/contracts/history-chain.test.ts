/**
 * The skip list that links chat.history's records (contracts/history-chain.ts): the
 * fingers a chain keeps, and that any record is reached from the head in at most
 * log2(n) + 1 hops, each to a record of the chain.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { hopToward, linkedSeq, nextFingers } from "../../../contracts/history-chain.js";

/** A chain of n records, record s at offset 100 + 10 * s: each record's links and the final fingers. */
function chain(n: number): { links: number[][]; fingers: number[] } {
  const links: number[][] = [];
  let fingers: number[] = [];
  for (let s = 0; s < n; s++) {
    links.push(fingers);
    fingers = nextFingers(fingers, s, 100 + 10 * s);
  }
  return { links, fingers };
}
const seqAt = (offset: number) => (offset - 100) / 10;

describe("history chain", () => {
  it("keeps, per level k, the newest record whose seq is a multiple of 2^k; the top level is record 0", () => {
    const { fingers } = chain(11); // records 0..10
    assert.deepEqual(fingers.map(seqAt), [10, 10, 8, 8, 0]);
    assert.deepEqual(chain(1).fingers.map(seqAt), [0]);
    assert.deepEqual(chain(2).fingers.map(seqAt), [1, 0]);
    for (let k = 0; k < fingers.length; k++) assert.equal(seqAt(fingers[k]!), linkedSeq(11, k));
  });

  it("links every record to the records its links name", () => {
    const { links } = chain(40);
    for (let s = 1; s < 40; s++) {
      for (let k = 0; k < links[s]!.length; k++) assert.equal(seqAt(links[s]![k]!), linkedSeq(s, k), `record ${s} link ${k}`);
    }
  });

  it("reaches any record from the head in O(log n) hops (at most log2(n) + 2)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.nat(), (n, t) => {
        const target = t % n;
        const { links, fingers } = chain(n);
        let seq = n; // the head: a record past the newest, whose links are the fingers
        let node = fingers;
        let hops = 0;
        while (seq !== target) {
          const hop = hopToward(seq, node.length, target);
          assert.ok(hop.seq >= target && hop.seq < seq);
          assert.equal(seqAt(node[hop.level]!), hop.seq, "the link leads where the hop says");
          seq = hop.seq;
          node = links[seq]!;
          hops++;
        }
        assert.ok(hops <= Math.floor(Math.log2(n)) + 2, `${hops} hops to ${target} of ${n}`);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses a hop that is not backwards", () => {
    assert.throws(() => hopToward(5, 3, 5), RangeError);
    assert.throws(() => hopToward(5, 3, -1), RangeError);
  });
});
