/**
 * The state-scale bench's generator writes records every version of the code reads (valid
 * ConversationStates of the working tree's schema, of a realistic size, in batches the
 * broker accepts), and its tally gives each record's bytes to the turn that wrote it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { conversationStateSchema } from "../../../contracts/records/memory.js";
import { decodeRecord } from "../../../contracts/records/codec.js";
import { TurnTally, generatedId, generatedState } from "../../../bench/lib/state-records.js";

describe("state-scale generator", () => {
  it("writes valid conversation states of 500 to 1,000 bytes, tenant local, three turns", () => {
    const value = Buffer.from(generatedState(generatedId(42), 1_700_000_000_000));
    const decoded = decodeRecord(conversationStateSchema, value);
    assert.ok(decoded.ok, JSON.stringify(decoded));
    assert.equal(decoded.value.conversation_id, "state-0000042");
    assert.equal(decoded.value.tenant, "local");
    assert.equal(decoded.value.turns, 3);
    assert.equal(decoded.value.messages.length, 6);
    assert.ok(value.length >= 500 && value.length <= 1000, `${value.length} B`);
  });

  it("keeps a batch of 1,000 records to one partition under the broker's 1 MB default", () => {
    const bytes = Array.from({ length: 1000 }, (_, i) => Buffer.byteLength(generatedState(generatedId(9_999_000 + i), Date.now()))).reduce((a, b) => a + b);
    assert.ok(bytes + 1000 * 40 < 1_000_000, `${bytes} B`);
  });

  it("gives ids that sort in the order they were written", () => {
    assert.ok(generatedId(9) < generatedId(10) && generatedId(999_999) < generatedId(1_000_000));
  });
});

describe("TurnTally", () => {
  it("adds each memory state's bytes to its `turns`, several records of a turn together", () => {
    const tally = new TurnTally("turns");
    const one = Buffer.from(JSON.stringify({ turns: 1, pad: "x" }));
    const two = Buffer.from(JSON.stringify({ turns: 2, pad: "xxxxx" }));
    tally.add(one);
    tally.add(two);
    tally.add(two);
    assert.deepEqual(tally.at(1), { bytes: one.length, records: 1 });
    assert.deepEqual(tally.at(2), { bytes: 2 * two.length, records: 2 });
    assert.deepEqual(tally.at(3), { bytes: 0, records: 0 });
  });

  it("counts history records by seq + 1, and records without the field as the next turn", () => {
    const tally = new TurnTally("seq");
    tally.add(Buffer.from(JSON.stringify({ seq: 0 })));
    tally.add(Buffer.from("not json"));
    tally.add(Buffer.from(JSON.stringify({ seq: 2 })));
    assert.equal(tally.at(1).records, 1);
    assert.deepEqual(tally.at(2), { bytes: 8, records: 1 });
    assert.equal(tally.at(3).records, 1);
  });
});
