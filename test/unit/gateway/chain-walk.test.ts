/**
 * A history read's walk (gateway/history/chain-walk.ts) over a partition held in an array:
 * records written by the worker's own HistoryWriter, interleaved with other conversations'
 * and with a record a worker wrote before dying (never linked from a memory record). The
 * walk finds messages by index and time, returns each once and in order, and its fetches
 * grow with what it returns, not with the partition.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeRecord } from "../../../contracts/records/codec.js";
import type { ConversationState } from "../../../contracts/records/memory.js";
import type { HistoryMessage } from "../../../contracts/records/history.js";
import { ChainWalk } from "../../../gateway/history/chain-walk.js";
import type { FetchedRecord, OffsetFetcher } from "../../../platform/kafka/offset-reader.js";
import { newConversation } from "../../../worker/conversation.js";
import type { RecordSink } from "../../../worker/event-writer.js";
import { HistoryWriter } from "../../../worker/history-writer.js";

/** One partition: every record sent lands at the next offset. */
function partition() {
  const log: Array<{ key: Buffer | null; value: Buffer | null }> = [];
  const sink: RecordSink = {
    send: async (r) => {
      const base = log.length;
      for (const m of r.messages) log.push({ key: Buffer.from(String(m.key)), value: m.value as Buffer });
      return r.messages.map((_, i) => ({ partition: 0, offset: base + i }));
    },
  };
  let fetches = 0;
  const fetcher: OffsetFetcher = {
    fetch: async (p, offset): Promise<FetchedRecord | null> => {
      fetches++;
      const r = p === 0 ? log[offset] : undefined;
      return r ? { offset, ...r } : null;
    },
    scan: async () => assert.fail("a chain walk reads records at their offsets, never scans"),
    watermarks: async () => ({ low: 0, high: log.length }),
  };
  return { log, sink, fetcher, fetches: () => fetches };
}

/** A conversation of `turns` turns (two messages each, turn t at time 1000 * t), `noise` other records before each. */
async function grow(turns: number, noise: number) {
  const p = partition();
  const writer = new HistoryWriter(p.sink, "h");
  let state: ConversationState = newConversation("c", "t", 0);
  const messages: HistoryMessage[] = [];
  for (let t = 0; t < turns; t++) {
    for (let i = 0; i < noise; i++)
      await p.sink.send({ topic: "h", messages: [{ key: `other-${i}`, value: encodeRecord({ v: 1, type: "history", noise: i }) }] });
    const added: HistoryMessage[] = [
      { role: "user", content: `q${t}` },
      { role: "assistant", content: `a${t}` },
    ];
    if (t === 3) {
      // A worker died after this write and before its memory record: the re-run writes again.
      await writer.append(state, [{ role: "user", content: "orphan" }], `r${t}`, 1000 * t);
    }
    state = await writer.append(state, added, `r${t}`, 1000 * t);
    messages.push(...added);
  }
  return { ...p, head: state.history!, messages };
}

describe("history chain walk", () => {
  it("reads any range once, in order, never an orphaned record", async () => {
    const { fetcher, head, messages } = await grow(40, 3);
    assert.equal(head.messages, 80);
    for (const [lo, hi] of [
      [0, 79],
      [0, 0],
      [79, 79],
      [7, 8],
      [31, 64],
    ] as const) {
      const got = await new ChainWalk(fetcher, { tenant: "t", conversation_id: "c" }, head).messages(lo, hi);
      assert.deepEqual(
        got.map((m) => [m.index, m.content]),
        messages.slice(lo, hi + 1).map((m, i) => [lo + i, m.content]),
        `${lo}..${hi}`,
      );
    }
  });

  it("costs fetches for what it returns plus O(log n), whatever else the partition holds", async () => {
    const crowded = await grow(128, 50);
    const alone = await grow(128, 0);
    const cost = async (g: typeof crowded, lo: number, hi: number) => {
      const walk = new ChainWalk(g.fetcher, { tenant: "t", conversation_id: "c" }, g.head);
      await walk.messages(lo, hi);
      return walk.hops;
    };
    assert.equal(await cost(crowded, 206, 255), await cost(alone, 206, 255), "the other conversations cost nothing");
    assert.ok((await cost(crowded, 206, 255)) <= 25 + 2, "the last 50 messages: 25 records, the head's record found at once");
    assert.ok((await cost(crowded, 0, 9)) <= 5 + 2 * 8, "the first 10: 5 records plus the search");
  });

  it("finds messages by time", async () => {
    const { fetcher, head } = await grow(20, 2);
    const walk = new ChainWalk(fetcher, { tenant: "t", conversation_id: "c" }, head);
    assert.equal(await walk.firstIndexSince(5000), 10, "turn 5 starts at message 10");
    assert.equal(await walk.firstIndexSince(5001), 12);
    assert.equal(await walk.firstIndexSince(0), 0);
    assert.equal(await walk.firstIndexSince(99_999), 40, "none: past the end");
    assert.equal(await walk.lastIndexUntil(5000), 11);
    assert.equal(await walk.lastIndexUntil(4999), 9);
    assert.equal(await walk.lastIndexUntil(-1), -1, "none");
  });

  it("stops at a record that aged out, returning the newer messages", async () => {
    const { fetcher, head, log } = await grow(10, 1);
    // Retention removed the oldest records: their offsets answer nothing.
    const firstKept = log.findIndex((r, i) => i > 8 && r.key?.toString() === "t/c");
    for (let i = 0; i < firstKept; i++) log[i] = { key: null, value: null };
    const got = await new ChainWalk(fetcher, { tenant: "t", conversation_id: "c" }, head).messages(0, 19);
    assert.ok(got.length > 0 && got.length < 20);
    assert.deepEqual(
      got.map((m) => m.index),
      Array.from({ length: got.length }, (_, i) => 20 - got.length + i),
    );
  });
});
