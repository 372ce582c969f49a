import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeRecord, type ConversationState } from "../../../contracts/records.js";
import { ConversationBytes } from "../../../gateway/kafka/memory-view.js";

const state = (id: string, content = "hi"): ConversationState => ({
  v: 1,
  type: "conversation",
  conversation_id: id,
  tenant: "t",
  messages: [{ role: "user", content, at: 1 }],
  applied: [],
  turns: 1,
  created_at: 1,
  updated_at: 1,
});

describe("memory view store", () => {
  it("keeps the latest state per conversation and forgets it on a tombstone", () => {
    const store = new ConversationBytes(1 << 20);
    store.put("a", encodeRecord(state("a", "one")));
    store.put("a", encodeRecord(state("a", "two")));
    assert.equal(store.get("a")?.messages[0]?.content, "two");
    assert.equal(store.size, 1);
    store.put("a", null);
    assert.equal(store.get("a"), undefined);
    assert.equal(store.bytes, 0);
  });

  it("answers undefined for a value it cannot read instead of failing", () => {
    const store = new ConversationBytes(1 << 20);
    store.put("x", Buffer.from("not json"));
    assert.equal(store.get("x"), undefined);
  });

  it("stays within its byte budget by dropping the conversations written longest ago", () => {
    const one = encodeRecord(state("a")).length;
    const store = new ConversationBytes(one * 2 + 1);
    store.put("a", encodeRecord(state("a")));
    store.put("b", encodeRecord(state("b")));
    store.put("a", encodeRecord(state("a"))); // a written again: b is now the oldest
    store.put("c", encodeRecord(state("c")));
    assert.equal(store.get("b"), undefined);
    assert.ok(store.get("a") && store.get("c"));
    assert.equal(store.evicted, 1);
    assert.ok(store.bytes <= one * 2 + 1);
  });
});
