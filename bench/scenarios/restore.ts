/**
 * 5. Memory restore: conversations restored per second from chat.memory, with the
 * worker's own MemoryStore (worker/memory-store.ts) and the project's Kafka module, at 10k
 * and 100k conversations. The store is started (its reader has joined), then handed
 * every partition at once, as a worker that takes over all of them; the clock runs from
 * assign() to the moment every partition's fence has been read. A second measure hands it
 * one partition (a worker taking over a sixth of the conversations).
 *
 * Each record is a whole conversation state as a worker writes it after three turns (six
 * messages, three applied requests with their final events); its size is in the results.
 *
 * A restore that has not ended after RESTORE_TIMEOUT_MS is reported as stalled and the
 * bench exits non-zero: this benchmark found the store re-reading its first fetch forever
 * once a partition held more than one fetch response (10 MB), fixed in cefa4d6.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { SCHEMA_VERSION, conversationStateSchema, encodeRecord, type ConversationState } from "../../contracts/records.js";
import type { Admin, Kafka } from "kafkajs";
import { createKafka, createProducer } from "../../platform/kafka.js";
import { createLogger } from "../../platform/logger.js";
import { MemoryStore } from "../../worker/memory-store.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, type TargetCheck, fmt } from "../lib/scenario.js";
import { benchKafkaConfig, createTopics, stackSpec } from "../lib/stack.js";
import { median } from "../lib/stats.js";

const PARTITIONS = 6;
const RESTORE_TIMEOUT_MS = 30_000;
type Variant = "as shipped";
const REPLY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she saw a big red ball in the park. She ran to it and kicked it very hard. The ball went up high into the sky and Lily laughed. Her mom smiled and said, "Let\'s go home now."';

export function sampleState(id: string, now = Date.now()): ConversationState {
  const messages: ConversationState["messages"] = [];
  const applied: ConversationState["applied"] = [];
  for (let turn = 0; turn < 3; turn++) {
    const requestId = randomUUID();
    messages.push({ role: "user", content: `Tell me a story about a cat, number ${turn}.`, request_id: requestId, at: now });
    messages.push({ role: "assistant", content: REPLY, request_id: requestId, at: now });
    applied.push({
      request_id: requestId,
      final: {
        v: SCHEMA_VERSION,
        type: "final",
        request_id: requestId,
        conversation_id: id,
        tenant: "bench",
        attempt: `w-1.${now.toString(36)}`,
        seq: 7,
        at: now,
        reply: REPLY,
        stop_reason: "stop",
        usage: { prompt_tokens: 180, cached_prompt_tokens: 120, completion_tokens: 64 },
        timings: { queue_wait_ms: 3, time_to_first_token_ms: 2.5, generation_ms: 45.1 },
      },
    });
  }
  return conversationStateSchema.parse({
    v: SCHEMA_VERSION,
    type: "conversation",
    conversation_id: id,
    tenant: "bench",
    messages,
    applied,
    turns: 3,
    created_at: now,
    updated_at: now,
  });
}

interface Measure {
  variant: Variant;
  /** The restore had not ended after RESTORE_TIMEOUT_MS (the figures are then meaningless). */
  stalled: boolean;
  /** Conversations in the topic. */
  size: number;
  /** Conversations this restore read (the partitions it was given). */
  conversations: number;
  partitions: number;
  seconds: number;
  perSecond: number;
  megabytesPerSecond: number;
}

export const restoreScenario: Scenario = {
  id: "restore",
  title: "5. Memory restore from chat.memory: conversations per second at 10k and 100k",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const sizes = ctx.quick ? [10_000] : [10_000, 100_000];
    const repeats = ctx.quick ? 1 : 3;
    const spec = stackSpec(ctx.brokers, "restore", PARTITIONS);
    await createTopics(spec);
    const logger = createLogger("bench", "fatal");
    const kafka = createKafka(benchKafkaConfig(ctx.brokers, "bench-restore"), logger);
    const producer = createProducer(kafka);
    await producer.connect();
    const admin = kafka.admin();
    await admin.connect();
    const recordBytes = encodeRecord(sampleState("conversation-000000")).length;
    const allPartitions = Array.from({ length: PARTITIONS }, (_, p) => p);
    const measures: Measure[] = [];
    try {
      let written = 0;
      for (const size of sizes) {
        ctx.log(`writing ${size - written} conversation states (${recordBytes} bytes each)`);
        const started = performance.now();
        for (let i = written; i < size; i += 1000) {
          const messages = [];
          for (let j = i; j < Math.min(size, i + 1000); j++) {
            const id = `conversation-${j.toString().padStart(6, "0")}`;
            messages.push({ key: id, value: encodeRecord(sampleState(id)) });
          }
          await producer.send({ topic: spec.topics.memory, acks: -1, messages });
        }
        ctx.log(`  written in ${fmt((performance.now() - started) / 1000, 1)} s`);
        written = size;
        for (const variant of ["as shipped"] as const) {
          const client = kafka;
          for (let r = 0; r < repeats; r++) {
            const m = await restoreOnce(client, admin, producer, spec.topics.memory, size, allPartitions, recordBytes, logger, variant);
            measures.push(m);
            ctx.log(
              `  ${variant}, all ${PARTITIONS} partitions: ${m.stalled ? `STALLED (not done after ${RESTORE_TIMEOUT_MS / 1000} s)` : `${fmt(m.perSecond, 0)} conversations/s`}`,
            );
            if (m.stalled) break;
          }
          if (measures.at(-1)!.stalled) continue;
          const one = await restoreOnce(client, admin, producer, spec.topics.memory, size, [0], recordBytes, logger, variant);
          measures.push(one);
          ctx.log(`  ${variant}, one partition: ${one.stalled ? "STALLED" : `${fmt(one.perSecond, 0)} conversations/s`}`);
        }
      }
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }

    const rows: Row[] = [];
    const targets: TargetCheck[] = [];
    const broken: string[] = [];
    for (const size of sizes) {
      for (const variant of ["as shipped"] as const) {
        const all = measures.filter((m) => m.partitions === PARTITIONS && m.size === size && m.variant === variant);
        const one = measures.find((m) => m.partitions === 1 && m.size === size && m.variant === variant);
        const stalled = all.some((m) => m.stalled);
        const rate = stalled ? 0 : median(all.map((m) => m.perSecond));
        rows.push({
          figure: `${size / 1000}k conversations, all ${PARTITIONS} partitions: restored per second${stalled ? "" : ` (median of ${all.length})`}`,
          measured: stalled ? `stalled: not done after ${RESTORE_TIMEOUT_MS / 1000} s` : `${fmt(rate, 0)}/s`,
          compared: stalled
            ? `${fmt((size * recordBytes) / PARTITIONS / 1e6, 1)} MB per partition, more than one fetch response (10 MB)`
            : `${fmt(rate / 20_000, 2)}x the 20k/s target; ${fmt(median(all.map((m) => m.seconds)), 2)} s, ${fmt(median(all.map((m) => m.megabytesPerSecond)), 0)} MB/s`,
        });
        if (one) {
          rows.push({
            figure: `${size / 1000}k conversations, one partition`,
            measured: one.stalled ? "stalled" : `${fmt(one.perSecond, 0)}/s (${one.conversations} conversations)`,
            compared: one.stalled ? "" : `${fmt(one.perSecond / rate, 2)}x the all-partition rate; ${fmt(one.seconds, 2)} s`,
          });
        }
        if (stalled) broken.push(`restore of ${size / 1000}k conversations never ended (within ${RESTORE_TIMEOUT_MS / 1000} s)`);
        targets.push({
          target: `restore >= 20k conversations/s at ${size / 1000}k`,
          measured: stalled ? "stalled: never ended" : `${fmt(rate, 0)}/s`,
          met: !stalled && rate >= 20_000,
          ...(!stalled && rate >= 20_000
            ? {}
            : {
                why: stalled
                  ? "the restore never reached its fence: see the worker's memory reader (it must resolve the offsets of what it read, or kafkajs fetches the same batch again)"
                  : "kafkajs copies every fetch response into one buffer and decodes record by record in JavaScript (profile: Buffer copies, GC); see the MB/s",
              }),
        });
      }
    }
    return {
      rows,
      targets,
      notes: [
        `Each state is ${recordBytes} bytes of JSON (3 turns: 6 messages, 3 applied final events); ${PARTITIONS} partitions; kafkajs reader with maxBytesPerPartition 16 MB as the worker configures it. The store keeps records as bytes and decodes a conversation only when a turn needs it.`,
        "The rate includes the fence write per partition that marks the end of the restore.",
      ],
      raw: { recordBytes, partitions: PARTITIONS, restoreTimeoutMs: RESTORE_TIMEOUT_MS, measures },
      broken,
    };
  },
};

async function restoreOnce(
  kafka: Kafka,
  admin: Admin,
  producer: ReturnType<typeof createProducer>,
  topic: string,
  total: number,
  partitions: number[],
  recordBytes: number,
  logger: ReturnType<typeof createLogger>,
  variant: Variant,
  stateDir = mkdtempSync(path.join(os.tmpdir(), "bench-restore-")),
): Promise<Measure> {
  let conversations = 0;
  const store = new MemoryStore({
    kafka,
    admin,
    producer,
    topic,
    groupPrefix: `bench-restore-${randomUUID()}`,
    logger,
    metrics: { restoreSeconds: { observe: () => {} }, conversations: { set: (v) => (conversations = v) } },
    stateDir,
    conversationTtlMs: 7 * 24 * 3_600_000,
    partitions: PARTITIONS,
  });
  await store.start();
  try {
    const started = performance.now();
    store.assign(partitions);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      Promise.all(partitions.map((p) => store.ready(p))).then(() => "done" as const),
      new Promise<"stalled">((resolve) => (timer = setTimeout(() => resolve("stalled"), RESTORE_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    const seconds = (performance.now() - started) / 1000;
    if (outcome === "done" && partitions.length === PARTITIONS && conversations !== total)
      throw new Error(`restored ${conversations} conversations, expected ${total}`);
    return {
      variant,
      stalled: outcome === "stalled",
      size: total,
      conversations,
      partitions: partitions.length,
      seconds,
      perSecond: conversations / seconds,
      megabytesPerSecond: (conversations * recordBytes) / seconds / 1e6,
    };
  } finally {
    await store.stop();
  }
}
