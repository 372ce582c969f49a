/** The worker's LMDB state store (worker/state-store.ts) on a real LMDB environment in a temp dir. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { createLogger } from "../../../platform/logger.js";
import { StateStore } from "../../../worker/state-store.js";

const logger = createLogger("test", "fatal");
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "state-store-unit-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("StateStore", () => {
  it("reads its own writes before they commit, and keeps records and checkpoints across a reopen", async () => {
    const dir = tempDir();
    const store = StateStore.open({ dir, topic: "t.memory", partitions: 2, logger });
    assert.equal(store.fellBack, false);
    const written = store.write(1, [
      { kind: "conversation", id: "c1", value: Buffer.from("one"), writtenAt: 1000 },
      { kind: "handover", id: "r1", value: Buffer.from("h"), writtenAt: 1000 },
    ]);
    assert.equal(store.get(1, "conversation", "c1")?.bytes.toString(), "one", "visible before the commit");
    assert.ok(store.has(1, "handover", "r1"));
    assert.equal(store.get(0, "conversation", "c1"), undefined, "partitions are apart");
    const checkpointed = store.setCheckpoint(1, 42n, 5000);
    await Promise.all([written, checkpointed]);
    void store.write(1, [{ kind: "handover", id: "r1", value: null, writtenAt: 2000 }]);
    assert.equal(store.has(1, "handover", "r1"), false, "a removal is visible at once too");
    await store.close();

    const again = StateStore.open({ dir, topic: "t.memory", partitions: 2, logger });
    assert.deepEqual(again.checkpoint(1), { next_offset: 42n, written_at: 5000 });
    assert.equal(again.checkpoint(0), undefined);
    assert.deepEqual(
      { bytes: again.get(1, "conversation", "c1")?.bytes.toString(), at: again.get(1, "conversation", "c1")?.writtenAt },
      { bytes: "one", at: 1000 },
    );
    assert.equal(again.has(1, "handover", "r1"), false);
    assert.equal(again.count(1), 1);
    await again.clearPartition(1);
    assert.equal(again.checkpoint(1), undefined);
    assert.equal(again.count(1), 0);
    await again.close();
  });

  it("sweeps records written before a cutoff, and bulk-writes a restore's batch in one transaction", async () => {
    const store = StateStore.open({ dir: tempDir(), topic: "t.memory", partitions: 1, logger });
    await store.writeBulk(0, [
      { kind: "conversation", id: "old", value: Buffer.from("o"), writtenAt: 100 },
      { kind: "conversation", id: "new", value: Buffer.from("n"), writtenAt: 900 },
      { kind: "conversation", id: "gone", value: Buffer.from("g"), writtenAt: 900 },
      { kind: "conversation", id: "gone", value: null, writtenAt: 950 },
    ]);
    assert.equal(store.count(0), 2);
    assert.equal(await store.sweep(0, 500), 1);
    assert.equal(store.get(0, "conversation", "old"), undefined);
    assert.equal(store.get(0, "conversation", "new")?.bytes.toString(), "n");
    await store.close();
  });

  it("replaces an environment file that is not LMDB (LMDB would crash mapping it) and starts empty", async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "t.memory.lmdb"), Buffer.alloc(64 * 1024, 0x5a));
    const store = StateStore.open({ dir, topic: "t.memory", partitions: 1, logger });
    assert.equal(store.fellBack, true);
    assert.equal(store.checkpoint(0), undefined);
    await store.write(0, [{ kind: "conversation", id: "c", value: Buffer.from("x"), writtenAt: 1 }]);
    assert.equal(store.get(0, "conversation", "c")?.bytes.toString(), "x");
    await store.close();
  });
});
