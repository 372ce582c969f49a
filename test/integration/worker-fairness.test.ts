/**
 * Fair inside the worker (worker/turn-scheduler.ts), on a real worker (stories260K,
 * WORKER_SLOTS=2) and broker, with every conversation on one partition: tenant b queues
 * long turns of six conversations, then tenant a sends one short turn. Order is owed per
 * conversation, not per partition, and a's turn takes the first slot that b gives back; a
 * worker that ran a partition's records one after another would answer it after all of b's.
 * Then the partition's committed offset is its end: every record done, none skipped.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FinalEvent } from "../../contracts/records/events.js";
import { topicNames } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { eventually, stackEnv, startWorker } from "../helpers/gateway.js";
import { kafkaConfigFor, uniquePrefix, useKafka, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const B_TURNS = 6;

describe("fair inside the worker: conversations of one partition side by side, slots shared among tenants", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let chat: ChatOverKafka;
  let admin: KafkaAdmin;
  const prefix = uniquePrefix("fair");
  const topics = topicNames(prefix);

  before(async () => {
    kafka = await useKafka();
    worker = await startWorker(stackEnv(kafka, prefix, 1), { WORKER_SLOTS: "2", DELTA_FLUSH_MS: "5" }, "worker-fairness");
    chat = new ChatOverKafka(kafka, topics);
    await chat.start();
    admin = new KafkaAdmin(kafkaConfigFor(kafka));
  });

  after(async () => {
    admin?.close();
    await chat?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("answers tenant a's short turn at the first free slot while tenant b's long turns queue on its partition", async () => {
    // The partition's first record runs alone (worker/attempts.ts); after it, side by side.
    const warm = await chat.turn("warm", "Hello", { tenant: "a", params: { max_tokens: 2 } });
    assert.equal((await chat.terminal(warm)).type, "final");

    const ended: string[] = [];
    const bTurns = await Promise.all(
      Array.from({ length: B_TURNS }, (_, i) => chat.turn(`flood-${i}`, "Tell me a long story.", { tenant: "b", params: { max_tokens: 300 } })),
    );
    const bDone = bTurns.map((id) => chat.terminal(id, 120_000).then((e) => (ended.push(`b ${id}`), e)));
    // Both slots run b's turns before a's arrives.
    await eventually(
      async () => {
        const streaming = bTurns.filter((id) => chat.events.get(id)?.some((e) => e.type === "delta"));
        return streaming.length >= 2 ? true : undefined;
      },
      60_000,
      "two of b's turns to stream",
    );
    const aTurn = await chat.turn("short", "Hi", { tenant: "a", params: { max_tokens: 4 } });
    const aFinal = await chat.terminal(aTurn, 120_000).then((e) => (ended.push("a"), e));
    const bFinals = await Promise.all(bDone);

    assert.equal(aFinal.type, "final", JSON.stringify(aFinal));
    for (const f of bFinals) assert.equal(f.type, "final", JSON.stringify(f));
    const before = ended.indexOf("a");
    assert.ok(before <= 2, `a's turn ends after at most the two of b's that held the slots when it came, not after all ${B_TURNS}: ${before} ended before it`);
    assert.ok((aFinal as FinalEvent).usage.completion_tokens > 0);

    // Every record done: the committed offset is the partition's end (8 records: warm-up, b's six, a's).
    const committed = await eventually(
      async () => {
        const [[, offset] = [0, -1]] = [...(await admin.committed(`${prefix}workers`, topics.requests, [0]))];
        return offset === B_TURNS + 2 ? offset : undefined;
      },
      20_000,
      "the group's committed offset to reach the partition's end",
    );
    assert.equal(committed, B_TURNS + 2);
  });
});
