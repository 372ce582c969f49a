/**
 * Bad records on chat.requests, produced straight to Kafka (the gateway validates what it
 * sends, but anything can write to a topic): malformed JSON, not JSON at all, the wrong
 * schema, unknown types and versions, unknown fields, wrong types, invalid UTF-8, no
 * value, and a record at the broker's size limit. Each must land on chat.requests.dlq
 * with its original key and bytes and a reason, and the worker must carry on: the turn
 * queued behind them is answered. Counted, by kind and reason, in the test's output.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { readTopic, type LoggedRecord } from "../../chaos/kafka-log.js";
import { DLQ_HEADERS } from "../../contracts/records/dead-letter.js";
import { topicNames } from "../../contracts/topics.js";
import { librdkafkaConnection } from "../../platform/kafka/connection.js";
import { call, rdkafka, type DeliveryReport, type NativeError } from "../../platform/kafka/native.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { metricValue, stackEnv, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "bad-input";
const CASE_HEADER = "x-test-case";

const turn = (extra: Record<string, unknown> = {}) => ({
  v: 1,
  type: "turn",
  request_id: `r-${Math.random().toString(36).slice(2)}`,
  conversation_id: KEY,
  tenant: "t1",
  content: "hello",
  created_at: Date.now(),
  ...extra,
});
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** Each kind of bad record and the reason the worker must give. */
const CASES: Array<{ kind: string; value: Buffer | null; reason: RegExp }> = [
  {
    kind: "malformed JSON (truncated)",
    value: Buffer.from('{"v":1,"type":"turn","content":"hel'),
    reason: /^value is not JSON( \(error at character \d+\))?$/,
  },
  { kind: "not JSON at all", value: Buffer.from("plain text, no braces"), reason: /^value is not JSON( \(error at character \d+\))?$/ },
  { kind: "JSON, not an object", value: Buffer.from("[1,2,3]"), reason: /^schema: / },
  { kind: "JSON null", value: Buffer.from("null"), reason: /^schema: / },
  { kind: "empty value", value: Buffer.alloc(0), reason: /^value is not JSON( \(error at character \d+\))?$/ },
  { kind: "no value (tombstone)", value: null, reason: /^record has no value$/ },
  { kind: "wrong schema (fields missing)", value: json({ v: 1, type: "turn" }), reason: /^schema: .*request_id: is required/ },
  { kind: "unknown request type", value: json(turn({ type: "explode" })), reason: /^schema: type: Invalid discriminator value/ },
  { kind: "unknown schema version", value: json(turn({ v: 2 })), reason: /^schema: v: Invalid input: expected 1/ },
  { kind: "unknown field", value: json(turn({ colour: "blue" })), reason: /^schema: \(root\): Unrecognized key: "colour"/ },
  {
    kind: "unknown field in params",
    value: json(turn({ params: { max_tokens: 8, mirostat: 2 } })),
    reason: /^schema: params: Unrecognized key: "mirostat"/,
  },
  { kind: "wrong type: content is a number", value: json(turn({ content: 42 })), reason: /^schema: content: Invalid input: expected string, received number/ },
  {
    kind: "wrong type: created_at is a string",
    value: json(turn({ created_at: "yesterday" })),
    reason: /^schema: created_at: Invalid input: expected number, received string/,
  },
  {
    kind: "wrong type: params.max_tokens is a string",
    value: json(turn({ params: { max_tokens: "8" } })),
    reason: /^schema: params\.max_tokens: Invalid input: expected number, received string/,
  },
  { kind: "out of range: temperature 9", value: json(turn({ params: { temperature: 9 } })), reason: /^schema: params\.temperature: must be <= 2/ },
  { kind: "bad conversation id", value: json(turn({ conversation_id: "has spaces/and slashes" })), reason: /^schema: conversation_id: may contain only/ },
  {
    kind: "content over the limit",
    value: json(turn({ content: "x".repeat(32_001) })),
    reason: /^schema: content: Too big: expected string to have <=32000 characters/,
  },
  {
    kind: "invalid UTF-8 inside a string",
    value: Buffer.concat([Buffer.from('{"v":1,"type":"turn","content":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]),
    reason: /^value is not valid UTF-8$/,
  },
  { kind: "invalid UTF-8: lone continuation bytes", value: Buffer.from([0x80, 0x80, 0x80]), reason: /^value is not valid UTF-8$/ },
];

describe("bad records on chat.requests", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let chat: ChatOverKafka;
  const prefix = uniquePrefix("bad-input");
  const topics = topicNames(prefix);

  before(async () => {
    kafka = await useKafka();
    // One partition: the bad records and the good turn behind them are one ordered queue.
    worker = await startWorker(stackEnv(kafka, prefix, 1), { DEFAULT_MAX_TOKENS: "8" }, "bad-input-worker");
    chat = new ChatOverKafka(kafka, topics);
    await chat.start();
  });

  after(async () => {
    await chat?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  /** Produces `value` with a header naming the case; returns its offset on chat.requests. */
  async function produce(kind: string, value: Buffer | null): Promise<string> {
    const [delivered] = await chat.send(topics.requests, [{ key: KEY, value, headers: { [CASE_HEADER]: kind } }]);
    return String(delivered!.offset);
  }

  /**
   * Produces a record past librdkafka's own default limit (message.max.bytes, 1,000,000 on
   * the producer too), so the broker is what refuses a record over its limit; its offset.
   */
  async function produceLarge(kind: string, value: Buffer): Promise<string> {
    const producer = new (rdkafka().Producer)({
      ...librdkafkaConnection(chat.config),
      dr_cb: true,
      "message.max.bytes": 2_000_000,
      "message.send.max.retries": 0,
    });
    await call((cb) => producer.connect({ timeout: 10_000 }, cb));
    producer.setPollInBackground(true);
    try {
      return await new Promise<string>((resolve, reject) => {
        producer.on("delivery-report", (err: NativeError | null, report: DeliveryReport) => (err ? reject(err) : resolve(String(report.offset))));
        producer.produce(topics.requests, null, value, KEY, null, null, [{ [CASE_HEADER]: kind }]);
      });
    } finally {
      await call((cb) => producer.disconnect(cb)).catch(() => undefined);
    }
  }

  async function deadLetters(): Promise<LoggedRecord[]> {
    return readTopic(chat.config, topics.deadLetter);
  }

  it("dead-letters every kind with its original key, bytes and a reason, and answers the turn behind them", async (t) => {
    const offsets = new Map<string, string>();
    for (const c of CASES) offsets.set(c.kind, await produce(c.kind, c.value));
    const final = await chat.terminal(await chat.turn(KEY, "Still there after all that?"), 120_000);
    assert.equal(final.type, "final", JSON.stringify(final));

    // The final comes after every bad record was dead-lettered (same partition, in order).
    const dead = await deadLetters();
    const header = (r: LoggedRecord, name: string) => r.headers[name];
    const byCase = new Map(dead.map((r) => [header(r, CASE_HEADER), r]));
    for (const c of CASES) {
      const record = byCase.get(c.kind);
      assert.ok(record, `${c.kind}: not on ${topics.deadLetter}`);
      assert.equal(record.key, KEY, `${c.kind}: key kept`);
      assert.ok(c.value === null ? record.value === null : record.value !== null && Buffer.compare(record.value, c.value) === 0, `${c.kind}: bytes kept`);
      assert.match(header(record, DLQ_HEADERS.reason) ?? "", c.reason, c.kind);
      assert.equal(header(record, DLQ_HEADERS.topic), topics.requests);
      assert.equal(header(record, DLQ_HEADERS.partition), "0");
      assert.equal(header(record, DLQ_HEADERS.offset), offsets.get(c.kind));
      assert.equal(header(record, DLQ_HEADERS.workerId), "bad-input-worker");
      t.diagnostic(`${c.kind.padEnd(42)} → ${header(record, DLQ_HEADERS.reason)!.slice(0, 110)}`);
    }
    assert.equal(dead.length, CASES.length, "nothing else was dead-lettered");
    const metrics = await (await fetch(`${worker.baseUrl}/metrics`)).text();
    assert.equal(metricValue(metrics, "kafka_llm_dead_lettered_total"), CASES.length);
    assert.equal(metricValue(metrics, "kafka_llm_requests_total", { outcome: "dead_lettered" }), CASES.length);
    assert.equal(worker.proc.exitCode, null, "the worker is still running");
  });

  it("dead-letters a record at the broker's size limit, whose copy with reason headers no longer fits, and carries on", async (t) => {
    // The largest turn record the broker takes (message.max.bytes, 1 MB by default): its
    // content is far over the 32000-character limit, so the worker must dead-letter it,
    // and the dead letter (the same bytes plus five headers) is over the broker's limit.
    let size = 1_048_588 - 61 - 40; // batch header and record overhead
    let offset: string | null = null;
    let value: Buffer = Buffer.alloc(0);
    for (; offset === null && size > 1_000_000; size -= 16) {
      const head = '{"v":1,"type":"turn","request_id":"huge-1","conversation_id":"bad-input","tenant":"t1","created_at":1,"content":"';
      value = Buffer.from(head + "x".repeat(size - head.length - 2) + '"}');
      try {
        offset = await produceLarge("huge", value);
      } catch (err) {
        if (!/too large|MESSAGE_TOO_LARGE/i.test(String((err as Error).message))) throw err;
      }
    }
    assert.ok(offset !== null, "a record near the limit was accepted");
    t.diagnostic(`the broker took a ${value.length}-byte record at offset ${offset}`);

    const next = await chat.turn(KEY, "And after the huge one?");
    const final = await chat.terminal(next, 90_000).catch((err: Error) => {
      // Say what the worker did instead: its errors since the huge record.
      const errors = worker
        .output()
        .split("\n")
        .filter((l) => /"level":(40|50|60)/.test(l) && !/rebalanc/.test(l));
      throw new Error(
        `${err.message}\nthe worker's warnings and errors:\n${errors
          .slice(-8)
          .map((l) => l.slice(0, 600))
          .join("\n")}`,
      );
    });
    assert.equal(final.type, "final", "the worker carried on past the huge record");
    const dead = (await deadLetters()).filter((r) => r.headers[DLQ_HEADERS.offset] === offset);
    assert.equal(dead.length, 1, "the huge record is on the dead-letter topic, not dropped silently");
    const reason = dead[0]!.headers[DLQ_HEADERS.reason] ?? "";
    assert.match(reason, /content: Too big: expected string to have <=32000 characters/);
    t.diagnostic(`dead letter: ${dead[0]!.value?.length ?? 0} bytes, reason: ${reason.slice(0, 200)}`);
    assert.equal(worker.proc.exitCode, null, "the worker is still running");
  });
});
