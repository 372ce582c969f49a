import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chatEventSchema, type ChatEvent } from "../../../contracts/records/events.js";
import { DLQ_HEADERS } from "../../../contracts/records/dead-letter.js";
import type { OutgoingRecord } from "../../../platform/kafka/producer.js";
import { createLogger } from "../../../platform/logger.js";
import { createWorkerMetrics } from "../../../worker/metrics.js";
import { deadLetterRequest, requestIdentity, type DeadLetterContext } from "../../../worker/dead-letter.js";
import type { RequestRecord } from "../../../worker/turn-scheduler.js";

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function context() {
  const sent: Array<{ topic: string; message: OutgoingRecord }> = [];
  const metrics = createWorkerMetrics("w");
  const ctx: DeadLetterContext = {
    producer: {
      send: async ({ topic, messages }) => {
        for (const message of messages) sent.push({ topic, message });
        return messages.map((_, i) => ({ partition: 0, offset: i }));
      },
    },
    topics: { deadLetter: "dlq", events: "events" },
    config: { workerId: "w", kafka: { eventPartitions: 4 } },
    metrics,
    logger: createLogger("test", "silent"),
  };
  const events = () => sent.filter((s) => s.topic === "events").map((s) => chatEventSchema.parse(JSON.parse(String(s.message.value))) as ChatEvent);
  return { ctx, sent, events, metrics };
}

const record = (value: Buffer | null): RequestRecord => ({ topic: "chat.requests", partition: 1, offset: "7", key: Buffer.from("t/c"), value });

describe("dead-lettered requests", () => {
  it("reads who a record is for from its JSON even when the rest does not match the schema", () => {
    assert.deepEqual(requestIdentity(json({ v: 2, type: "turn", request_id: "r-1", tenant: "t", conversation_id: "c", novelty: true, events_partition: 3 })), {
      request_id: "r-1",
      tenant: "t",
      conversation_id: "c",
      events_partition: 3,
    });
    assert.equal(requestIdentity(json({ request_id: "r-1", tenant: "t", conversation_id: "c", events_partition: "x" }))?.events_partition, undefined);
    assert.equal(requestIdentity(json({ request_id: "r-1", tenant: "t" })), null, "no conversation: no key to send its event under");
    assert.equal(requestIdentity(json({ request_id: "r-1", tenant: "a/b", conversation_id: "c" })), null);
    assert.equal(requestIdentity(Buffer.from("{not json")), null);
    assert.equal(requestIdentity(null), null);
  });

  it("dead-letters a request given up with its reason, and sends its client a terminal error on its events partition", async () => {
    const { ctx, sent, events, metrics } = context();
    await deadLetterRequest(
      record(json({ request_id: "r-1", tenant: "t", conversation_id: "c", events_partition: 3 })),
      { reason: "attempts_exhausted", detail: "failed on all 3 attempts" },
      ctx,
    );
    assert.deepEqual(
      sent.map((s) => s.topic),
      ["dlq", "events"],
      "the dead letter first, then the client's event",
    );
    assert.equal(sent[0]!.message.headers?.[DLQ_HEADERS.reason], "attempts_exhausted: failed on all 3 attempts");
    const [error] = events();
    assert.equal(error?.type, "error");
    assert.equal(error?.type === "error" && error.code, "request_dead_lettered");
    assert.equal(error?.type === "error" && error.retryable, false);
    assert.equal(sent[1]!.message.partition, 3);
    assert.match(await metrics.registry.metrics(), /kafka_llm_dead_lettered_total\{reason="attempts_exhausted"[^}]*\} 1/);
  });

  it("says record_too_large for a record over its topic's limit, and sends no event for a record that names no request", async () => {
    const big = context();
    await deadLetterRequest(record(json({ request_id: "r-2", tenant: "t", conversation_id: "c" })), { reason: "record_too_large", detail: "history" }, big.ctx);
    const [tooLarge] = big.events();
    assert.equal(tooLarge?.type === "error" && tooLarge.code, "record_too_large");
    const unreadable = context();
    await deadLetterRequest(record(Buffer.from("garbage")), { reason: "invalid_record", detail: "value is not JSON" }, unreadable.ctx);
    assert.deepEqual(
      unreadable.sent.map((s) => s.topic),
      ["dlq"],
    );
    assert.equal(unreadable.sent[0]!.message.headers?.[DLQ_HEADERS.reason], "value is not JSON", "a record that is no request keeps its reason as it was");
  });
});
