/**
 * Fair inside the worker (worker/turn-scheduler.ts), on a real worker (stories260K,
 * WORKER_SLOTS=2) and broker, with every conversation on one partition: tenant b queues
 * long turns of six conversations, then tenant a sends one short turn. Order is owed per
 * conversation, not per partition, and a's turn takes the first slot that b gives back; a
 * worker that ran a partition's records one after another would answer it after all of b's.
 * Then the partition's committed offset is its end: every record done, none skipped.
 *
 * Then the commit position across a death: while a long turn runs, quick turns of other
 * conversations after it on the partition are done and answered, and the committed offset
 * stays at the long turn. The worker is SIGKILLed; its successor runs the long turn again
 * and finds the quick ones applied: each is in memory once, and its final, re-announced, is
 * the same.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { after, before, describe, it } from "node:test";
import { isTerminalEvent, type FinalEvent } from "../../contracts/records/events.js";
import { topicNames } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { eventually, stackEnv, startWorker } from "../helpers/gateway.js";
import { kafkaConfigFor, uniquePrefix, useKafka, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const B_TURNS = 6;
const WORKER_ENV = { WORKER_SLOTS: "2", DELTA_FLUSH_MS: "5" };

describe("fair inside the worker: conversations of one partition side by side, slots shared among tenants", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let chat: ChatOverKafka;
  let admin: KafkaAdmin;
  const prefix = uniquePrefix("fair");
  const topics = topicNames(prefix);

  before(async () => {
    kafka = await useKafka();
    worker = await startWorker(stackEnv(kafka, prefix, 1), WORKER_ENV, "worker-fairness");
    chat = new ChatOverKafka(kafka, topics);
    await chat.start();
    admin = new KafkaAdmin(kafkaConfigFor(kafka));
  });

  let successor: Service | undefined;

  after(async () => {
    admin?.close();
    await chat?.stop();
    await worker?.stop();
    await successor?.stop();
    await kafka?.stop();
  });

  const committedOffset = async () => {
    const [[, offset] = [0, -1]] = [...(await admin.committed(`${prefix}workers`, topics.requests, [0]))];
    return offset;
  };

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
        const offset = await committedOffset();
        return offset === B_TURNS + 2 ? offset : undefined;
      },
      20_000,
      "the group's committed offset to reach the partition's end",
    );
    assert.equal(committed, B_TURNS + 2);
  });

  it("commits up to the lowest record not done, and a successor finds the records done above it applied", async () => {
    const start = await committedOffset();
    successor = await startWorker(stackEnv(kafka, prefix, 1), WORKER_ENV, "worker-fairness-successor");
    // Long for certain: the schema's grammar allows no end before 800 numbers (stories260K
    // would otherwise end its story when it likes).
    const long = await chat.turn("long", "Count.", {
      tenant: "a",
      params: {
        max_tokens: 8000,
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "numbers",
            schema: { type: "object", properties: { n: { type: "array", minItems: 800, items: { type: "integer" } } }, required: ["n"] },
          },
        },
      },
    });
    const quick = await Promise.all(["q1", "q2", "q3"].map((c) => chat.turn(c, "Hi", { tenant: "b", params: { max_tokens: 4 } })));
    const firstFinals = await Promise.all(quick.map((id) => chat.terminal(id, 60_000)));
    for (const f of firstFinals) assert.equal(f.type, "final", JSON.stringify(f));
    assert.ok(!chat.events.get(long)!.some(isTerminalEvent), "the long turn still runs");
    assert.equal(await committedOffset(), start, "the long turn is not done: nothing past it is committed");

    await worker.stop("SIGKILL");
    const longFinal = await chat.terminal(long, 120_000);
    assert.equal(longFinal.type, "final", JSON.stringify(longFinal));
    assert.equal(new Set(chat.events.get(long)!.map((e) => e.attempt)).size, 2, "the long turn ran again at the successor");
    await eventually(async () => ((await committedOffset()) === start + 4 ? true : undefined), 20_000, "the successor to commit the partition's end");
    for (const [i, id] of quick.entries()) {
      const events = chat.events.get(id)!;
      const finals = events.filter(isTerminalEvent);
      assert.ok(finals.length >= 2, `quick turn ${i + 1} was fetched again and its final re-announced (${finals.length})`);
      assert.ok(
        finals.every((f) => isDeepStrictEqual(f, finals[0])),
        `quick turn ${i + 1}: the same final each time`,
      );
      assert.equal(new Set(events.map((e) => e.attempt)).size, 1, `quick turn ${i + 1} was generated once`);
    }
    const memory = await chat.readMemory("b");
    for (const [i, c] of ["q1", "q2", "q3"].entries())
      assert.deepEqual(
        memory.get(c)!.messages.map((m) => `${m.role}:${m.request_id}`),
        [`user:${quick[i]}`, `assistant:${quick[i]}`],
        `${c}'s memory holds its turn once`,
      );
  });
});
