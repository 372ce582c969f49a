/** Which messages a history read returns (gateway/history/read-plan.ts), and its cursors. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeCursor, encodeCursor, readRange } from "../../../gateway/history/read-plan.js";
import { ApiError } from "../../../gateway/errors.js";

describe("history read plan", () => {
  it("takes a limit from either end, after or before a cursor, inside the window", () => {
    assert.deepEqual(readRange({ from: "latest" }, 3, 0, 9), { lo: 7, hi: 9, hasMoreBefore: true, hasMoreAfter: false });
    assert.deepEqual(readRange({ from: "beginning" }, 3, 0, 9), { lo: 0, hi: 2, hasMoreBefore: false, hasMoreAfter: true });
    assert.deepEqual(readRange({ after: 4 }, 3, 0, 9), { lo: 5, hi: 7, hasMoreBefore: true, hasMoreAfter: true });
    assert.deepEqual(readRange({ before: 2 }, 5, 0, 9), { lo: 0, hi: 1, hasMoreBefore: false, hasMoreAfter: true });
    assert.deepEqual(readRange({ from: "latest" }, 50, 3, 6), { lo: 3, hi: 6, hasMoreBefore: false, hasMoreAfter: false });
    assert.deepEqual(readRange({ from: "beginning" }, 2, 3, 6), { lo: 3, hi: 4, hasMoreBefore: false, hasMoreAfter: true });
  });

  it("is empty past the end, with what lies before it", () => {
    const end = readRange({ after: 9 }, 3, 0, 9);
    assert.ok(end.lo > end.hi);
    assert.equal(end.hasMoreBefore, true);
    assert.equal(end.hasMoreAfter, false);
    const noWindow = readRange({ from: "latest" }, 3, 10, 9);
    assert.ok(noWindow.lo > noWindow.hi);
    assert.equal(noWindow.hasMoreBefore || noWindow.hasMoreAfter, false);
  });

  it("round-trips a cursor of its chain and rejects anything else with what to do", () => {
    const c = encodeCursor("a1b2", 41);
    assert.equal(decodeCursor(c, "after", "a1b2"), 41);
    assert.throws(
      () => decodeCursor("%%%", "after", "a1b2"),
      (e: unknown) => e instanceof ApiError && /after: not a cursor/.test(e.message),
    );
    assert.throws(() => decodeCursor(Buffer.from("a1b2:x").toString("base64url"), "before", "a1b2"), /before: not a cursor/);
    assert.throws(() => decodeCursor(c, "after", "ffff"), /earlier conversation with this id/);
  });
});
