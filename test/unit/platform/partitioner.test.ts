import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keyPartition, murmur2 } from "../../../platform/kafka/partitioner.js";

/**
 * From the Java client (kafka-clients 4.1.1): Utils.murmur2 of each key's UTF-8 bytes and
 * Utils.toPositive(hash) % n, printed by a small program against the broker's jars. The
 * first six are the vectors of Kafka's own UtilsTest.
 */
const JAVA = [
  { key: "", murmur2: 275646681, p6: 3, p12: 9 },
  { key: "21", murmur2: -973932308, p6: 0, p12: 0 },
  { key: "foobar", murmur2: -790332482, p6: 0, p12: 6 },
  { key: "a-little-bit-long-string", murmur2: -985981536, p6: 2, p12: 8 },
  { key: "a-little-bit-longer-string", murmur2: -1486304829, p6: 5, p12: 11 },
  { key: "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", murmur2: -58897971, p6: 5, p12: 5 },
  { key: "abc", murmur2: 479470107, p6: 3, p12: 3 },
  { key: "t1/conv-1", murmur2: -1432616450, p6: 0, p12: 6 },
  { key: "acme/support-4711", murmur2: -1767845146, p6: 4, p12: 10 },
  { key: "ünïcödé/會話", murmur2: -2025933618, p6: 2, p12: 2 },
  { key: "tenant-b/x", murmur2: -1766096813, p6: 3, p12: 3 },
];

describe("the partitioner", () => {
  it("hashes as the Java client's murmur2, byte for byte (UTF-8 keys, every tail length)", () => {
    for (const v of JAVA) assert.equal(murmur2(Buffer.from(v.key, "utf8")), v.murmur2, v.key);
  });

  it("puts each key on the Java client's partition", () => {
    for (const v of JAVA) {
      assert.equal(keyPartition(v.key, 6), v.p6, `${v.key} of 6`);
      assert.equal(keyPartition(v.key, 12), v.p12, `${v.key} of 12`);
      assert.equal(keyPartition(v.key, 1), 0);
    }
  });

  it("refuses a partition count that is not a positive integer", () => {
    assert.throws(() => keyPartition("k", 0), /positive integer/);
    assert.throws(() => keyPartition("k", 1.5), /positive integer/);
  });
});
