/** When a memory partition restores warm from the state store's checkpoint, and when cold (worker/restore-plan.ts). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MEMORY_DELETE_RETENTION_MS } from "../../../contracts/topics.js";
import { planRestore } from "../../../worker/restore-plan.js";

const now = 1_800_000_000_000;
const base = { logStart: 100n, logEnd: 5000n, deleteRetentionMs: MEMORY_DELETE_RETENTION_MS, now };

describe("planRestore", () => {
  it("restores warm from a checkpoint within the log and younger than delete.retention.ms", () => {
    assert.deepEqual(planRestore({ ...base, checkpoint: { next_offset: 4000n, written_at: now - 60_000 } }), { kind: "warm", from: 4000n });
  });

  it("restores warm at the log's ends: nothing new (checkpoint = end), or nothing deleted yet (checkpoint = start)", () => {
    assert.deepEqual(planRestore({ ...base, checkpoint: { next_offset: 5000n, written_at: now } }), { kind: "warm", from: 5000n });
    assert.deepEqual(planRestore({ ...base, checkpoint: { next_offset: 100n, written_at: now } }), { kind: "warm", from: 100n });
  });

  it("restores cold, from the log start, without a checkpoint", () => {
    const plan = planRestore({ ...base, checkpoint: undefined });
    assert.equal(plan.kind, "cold");
    assert.equal(plan.from, 100n);
  });

  it("restores cold when records the store lacks were deleted (checkpoint below the log start)", () => {
    const plan = planRestore({ ...base, checkpoint: { next_offset: 99n, written_at: now } });
    assert.equal(plan.kind, "cold");
    assert.match(plan.kind === "cold" ? plan.reason : "", /below the log start 100/);
  });

  it("restores cold when the checkpoint is past the log end (the topic was recreated)", () => {
    const plan = planRestore({ ...base, checkpoint: { next_offset: 5001n, written_at: now } });
    assert.equal(plan.kind, "cold");
    assert.match(plan.kind === "cold" ? plan.reason : "", /past the log end/);
  });

  it("restores cold when the checkpoint is older than delete.retention.ms (a tombstone may have been compacted away)", () => {
    const stale = planRestore({ ...base, checkpoint: { next_offset: 4000n, written_at: now - MEMORY_DELETE_RETENTION_MS - 1 } });
    assert.equal(stale.kind, "cold");
    assert.match(stale.kind === "cold" ? stale.reason : "", /delete\.retention\.ms/);
    const edge = planRestore({ ...base, checkpoint: { next_offset: 4000n, written_at: now - MEMORY_DELETE_RETENTION_MS } });
    assert.equal(edge.kind, "warm", "exactly at the retention is still within it");
    const shortRetention = planRestore({ ...base, deleteRetentionMs: 1000, checkpoint: { next_offset: 4000n, written_at: now - 2000 } });
    assert.equal(shortRetention.kind, "cold", "the topic's own delete.retention.ms rules");
  });
});
