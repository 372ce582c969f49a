/**
 * Poison requests against the real broker and real worker processes (stories260K): a
 * request that cannot succeed ends with a terminal error event, is dead-lettered with its
 * reason, and its partition goes on. One whose history record the broker refuses for its
 * size fails at once; one of a schema the worker does not know still reaches its client;
 * one that kills its worker every time is given up after MAX_REQUEST_ATTEMPTS, counted
 * across the workers that took it in turn.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { DLQ_HEADERS } from "../../contracts/records/dead-letter.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import type { ChatEvent, ErrorEvent } from "../../contracts/records/events.js";
import { topicNames } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { keyPartition } from "../../platform/kafka/partitioner.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { metricValue, stackEnv, startWorker as startTestWorker } from "../helpers/gateway.js";
import { kafkaConfigFor, readTopic, uniquePrefix, useKafka, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const PARTITIONS = 2;

function startWorker(kafka: TestKafka, prefix: string, id: string, env: Record<string, string> = {}): Promise<Service> {
  return startTestWorker(stackEnv(kafka, prefix, PARTITIONS), { WORKER_SLOTS: "2", MEMORY_MAX_TOKENS: "4000", DEFAULT_MAX_TOKENS: "16", ...env }, id);
}

/** Conversation ids (tenant t1) whose requests all go to one partition of chat.requests. */
function samePartition(stem: string, n: number): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < n; i++) if (keyPartition(`t1/${stem}-${i}`, PARTITIONS) === 0) ids.push(`${stem}-${i}`);
  return ids;
}

function asError(event: ChatEvent): ErrorEvent {
  assert.equal(event.type, "error", `expected an error event, got ${JSON.stringify(event)}`);
  return event as ErrorEvent;
}

describe("poison requests", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  before(async () => {
    kafka = await useKafka();
  });
  after(async () => {
    await kafka?.stop();
  });

  for (const transactions of [false, true]) {
    it(`fails a turn whose history record the broker refuses within seconds, and answers the next turn of its partition${transactions ? " (WORKER_TRANSACTIONS)" : ""}`, async (t) => {
      const prefix = uniquePrefix(transactions ? "poison-size-tx" : "poison-size");
      const topics = topicNames(prefix);
      // chat.history made before the install's, so it keeps a limit below a long turn's record.
      const admin = new KafkaAdmin(kafkaConfigFor(kafka));
      try {
        await admin.createTopics([
          { name: topics.history, partitions: PARTITIONS, replicationFactor: 1, configs: { "cleanup.policy": "delete", "max.message.bytes": "1000" } },
        ]);
      } finally {
        admin.close();
      }
      const worker = await startWorker(kafka, prefix, "size-worker", { WORKER_TRANSACTIONS: String(transactions) });
      const chat = new ChatOverKafka(kafka, topics);
      await chat.start();
      try {
        const [big, small] = samePartition("size", 2);
        const sentAt = Date.now();
        // Its history record (the user's message and the reply) is over 1,000 bytes; the next one is not.
        const tooLarge = await chat.turn(big!, "Once upon a time there was a little dog. ".repeat(40));
        const next = await chat.turn(small!, "Hi.");
        const error = asError(await chat.terminal(tooLarge, 30_000));
        const tookMs = Date.now() - sentAt;
        t.diagnostic(`the error event ${tookMs} ms after the request was sent`);
        assert.equal(error.code, "record_too_large");
        assert.equal(error.retryable, false);
        assert.ok(tookMs < 15_000, `the error came after ${tookMs} ms`);
        const final = await chat.terminal(next, 60_000);
        assert.equal(final.type, "final", JSON.stringify(final));

        const dead = await readTopic(chat.config, topics.deadLetter);
        assert.equal(dead.length, 1);
        assert.match(String(dead[0]!.headers[DLQ_HEADERS.reason]), /^record_too_large: /);
        const metrics = await (await fetch(`${worker.baseUrl}/metrics`)).text();
        assert.equal(metricValue(metrics, "kafka_llm_dead_lettered_total", { reason: "record_too_large" }), 1);
        assert.equal((await chat.readMemory()).has(big!), false, "nothing of the failed turn was applied");
      } finally {
        await chat.stop();
        await worker.stop();
      }
    });
  }

  it("tells the client of a request dead-lettered for its schema (a newer gateway's field, in a rolling upgrade)", async () => {
    const prefix = uniquePrefix("poison-schema");
    const topics = topicNames(prefix);
    const worker = await startWorker(kafka, prefix, "schema-worker");
    const chat = new ChatOverKafka(kafka, topics);
    await chat.start();
    try {
      const [id] = samePartition("schema", 1);
      const requestId = randomUUID();
      await chat.produce({
        v: SCHEMA_VERSION,
        type: "turn",
        request_id: requestId,
        conversation_id: id!,
        tenant: "t1",
        content: "Hi.",
        created_at: Date.now(),
        priority: "high", // a field this worker does not know
        events_partition: 1,
      });
      const error = asError(await chat.terminal(requestId, 30_000));
      assert.equal(error.code, "request_dead_lettered");
      assert.deepEqual(chat.partitions.get(requestId), [1], "on the request's events_partition, as its other events would be");
      const dead = await readTopic(chat.config, topics.deadLetter);
      assert.match(String(dead[0]!.headers[DLQ_HEADERS.reason]), /Unrecognized key: "priority"/);
    } finally {
      await chat.stop();
      await worker.stop();
    }
  });

  it("gives up a request that kills its worker every time after MAX_REQUEST_ATTEMPTS, and the next worker answers the partition's next turn", async () => {
    const prefix = uniquePrefix("poison-kill");
    const topics = topicNames(prefix);
    const env = { MAX_REQUEST_ATTEMPTS: "2" };
    let worker = await startWorker(kafka, prefix, "kill-worker-1", env);
    const chat = new ChatOverKafka(kafka, topics);
    await chat.start();
    const killed: string[] = [];
    try {
      const [poisonId, nextId] = samePartition("kill", 2);
      // Long enough to be killed in the middle of (the test kills it on its start).
      const poison = await chat.turn(poisonId!, "A long story, please.", { params: { max_tokens: 1500 } });
      for (const name of ["kill-worker-2", "kill-worker-3"]) {
        await worker.waitForLog((r) => r.msg === "request started" && r.request_id === poison, 90_000);
        await worker.stop("SIGKILL");
        killed.push(worker.name);
        worker = await startWorker(kafka, prefix, name, env);
      }
      const error = asError(await chat.terminal(poison, 90_000));
      assert.equal(error.code, "request_dead_lettered");
      assert.ok(!worker.logs.some((l) => l.record.msg === "request started" && l.record.request_id === poison), "the third worker did not start it");

      const next = await chat.terminal(await chat.turn(nextId!, "Hi."), 60_000);
      assert.equal(next.type, "final", JSON.stringify(next));
      const dead = await readTopic(chat.config, topics.deadLetter);
      assert.equal(dead.length, 1);
      assert.match(String(dead[0]!.headers[DLQ_HEADERS.reason]), /^attempts_exhausted: started 2 times/);
      const metrics = await (await fetch(`${worker.baseUrl}/metrics`)).text();
      assert.equal(metricValue(metrics, "kafka_llm_dead_lettered_total", { reason: "attempts_exhausted" }), 1);
      assert.deepEqual(killed, ["kill-worker-1", "kill-worker-2"]);
    } finally {
      await chat.stop();
      await worker.stop();
    }
  });
});
