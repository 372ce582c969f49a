/** The chaos run's poison tally: each poison record's dead letter and each named one's error event, found on the topics. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DLQ_HEADERS } from "../../../contracts/records/dead-letter.js";
import type { LoggedRecord } from "../../../chaos/kafka-log.js";
import { poisonPositions, tallyPoison, type PoisonRecord } from "../../../chaos/poison.js";

const T0 = 1_800_000_000_000;

function poison(kind: PoisonRecord["kind"], requestId: string | null, partition: number, offset: number, followedCode?: string): PoisonRecord {
  return {
    kind,
    requestId,
    at: T0,
    partition,
    offset,
    ...(kind === "misplaced" && { followed: followedCode ? { type: "error", code: followedCode } : { failed: "HTTP 404" } }),
  };
}

function errorEvent(requestId: string, code: string, delayMs: number): LoggedRecord {
  const value = {
    v: 1,
    type: "error",
    request_id: requestId,
    conversation_id: "p",
    tenant: "chaos",
    attempt: "w1.x",
    seq: 0,
    at: T0 + delayMs,
    code,
    message: "m",
    retryable: false,
  };
  return { topic: "chat.events", partition: 0, offset: 0n, key: "chaos/p", value: Buffer.from(JSON.stringify(value)), headers: {}, timestamp: T0 + delayMs };
}

function deadLetter(partition: number, offset: number): LoggedRecord {
  return {
    topic: "chat.requests.dlq",
    partition: 0,
    offset: 0n,
    key: null,
    value: Buffer.from("x"),
    headers: { [DLQ_HEADERS.partition]: String(partition), [DLQ_HEADERS.offset]: String(offset) },
    timestamp: T0,
  };
}

const sent = [poison("bad_field", "r1", 0, 5), poison("misplaced", "r2", 1, 7, "request_dead_lettered"), poison("not_json", null, 2, 9)];

describe("chaos poison tally", () => {
  it("passes when every poison record is dead-lettered and every named one ended with request_dead_lettered", () => {
    const t = tallyPoison(
      sent,
      [errorEvent("r1", "request_dead_lettered", 300), errorEvent("r2", "request_dead_lettered", 900)],
      [deadLetter(0, 5), deadLetter(1, 7), deadLetter(2, 9)],
    );
    assert.deepEqual(
      { sent: t.sent, named: t.named, ended: t.endedWithError, dead: t.deadLettered, followed: t.followedToError, longest: t.longestEndMs, ok: t.ok },
      { sent: 3, named: 2, ended: 2, dead: 3, followed: 1, longest: 900, ok: true },
    );
    assert.deepEqual(t.problems, []);
  });

  it("fails a named request with no error event, one ended with another code, one missing from the dead letters, and a client not told", () => {
    const unfollowed = [sent[0]!, poison("misplaced", "r2", 1, 7), sent[2]!];
    const t = tallyPoison(unfollowed, [errorEvent("r2", "generation_failed", 100)], [deadLetter(0, 5), deadLetter(1, 7)]);
    assert.equal(t.ok, false);
    assert.equal(t.endedWithError, 0);
    assert.equal(t.deadLettered, 2);
    assert.equal(t.followedToError, 0);
    assert.deepEqual(t.problems, [
      "poison (bad_field) at 0@5: request r1 has no error event",
      "poison (misplaced) at 1@7: request r2 ended with generation_failed",
      "poison (not_json) at 2@9: not on the dead letter topic",
      'poison (misplaced) request r2: its client at a gateway got {"failed":"HTTP 404"}',
    ]);
  });

  it("leaves a record that could not be written out of the counts, and names where the written ones are", () => {
    const unwritten: PoisonRecord = { kind: "bad_field", requestId: "r9", at: T0, partition: null, offset: null, writeError: "broker away" };
    const t = tallyPoison([unwritten, sent[2]!], [], [deadLetter(2, 9)]);
    assert.equal(t.sent, 1);
    assert.equal(t.named, 0);
    assert.ok(t.ok);
    assert.deepEqual(t.problems, ["note: poison (bad_field) not written: broker away"]);
    assert.deepEqual([...poisonPositions([unwritten, ...sent])], ["0@5", "1@7", "2@9"]);
  });
});
