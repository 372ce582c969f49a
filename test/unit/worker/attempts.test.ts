import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../../../platform/kafka/native.js";
import { TransactionAborted } from "../../../platform/kafka/producer.js";
import { createLogger } from "../../../platform/logger.js";
import { AttemptLedger, afterFailure, failureKind, mayStart, type AttemptMarkers } from "../../../worker/attempts.js";
import type { RequestRecord } from "../../../worker/turn-scheduler.js";

const logger = createLogger("test", "silent");

const kafkaError = (code: number, message = "Broker: refused") => Object.assign(new Error(message), { code });

function record(offset: number, partition = 2): RequestRecord {
  return { topic: "chat.requests", partition, offset: String(offset), key: Buffer.from("t/c"), value: Buffer.from("{}"), headers: {} };
}

/** chat.memory's markers as a map, with every write logged. */
function markers(initial: Record<string, number> = {}) {
  const stored = new Map(Object.entries(initial));
  const writes: Array<[string, number | null]> = [];
  const port: AttemptMarkers = {
    attemptsAt: async (p, offset) => stored.get(`${p}@${offset}`) ?? 0,
    markAttempts: async (p, offset, n) => {
      writes.push([`${p}@${offset}`, n]);
      if (n === null) stored.delete(`${p}@${offset}`);
      else stored.set(`${p}@${offset}`, n);
      return true;
    },
  };
  return { port, stored, writes };
}

describe("failure kinds", () => {
  it("gives a record the broker refuses for its size up at once, counts a refused record or a bug, and not Kafka being away", () => {
    assert.equal(failureKind(kafkaError(ErrorCode.MSG_SIZE_TOO_LARGE)), "too_large");
    assert.equal(failureKind(new Error("the turn failed", { cause: kafkaError(ErrorCode.MSG_SIZE_TOO_LARGE) })), "too_large");
    assert.equal(failureKind(kafkaError(87)), "counted");
    assert.equal(failureKind(new TypeError("x is undefined")), "counted");
    assert.equal(failureKind(kafkaError(ErrorCode.MSG_TIMED_OUT)), "transient");
    assert.equal(failureKind(kafkaError(ErrorCode.ALL_BROKERS_DOWN)), "transient");
    assert.equal(failureKind(new TransactionAborted("aborted", { cause: null })), "transient");
    assert.equal(failureKind(new Error("memory restore did not finish")), "transient");
  });

  it("retries until the last attempt, and never for a record too large", () => {
    assert.equal(afterFailure("counted", 1, 3), "retry");
    assert.equal(afterFailure("counted", 2, 3), "retry");
    assert.equal(afterFailure("counted", 3, 3), "give_up");
    assert.equal(afterFailure("too_large", 1, 3), "give_up");
    assert.equal(afterFailure("transient", 50, 3), "retry");
    assert.equal(mayStart(3, 3), true);
    assert.equal(mayStart(4, 3), false);
  });
});

describe("AttemptLedger", () => {
  it("counts an earlier owner's attempts from the marker and writes its own before it runs; the marker is removed when done", async () => {
    const m = markers({ "2@10": 1 });
    const ledger = new AttemptLedger(m.port, 3, logger);
    assert.equal(await ledger.begin(record(10), true), null);
    assert.deepEqual(m.writes, [["2@10", 2]], "attempt 2 recorded before it runs");
    await ledger.done(record(10));
    assert.deepEqual(m.writes.at(-1), ["2@10", null], "a tombstone once done");
    assert.equal(m.stored.size, 0);
  });

  it("refuses a request that its earlier owners started MAX_REQUEST_ATTEMPTS times (each a crash), without running it", async () => {
    const m = markers();
    // Two owners in turn each take the record first, write their attempt and die.
    for (const expected of [1, 2]) {
      const owner = new AttemptLedger(m.port, 2, logger);
      assert.equal(await owner.begin(record(10), true), null);
      assert.equal(m.stored.get("2@10"), expected);
    }
    const third = new AttemptLedger(m.port, 2, logger);
    const refused = await third.begin(record(10), true);
    assert.equal(refused?.reason, "attempts_exhausted");
    assert.match(refused.detail, /started 2 times/);
    assert.equal(m.stored.get("2@10"), 2, "no attempt 3 recorded");
  });

  it("costs a record that is not its partition's first no marker read or write", async () => {
    const m = markers({ "2@11": 5 });
    const ledger = new AttemptLedger(m.port, 3, logger);
    assert.equal(await ledger.begin(record(11), false), null, "its marker is not read");
    await ledger.done(record(11));
    assert.deepEqual(m.writes, []);
  });

  it("gives a record up after MAX_REQUEST_ATTEMPTS counted failures in this process, but not for transient ones", async () => {
    const m = markers();
    const ledger = new AttemptLedger(m.port, 3, logger);
    const r = record(12);
    for (let i = 0; i < 5; i++) {
      assert.equal(await ledger.begin(r, false), null);
      assert.equal(ledger.failed(r, kafkaError(ErrorCode.MSG_TIMED_OUT)), null, "Kafka away: not counted");
    }
    for (let i = 1; i <= 2; i++) {
      assert.equal(await ledger.begin(r, false), null);
      assert.equal(ledger.failed(r, kafkaError(87)), null, `attempt ${i} of 3`);
    }
    assert.equal(await ledger.begin(r, false), null);
    const given = ledger.failed(r, kafkaError(87, "Broker: invalid record"));
    assert.equal(given?.reason, "attempts_exhausted");
    assert.match(given.detail, /all 3 attempts.*invalid record/);
  });

  it("keeps a first record's marker counting in-process failures, so a crash after them still counts them", async () => {
    const m = markers();
    const ledger = new AttemptLedger(m.port, 3, logger);
    const r = record(13);
    assert.equal(await ledger.begin(r, true), null);
    assert.equal(ledger.failed(r, new TypeError("boom")), null);
    assert.equal(await ledger.begin(r, false), null);
    assert.deepEqual(m.writes, [
      ["2@13", 1],
      ["2@13", 2],
    ]);
  });

  it("gives a record too large for its topic up on its first failure", async () => {
    const ledger = new AttemptLedger(markers().port, 3, logger);
    assert.equal(await ledger.begin(record(14), false), null);
    assert.equal(ledger.failed(record(14), kafkaError(ErrorCode.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"))?.reason, "record_too_large");
  });

  it("takes an attempt back when a partition move stopped it (a handover), so graceful moves are never counted", async () => {
    const m = markers({ "2@16": 1 });
    const first = new AttemptLedger(m.port, 2, logger);
    assert.equal(await first.begin(record(16), true), null);
    assert.equal(m.stored.get("2@16"), 2);
    await first.interrupted(record(16));
    assert.equal(m.stored.get("2@16"), 1, "back to what the earlier owner left");
    // Handed over at every scale event, it still runs.
    for (let move = 0; move < 3; move++) {
      const owner = new AttemptLedger(m.port, 2, logger);
      assert.equal(await owner.begin(record(16), true), null, `move ${move}`);
      await owner.interrupted(record(16));
    }
    const fresh = markers();
    const ledger = new AttemptLedger(fresh.port, 2, logger);
    await ledger.begin(record(17), true);
    await ledger.interrupted(record(17));
    assert.equal(fresh.stored.has("2@17"), false, "a first attempt taken back leaves no marker");
  });

  it("forgets a partition's counts when it is given up", async () => {
    const m = markers({ "2@15": 1 });
    const ledger = new AttemptLedger(m.port, 3, logger);
    await ledger.begin(record(15), true);
    ledger.drop(2);
    // Taken again later, as its partition's first: the marker is read again (now 2).
    await ledger.begin(record(15), true);
    assert.equal(m.stored.get("2@15"), 3);
  });
});
