import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chatEventSchema } from "../../../contracts/records/events.js";
import { chatRequestSchema } from "../../../contracts/records/requests.js";
import { controlRecordSchema } from "../../../contracts/records/control.js";
import { EXPECTED_OFFSET_HEADER, landedAsExpected } from "../../../contracts/records/memory.js";
import { decodeRecord, encodeRecord } from "../../../contracts/records/codec.js";

const valid = {
  v: 1,
  type: "turn",
  request_id: "r-1",
  conversation_id: "c-1",
  tenant: "local",
  content: "hello",
  created_at: 1_700_000_000_000,
};

function reasonFor(value: Buffer | null): string {
  const result = decodeRecord(chatRequestSchema, value);
  assert.equal(result.ok, false);
  return result.ok ? "" : result.reason;
}

describe("chat.requests records", () => {
  it("accepts a valid request and round-trips it", () => {
    const result = decodeRecord(chatRequestSchema, encodeRecord(valid));
    assert.deepEqual(result, { ok: true, value: valid });
  });

  it("rejects what is not a request, with a reason", () => {
    assert.match(reasonFor(null), /no value/);
    assert.match(reasonFor(Buffer.from([0xc3, 0x28])), /not valid UTF-8/);
    assert.match(reasonFor(Buffer.from("{nope")), /not JSON/);
    assert.match(reasonFor(encodeRecord({ ...valid, v: 2 })), /v: Invalid input: expected 1/);
    assert.match(reasonFor(encodeRecord({ ...valid, content: "" })), /content: must not be empty/);
    assert.match(reasonFor(encodeRecord({ ...valid, content: 7 })), /content: Invalid input: expected string, received number/);
    assert.match(reasonFor(encodeRecord({ ...valid, conversation_id: "a b" })), /conversation_id: may contain only/);
    assert.match(reasonFor(encodeRecord({ ...valid, surprise: true })), /Unrecognized key: "surprise"/);
    assert.match(reasonFor(encodeRecord({ ...valid, params: { temperature: 9 } })), /params.temperature: must be <= 2/);
    assert.match(reasonFor(encodeRecord({ ...valid, params: { max_tokens: 1.5 } })), /params.max_tokens: must be an integer/);
  });

  it("lists every problem of a record at once", () => {
    const reason = reasonFor(encodeRecord({ v: 1, type: "turn" }));
    for (const field of ["request_id", "conversation_id", "tenant", "content", "created_at"]) assert.match(reason, new RegExp(field));
  });
});

describe("open and delete requests", () => {
  it("are told apart by type and validated by their own fields", () => {
    const open = { ...valid, type: "open", greeting: true, content: undefined };
    assert.ok(decodeRecord(chatRequestSchema, encodeRecord(open)).ok);
    assert.match(reasonFor(encodeRecord({ ...open, greeting: "yes" })), /greeting: Invalid input: expected boolean/);
    const del = { v: 1, type: "delete", request_id: "r", conversation_id: "c", tenant: "t", created_at: 1 };
    assert.ok(decodeRecord(chatRequestSchema, encodeRecord(del)).ok);
    assert.match(reasonFor(encodeRecord({ ...del, type: "rename" })), /Invalid discriminator value/);
  });
});

describe("chat.events and chat.control records", () => {
  it("validates each event type by its own fields", () => {
    const base = { v: 1, request_id: "r", conversation_id: "c", tenant: "t", attempt: "a", seq: 0, at: 1 };
    assert.ok(chatEventSchema.safeParse({ ...base, type: "start", worker_id: "w" }).success);
    assert.ok(chatEventSchema.safeParse({ ...base, type: "delta", text: "hi" }).success);
    assert.equal(chatEventSchema.safeParse({ ...base, type: "delta", text: "" }).success, false, "empty deltas are invalid");
    assert.equal(chatEventSchema.safeParse({ ...base, type: "final", reply: "x" }).success, false, "final needs usage and timings");
    assert.equal(chatEventSchema.safeParse({ ...base, seq: -1, type: "start", worker_id: "w" }).success, false);
    assert.equal(chatEventSchema.safeParse({ ...base, type: "mystery" }).success, false);
    assert.equal(chatEventSchema.safeParse({ ...base, attempt: undefined, type: "delta", text: "x" }).success, false, "attempt is required");
  });

  it("accepts a cancel and rejects one without a request id", () => {
    assert.ok(controlRecordSchema.safeParse({ v: 1, type: "cancel", request_id: "r", tenant: "t", at: 1 }).success);
    assert.equal(controlRecordSchema.safeParse({ v: 1, type: "cancel", tenant: "t", at: 1 }).success, false);
  });
});

describe("chat.memory records: where each must land", () => {
  it("counts a record that landed where its writer expected, or that says nothing, and no other", () => {
    assert.equal(landedAsExpected({ offset: 7, headers: { [EXPECTED_OFFSET_HEADER]: "7" } }), true);
    assert.equal(landedAsExpected({ offset: 7, headers: { [EXPECTED_OFFSET_HEADER]: Buffer.from("7") } }), true, "as librdkafka delivers it");
    assert.equal(landedAsExpected({ offset: 8, headers: { [EXPECTED_OFFSET_HEADER]: "7" } }), false, "another writer took offset 7 first");
    assert.equal(landedAsExpected({ offset: 8, headers: {} }), true, "restore fences and other writers' records say nothing");
    assert.equal(landedAsExpected({ offset: 8 }), true);
  });
});
