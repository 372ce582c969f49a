/**
 * The worker's disk-backed state store (worker/state-store.ts behind worker/memory-store.ts)
 * against the real broker: a cold restore, a warm one that reads only what changed since the
 * checkpoint, the fall-backs to cold (records deleted below the checkpoint, an unusable
 * directory), RAM bounded by the decoded cache, and conversations past the TTL not served.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { conversationStateSchema, landedAsExpected, type ConversationState } from "../../contracts/records/memory.js";
import { decodeRecord, encodeRecord } from "../../contracts/records/codec.js";
import { topicNames, topicSpecs } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { ensureTopics } from "../../platform/topic-admin.js";
import { MemoryStore } from "../../worker/memory-store.js";
import type { RestoreKind } from "../../worker/memory/restore.js";
import { useKafka, uniquePrefix, readTopic, type TestKafka, kafkaConfigFor } from "../helpers/kafka.js";

const PARTITIONS = 2;
const TTL_MS = 7 * 24 * 3_600_000;
const logger = createLogger("test", "fatal");

function state(id: string, note: string, at = Date.now()): ConversationState {
  return conversationStateSchema.parse({
    v: SCHEMA_VERSION,
    type: "conversation",
    conversation_id: id,
    tenant: "t1",
    messages: [{ role: "user", content: note, request_id: `r-${id}`, at }],
    applied: [],
    turns: 1,
    created_at: at,
    updated_at: at,
  });
}

describe("worker state store", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let kafkaConfig: KafkaConfig;
  let admin: KafkaAdmin;
  let producer: KafkaProducer;
  const dirs: string[] = [];

  before(async () => {
    kafka = await useKafka();
    // The store as a test drives it, logged in as the administrator (it makes its own topics).
    kafkaConfig = { ...kafkaConfigFor(kafka), clientId: "state-store-test" };
    admin = new KafkaAdmin(kafkaConfig, { timeoutMs: 10_000 });
    producer = await KafkaProducer.connect(kafkaConfig, { logger });
  });

  after(async () => {
    await producer?.disconnect();
    admin?.close();
    await kafka?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A memory topic of its own, with `n` conversations in each partition. */
  async function memoryTopic(n: number, at = Date.now()): Promise<{ topic: string; ids: string[][] }> {
    const names = topicNames(uniquePrefix("state"));
    await ensureTopics(
      admin,
      topicSpecs(names, {
        requestPartitions: PARTITIONS,
        eventPartitions: PARTITIONS,
        replicationFactor: 1,
        conversationTtlMs: TTL_MS,
        history: { retentionMs: TTL_MS, partitions: PARTITIONS, replicationFactor: 1 },
      }),
      logger,
    );
    const ids: string[][] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      ids.push(Array.from({ length: n }, (_, i) => `c-${p}-${i}`));
      for (let i = 0; i < n; i += 500) {
        const messages = ids[p]!.slice(i, i + 500).map((id) => ({ partition: p, key: id, value: encodeRecord(state(id, "first", at)), timestamp: at }));
        await producer.send({ topic: names.memory, messages });
      }
    }
    return { topic: names.memory, ids };
  }

  function newStore(topic: string, dir: string, options: { cacheEntries?: number; onConversations?: (n: number) => void } = {}) {
    const { onConversations = () => {}, ...rest } = options;
    const restores: Array<{ kind: RestoreKind; seconds: number }> = [];
    const store = new MemoryStore({
      kafka: kafkaConfig,
      admin,
      producer,
      topic,
      groupPrefix: uniquePrefix("state-reader"),
      logger,
      metrics: { restoreSeconds: { observe: ({ kind }, seconds) => restores.push({ kind, seconds }) }, conversations: { set: onConversations } },
      stateDir: dir,
      conversationTtlMs: TTL_MS,
      partitions: PARTITIONS,
      ...rest,
    });
    return { store, restores };
  }

  function tempDir(): string {
    const d = mkdtempSync(path.join(os.tmpdir(), "state-store-test-"));
    dirs.push(d);
    return d;
  }

  /** Partition p of the topic as the log has it, read from the beginning. */
  async function logState(topic: string, p: number): Promise<Map<string, ConversationState>> {
    const out = new Map<string, ConversationState>();
    for (const record of await readTopic(kafkaConfig, topic, { partitions: [p] })) {
      const key = record.key!.toString();
      if (key.startsWith("#") || !landedAsExpected(record)) continue;
      if (record.value === null) out.delete(key);
      else {
        const decoded = decodeRecord(conversationStateSchema, record.value);
        assert.ok(decoded.ok);
        out.set(key, decoded.value);
      }
    }
    return out;
  }

  it("restores cold into the store, then warm after 1% changed elsewhere: reads only what changed, and ends with the log's state", async () => {
    const n = 1000;
    const { topic, ids } = await memoryTopic(n);
    const dir = tempDir();

    const first = newStore(topic, dir, { cacheEntries: 50 });
    await first.store.start();
    first.store.assign([0, 1]);
    await Promise.all([first.store.ready(0), first.store.ready(1)]);
    const cold = first.store.lastRestore(0)!;
    assert.equal(cold.kind, "cold");
    assert.equal(cold.reason, "no checkpoint in the state store");
    assert.equal(cold.records, n, "a cold restore reads every record of the partition");
    assert.deepEqual(first.store.get(0, "c-0-7")?.messages[0]?.content, "first");
    assert.deepEqual(
      first.restores.map((r) => r.kind),
      ["cold", "cold"],
    );
    // Its own write moves the checkpoint with it.
    assert.ok(await first.store.writeIfOwner(0, "c-0-1", state("c-0-1", "own write")));
    // A delete is read back at once, before the store's transaction has committed.
    assert.ok(first.store.get(0, "c-0-2"));
    assert.ok(await first.store.writeIfOwner(0, "c-0-2", null));
    assert.equal(first.store.get(0, "c-0-2"), undefined, "a deleted conversation is gone the moment its tombstone is written");

    // Partition 0 is revoked; another writer (the partition's next owner) changes 1% of it
    // and deletes one conversation.
    first.store.assign([1]);
    assert.equal(first.store.get(0, "c-0-7"), undefined, "a revoked partition is not served");
    const changed = ids[0]!.slice(100, 100 + n / 100);
    await producer.send({
      topic,
      messages: [...changed.map((id) => ({ partition: 0, key: id, value: encodeRecord(state(id, "changed")) })), { partition: 0, key: "c-0-3", value: null }],
    });

    first.store.assign([0, 1]);
    await first.store.ready(0);
    const warm = first.store.lastRestore(0)!;
    assert.equal(warm.kind, "warm");
    assert.equal(warm.records, changed.length + 1, "a warm restore reads only the records written after its checkpoint");
    const log = await logState(topic, 0);
    for (const id of ids[0]!) assert.deepEqual(first.store.get(0, id), log.get(id), `conversation ${id} as the log has it`);
    assert.equal(first.store.get(0, "c-0-3"), undefined, "the tombstone was applied");
    assert.equal(first.store.get(0, "c-0-1")?.messages[0]?.content, "own write");
    await first.store.stop();

    // A new process on the same directory (a restarted pod on its emptyDir) restores warm too.
    await producer.send({ topic, messages: [{ partition: 1, key: "c-1-5", value: encodeRecord(state("c-1-5", "while stopped")) }] });
    const second = newStore(topic, dir);
    await second.store.start();
    second.store.assign([0, 1]);
    await Promise.all([second.store.ready(0), second.store.ready(1)]);
    assert.deepEqual(
      [second.store.lastRestore(0)!.kind, second.store.lastRestore(0)!.records, second.store.lastRestore(1)!.kind, second.store.lastRestore(1)!.records],
      ["warm", 0, "warm", 1],
    );
    assert.equal(second.store.get(1, "c-1-5")?.messages[0]?.content, "while stopped");
    assert.equal(second.store.get(0, "c-0-150")?.messages[0]?.content, "first");
    assert.equal(second.store.get(0, "c-0-100")?.messages[0]?.content, "changed");
    assert.ok(await second.store.isCurrent(0));
    await second.store.stop();
  });

  it("closes the fence's gap: a replaced owner's write after its check lands where it did not expect, and no reader takes it", async () => {
    const { topic } = await memoryTopic(3);
    const zombie = newStore(topic, tempDir());
    await zombie.store.start();
    zombie.store.assign([0]);
    await zombie.store.ready(0);
    assert.ok(await zombie.store.isCurrent(0), "the first owner passes its check");

    // The partition moves on: its next owner restores it (writing its fence) and answers a turn.
    const owner = newStore(topic, tempDir());
    await owner.store.start();
    owner.store.assign([0]);
    await owner.store.ready(0);
    assert.ok(await owner.store.writeIfOwner(0, "c-0-1", state("c-0-1", "the owner's")));

    // The first owner, frozen between its check and its write, wakes and writes.
    assert.equal(await zombie.store.put(0, "c-0-1", state("c-0-1", "the replaced owner's")), false, "it learns its write did not land where it expected");
    assert.equal(zombie.store.get(0, "c-0-1")?.messages[0]?.content, "first", "and its store took nothing of it");

    // The owner sees the log moved, catches up (skipping that record) and writes again.
    assert.equal(await owner.store.writeIfOwner(0, "c-0-2", state("c-0-2", "the owner's too")), false, "someone wrote since: the turn runs again");
    await owner.store.catchUp(0);
    assert.equal(owner.store.get(0, "c-0-1")?.messages[0]?.content, "the owner's", "the catch-up skipped the replaced owner's record");
    assert.ok(await owner.store.writeIfOwner(0, "c-0-2", state("c-0-2", "the owner's too")));

    // Every reader has the owner's state; and the latest record of the key is the owner's
    // again (written anew after the skipped one), so compaction cannot keep the skipped one alone.
    const log = await logState(topic, 0);
    assert.equal(log.get("c-0-1")?.messages[0]?.content, "the owner's");
    assert.equal(log.get("c-0-2")?.messages[0]?.content, "the owner's too");
    const last = (await readTopic(kafkaConfig, topic, { partitions: [0] })).filter((r) => r.key?.toString() === "c-0-1").at(-1)!;
    assert.ok(landedAsExpected(last), "the key's latest record counts");
    const fresh = newStore(topic, tempDir());
    await fresh.store.start();
    fresh.store.assign([0]);
    await fresh.store.ready(0);
    assert.equal(fresh.store.get(0, "c-0-1")?.messages[0]?.content, "the owner's", "a cold restore skips it too");
    await Promise.all([zombie.store.stop(), owner.store.stop(), fresh.store.stop()]);
  });

  it("falls back to a cold restore when records below its checkpoint were deleted, or its directory is unusable", async () => {
    const { topic } = await memoryTopic(200);
    const dir = tempDir();
    const first = newStore(topic, dir);
    await first.store.start();
    first.store.assign([0, 1]);
    await Promise.all([first.store.ready(0), first.store.ready(1)]);
    first.store.assign([]);
    await first.store.stop();

    // Records the checkpoint had not seen are deleted (retention, or deleteRecords).
    await producer.send({ topic, messages: [{ partition: 0, key: "c-0-late", value: encodeRecord(state("c-0-late", "late")) }] });
    const high = (await admin.offsets(topic)).find((o) => o.partition === 0)!.high;
    await admin.deleteRecords(topic, 0, high);
    const second = newStore(topic, dir);
    await second.store.start();
    second.store.assign([0, 1]);
    await Promise.all([second.store.ready(0), second.store.ready(1)]);
    assert.equal(second.store.lastRestore(0)!.kind, "cold");
    assert.match(second.store.lastRestore(0)!.reason!, /below the log start/);
    assert.equal(second.store.get(0, "c-0-late"), undefined, "the cold restore starts from the log as it is, not the store");
    assert.equal(second.store.get(0, "c-0-5"), undefined, "the deleted records' conversations are gone from the store too");
    assert.equal(second.store.lastRestore(1)!.kind, "warm", "the other partition is still warm");
    await second.store.stop();

    // A directory that holds no usable environment: a file of garbage where it should be.
    const spoiled = tempDir();
    writeFileSync(path.join(spoiled, `${topic}.lmdb`), Buffer.alloc(64 * 1024, 0x5a));
    const third = newStore(topic, spoiled);
    await third.store.start();
    third.store.assign([1]);
    await third.store.ready(1);
    assert.equal(third.store.lastRestore(1)!.kind, "cold");
    assert.equal(third.store.lastRestore(1)!.records, 200);
    assert.equal(third.store.get(1, "c-1-9")?.messages[0]?.content, "first");
    await third.store.stop();

    // A directory where the environment's file should be.
    const garbage = tempDir();
    mkdirSync(path.join(garbage, `${topic}.lmdb`, "x"), { recursive: true });
    const fourth = newStore(topic, garbage);
    await fourth.store.start();
    fourth.store.assign([1]);
    await fourth.store.ready(1);
    assert.equal(fourth.store.lastRestore(1)!.kind, "cold");
    assert.equal(fourth.store.get(1, "c-1-9")?.messages[0]?.content, "first");
    await fourth.store.stop();
  });

  it("keeps RAM bounded: restoring many conversations leaves at most the cache's entries decoded in the heap", async () => {
    const n = 3000;
    const { topic, ids } = await memoryTopic(n);
    const { store } = newStore(topic, tempDir(), { cacheEntries: 20 });
    await store.start();
    store.assign([0, 1]);
    await Promise.all([store.ready(0), store.ready(1)]);
    assert.equal(store.cacheSize, 0, "a restore decodes nothing");
    for (const id of ids[0]!) assert.equal(store.get(0, id)?.conversation_id, id);
    assert.equal(store.cacheSize, 20, "reading every conversation keeps only the cache's entries");
    await store.stop();
  });

  it("does not serve conversations past the TTL after a restore, and sweeps them from the store", async () => {
    const old = Date.now() - TTL_MS - 60_000;
    const { topic } = await memoryTopic(50, old);
    await producer.send({ topic, messages: [{ partition: 0, key: "c-0-fresh", value: encodeRecord(state("c-0-fresh", "fresh")) }] });
    let gauge = -1;
    const { store } = newStore(topic, tempDir(), { onConversations: (v) => (gauge = v) });
    await store.start();
    store.assign([0]);
    await store.ready(0);
    assert.equal(store.get(0, "c-0-1"), undefined, "expired: written longer ago than the TTL");
    assert.equal(store.get(0, "c-0-fresh")?.messages[0]?.content, "fresh");
    const load = await store.load(0, "c-0-2", "r-x");
    assert.equal(load.state, undefined, "a turn starts an expired conversation afresh");
    // The sweep after the restore removes them from disk: the gauge counts what is stored.
    for (let i = 0; i < 100 && gauge !== 1; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(gauge, 1, "only the fresh conversation is left in the store");
    await store.stop();
  });
});
