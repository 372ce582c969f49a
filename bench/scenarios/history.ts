/**
 * 10. The history store: how long a real gateway takes to answer GET /messages for the last
 * 50 and for all messages of a 200-message conversation whose chat.history partition also
 * holds 100k messages of other conversations, interleaved with it; and the history topic's
 * bytes per turn.
 *
 * The history is grown with a generator, not by chatting: the conversation's records are
 * written by the worker's own HistoryWriter (so their links are what a worker writes), a
 * turn (a question and a story-length reply) at a time, with 500 records (1,000 messages)
 * of other conversations between two of its turns; then its memory record (with the head)
 * goes to chat.memory, where the worker owning the partition restores it and the gateway
 * asks that worker for the head. The comparison: the same reads on a
 * conversation alone in its partition, which a scan would answer as fast, so equal figures
 * mean the other conversations cost the read nothing.
 */
import { randomUUID } from "node:crypto";
import { conversationKey } from "../../contracts/conversation-key.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { encodeRecord } from "../../contracts/records/codec.js";
import type { ConversationState } from "../../contracts/records/memory.js";
import type { HistoryRecord } from "../../contracts/records/history.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { newConversation } from "../../worker/conversation.js";
import type { RecordSink } from "../../worker/event-writer.js";
import { HistoryWriter } from "../../worker/history-writer.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt, ms } from "../lib/scenario.js";
import { benchKafkaConfig, createTopics, stackSpec, startGateway, startWorker } from "../lib/stack.js";
import { summarize } from "../lib/stats.js";

const TURNS = 100; // 200 messages
const OTHER_RECORDS_BETWEEN = 500; // two messages each: 100k messages of other conversations in all
const OTHER_CONVERSATIONS = 1000;
const QUESTION = "Tell me a story about a cat who learns to sail, please.";
const REPLY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she saw a big red ball in the park. She ran to it and kicked it very hard. The ball went up high into the sky and Lily laughed. Her mom smiled and said, "Let\'s go home now."';

function otherRecord(i: number, now: number): { key: string; value: Buffer } {
  const id = `other-${(i % OTHER_CONVERSATIONS).toString().padStart(4, "0")}`;
  const record: HistoryRecord = {
    v: SCHEMA_VERSION,
    type: "history",
    conversation_id: id,
    tenant: "local",
    epoch: "0000",
    seq: Math.floor(i / OTHER_CONVERSATIONS),
    index: 2 * Math.floor(i / OTHER_CONVERSATIONS),
    request_id: randomUUID(),
    at: now,
    messages: [
      { role: "user", content: QUESTION },
      { role: "assistant", content: REPLY },
    ],
    links: [],
  };
  return { key: conversationKey(record), value: encodeRecord(record) };
}

/** Writes a conversation of `turns` turns, with `between` other records before each; returns its state (head included) and its records' bytes. */
async function grow(
  producer: RecordSink,
  topic: string,
  id: string,
  turns: number,
  between: number,
  counter: { others: number },
): Promise<{ state: ConversationState; bytes: number[] }> {
  const bytes: number[] = [];
  const counting: RecordSink = {
    send: async (r) => {
      for (const m of r.messages) bytes.push(Buffer.byteLength(String(m.key)) + (m.value as Buffer).length);
      return producer.send(r);
    },
  };
  const writer = new HistoryWriter(counting, topic);
  let state = newConversation(id, "local", Date.now());
  for (let t = 0; t < turns; t++) {
    for (let done = 0; done < between; done += 250) {
      const now = Date.now();
      const batch = Array.from({ length: Math.min(250, between - done) }, () => otherRecord(counter.others++, now));
      await producer.send({ topic, messages: batch.map((m) => ({ ...m, partition: 0 })) });
    }
    const requestId = randomUUID();
    state = await writer.append(
      state,
      [
        { role: "user", content: `${QUESTION} (${t})` },
        { role: "assistant", content: REPLY },
      ],
      requestId,
      Date.now(),
    );
  }
  return { state: { ...state, turns, updated_at: Date.now() }, bytes };
}

async function timeReads(baseUrl: string, id: string, query: string, repeats: number, expect: number): Promise<number[]> {
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const res = await fetch(`${baseUrl}/v1/conversations/${id}/messages${query}`);
    const body = (await res.json()) as { messages: unknown[] };
    samples.push(performance.now() - t0);
    if (res.status !== 200 || body.messages.length !== expect)
      throw new Error(`GET ${query}: ${res.status}, ${body.messages?.length} messages (expected ${expect})`);
  }
  return samples;
}

export const historyScenario: Scenario = {
  id: "history",
  title: "10. History store: read latency of a 200-message conversation beside 100k others, bytes per turn",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const between = ctx.quick ? 50 : OTHER_RECORDS_BETWEEN;
    const repeats = ctx.quick ? 5 : 30;
    // One partition everywhere: every conversation's history shares it.
    const spec = stackSpec(ctx.brokers, "history", 1);
    await createTopics(spec);
    const logger = createLogger("bench", "fatal");
    const producer = await KafkaProducer.connect(benchKafkaConfig(ctx.brokers, "bench-history"), { logger });
    const counter = { others: 0 };
    let crowded: Awaited<ReturnType<typeof grow>>;
    let alone: Awaited<ReturnType<typeof grow>>;
    try {
      const t0 = performance.now();
      ctx.log(`writing ${TURNS} turns of one conversation with ${between} records (${2 * between} messages) of others before each`);
      crowded = await grow(producer, spec.topics.history, "crowded", TURNS, between, counter);
      ctx.log(`  ${counter.others} other records written in ${fmt((performance.now() - t0) / 1000)} s; then a conversation alone`);
      alone = await grow(producer, spec.topics.history, "alone", TURNS, 0, counter);
      for (const { state } of [crowded, alone]) {
        // Keyed as a worker keys it: the conversation key (tenant and id).
        await producer.send({ topic: spec.topics.memory, messages: [{ key: conversationKey(state), value: encodeRecord(state) }] });
      }
    } finally {
      await producer.disconnect();
    }
    // Conversation reads (the chain's head) are answered by the worker owning the partition.
    const [gateway, worker] = await Promise.all([startGateway(spec), startWorker(spec, ctx.model, "history-worker")]);
    const reads: Record<string, ReturnType<typeof summarize>> = {};
    try {
      for (const id of ["crowded", "alone"]) await timeReads(gateway.baseUrl, id, "?limit=500", 2, 2 * TURNS); // warm the pool and the page cache
      // Alternated, so load from other processes falls on both alike.
      const samples: Record<string, number[]> = {};
      for (let i = 0; i < repeats; i++) {
        for (const id of ["crowded", "alone"]) {
          (samples[`${id} last 50`] ??= []).push(...(await timeReads(gateway.baseUrl, id, "?from=latest&limit=50", 1, 50)));
          (samples[`${id} all 200`] ??= []).push(...(await timeReads(gateway.baseUrl, id, "?from=beginning&limit=500", 1, 2 * TURNS)));
        }
      }
      for (const [k, v] of Object.entries(samples)) reads[k] = summarize(v);
    } finally {
      await Promise.all([gateway.stop(), worker.stop()]);
    }
    const bytes = crowded.bytes;
    const perTurn = bytes.reduce((a, b) => a + b, 0) / bytes.length;
    const content = Buffer.byteLength(`${QUESTION} (50)`) + Buffer.byteLength(REPLY);
    const r = (k: string) => reads[k]!;
    const rows: Row[] = [
      {
        figure: "GET /messages, last 50 of 200, beside 100k other messages in the partition (p50 / p95)",
        measured: `${ms(r("crowded last 50").p50)} / ${ms(r("crowded last 50").p95)}`,
        compared: `alone in its partition: ${ms(r("alone last 50").p50)} / ${ms(r("alone last 50").p95)}`,
      },
      {
        figure: "GET /messages, all 200 (p50 / p95)",
        measured: `${ms(r("crowded all 200").p50)} / ${ms(r("crowded all 200").p95)}`,
        compared: `alone: ${ms(r("alone all 200").p50)} / ${ms(r("alone all 200").p95)}`,
      },
      {
        figure: "chat.history bytes per turn (key + value, one record of a question and a reply)",
        measured: `${fmt(perTurn, 0)} B (last turn ${bytes.at(-1)} B)`,
        compared: `the turn's text: ${content} B (the rest: the record's ids, times and ${crowded.state.history!.fingers.length} links)`,
      },
    ];
    return {
      rows,
      targets: [],
      notes: [
        `Reads through a real gateway (HTTP, the owning worker's answer, exact-offset fetches); ${repeats} reads each after two warm-up reads; ${counter.others} records of ${OTHER_CONVERSATIONS} other conversations share the partition with the crowded one.`,
        "Bytes are the record's key and value as produced; Kafka's batch and record headers (about 70 B per batch, under 20 B per record) come on top.",
      ],
      raw: { turns: TURNS, otherRecords: counter.others, otherMessages: 2 * counter.others, reads, bytesPerTurn: bytes, textBytesPerTurn: content },
    };
  },
};
