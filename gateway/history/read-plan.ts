/**
 * Which messages a history read returns, as pure functions: the index range from where the
 * read starts (an end, a cursor, a reader's position), its limit and its time window; and
 * the opaque cursors that name a message of one chain.
 */
import { ApiError } from "../errors.js";

/** Where a read starts: an end, or just after / before a message index. */
export type ReadStart = { from: "beginning" } | { from: "latest" } | { after: number } | { before: number };

/** The messages a read returns (lo..hi, inclusive; empty when lo > hi), and what lies beyond. */
export interface ReadRange {
  lo: number;
  hi: number;
  hasMoreBefore: boolean;
  hasMoreAfter: boolean;
}

/**
 * The range of a read of at most `limit` messages starting at `start`, within the window
 * windowLo..windowHi (the indexes inside since/until; the whole conversation without them).
 */
export function readRange(start: ReadStart, limit: number, windowLo: number, windowHi: number): ReadRange {
  let lo: number;
  let hi: number;
  if ("after" in start) {
    lo = Math.max(windowLo, start.after + 1);
    hi = Math.min(windowHi, lo + limit - 1);
  } else if ("before" in start) {
    hi = Math.min(windowHi, start.before - 1);
    lo = Math.max(windowLo, hi - limit + 1);
  } else if (start.from === "beginning") {
    lo = windowLo;
    hi = Math.min(windowHi, lo + limit - 1);
  } else {
    hi = windowHi;
    lo = Math.max(windowLo, hi - limit + 1);
  }
  const empty = lo > hi;
  return {
    lo,
    hi,
    hasMoreBefore: windowLo <= windowHi && (empty ? Math.min(lo, hi + 1) : lo) > windowLo,
    hasMoreAfter: windowLo <= windowHi && (empty ? Math.max(hi, lo - 1) : hi) < windowHi,
  };
}

/** A cursor: the chain's epoch and a message index, base64url so clients treat it as opaque. */
export function encodeCursor(epoch: string, index: number): string {
  return Buffer.from(`${epoch}:${index}`, "utf8").toString("base64url");
}

/** The message index a cursor names; a 400 that says what to do when it is not one of ours or from an earlier chain. */
export function decodeCursor(cursor: string, param: string, epoch: string | undefined): number {
  const text = /^[A-Za-z0-9_-]{1,64}$/.test(cursor) ? Buffer.from(cursor, "base64url").toString("utf8") : "";
  const m = /^([0-9a-f]{1,32}):(\d{1,15})$/.exec(text);
  if (!m) throw new ApiError("invalid_request", `query ${param}: not a cursor; pass first_cursor or last_cursor of a previous read unchanged`);
  if (m[1] !== epoch)
    throw new ApiError(
      "invalid_request",
      `query ${param}: the cursor belongs to an earlier conversation with this id (deleted since); read again with from=beginning or from=latest`,
    );
  return Number(m[2]);
}
