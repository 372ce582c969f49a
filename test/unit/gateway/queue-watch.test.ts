/** The queued notice from one view of the worker group (gateway/kafka/queue-watch.ts). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatQueued, queuedNotice, type GroupView } from "../../../gateway/kafka/queue-watch.js";

const view = (over: Partial<GroupView> = {}): GroupView => ({
  committed: new Map([[0, 10n]]),
  low: new Map([
    [0, 0n],
    [1, 4n],
  ]),
  owned: new Set([0]),
  members: 1,
  ...over,
});

describe("queuedNotice", () => {
  it("counts the requests between the group's committed offset and this one", () => {
    const n = queuedNotice("r1", { partition: 0, offset: 13n }, view(), 1000);
    assert.deepEqual(n, { type: "queued", request_id: "r1", partition: 0, ahead: 3, worker_assigned: true, workers: 1, at: 1000 });
  });
  it("counts from the low watermark on a partition the group never committed (a new group starts there)", () => {
    const n = queuedNotice("r2", { partition: 1, offset: 6n }, view(), 0);
    assert.equal(n.ahead, 2);
    assert.equal(n.worker_assigned, false, "nobody owns partition 1");
  });
  it("is 0 ahead, never negative, for a request at or behind the committed offset (being processed)", () => {
    assert.equal(queuedNotice("r", { partition: 0, offset: 10n }, view(), 0).ahead, 0);
    assert.equal(queuedNotice("r", { partition: 0, offset: 5n }, view(), 0).ahead, 0);
  });
  it("says no worker owns the partition while the group is empty", () => {
    const n = queuedNotice("r", { partition: 0, offset: 12n }, view({ owned: new Set(), members: 0 }), 0);
    assert.equal(n.worker_assigned, false);
    assert.equal(n.workers, 0);
  });
  it("is an SSE message named queued without an id (not part of the resumable event sequence)", () => {
    const text = formatQueued(queuedNotice("r", { partition: 0, offset: 12n }, view(), 5));
    assert.match(text, /^event: queued\ndata: \{.*"type":"queued".*\}\n\n$/);
    assert.doesNotMatch(text, /^id:/m);
  });
});
