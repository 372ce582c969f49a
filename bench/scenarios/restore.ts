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
 *
 * Warm against cold (the worker's disk-backed state store, worker/state-store.ts): one
 * partition of its own topic holding 100k conversations (10k with --quick) is restored into
 * a fresh state directory (cold); then 1% of its conversations are changed by another
 * writer while the partition is away, and it is restored again from the store's checkpoint
 * (warm): once by the same store regaining it, once by a new store on the same directory
 * (a restarted container on its emptyDir). Goal: warm >= 10x faster than cold.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { conversationStateSchema, type ConversationState } from "../../contracts/records/memory.js";
import { encodeRecord } from "../../contracts/records/codec.js";
import { recordApplied } from "../../worker/conversation.js";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
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
  let state = conversationStateSchema.parse({
    v: SCHEMA_VERSION,
    type: "conversation",
    conversation_id: id,
    tenant: "bench",
    messages: [],
    applied: [],
    turns: 0,
    created_at: now,
    updated_at: now,
  });
  const ids: string[] = [];
  for (let turn = 0; turn < 3; turn++) {
    const requestId = randomUUID();
    ids.push(requestId);
    // The applied entry as the worker records it (worker/conversation.ts), whatever its shape.
    const applied = recordApplied(
      state,
      requestId,
      {
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
      REPLY,
      {
        // As a worker that sent each final writes them: exact offsets, the reply held by the history.
        events: { partition: 0, offset: 1000 + turn * 40 },
        finalAt: (rid) => ({ partition: 0, offset: 1000 + ids.indexOf(rid) * 40 + 39 }),
      },
    );
    state = {
      ...state,
      messages: [
        ...state.messages,
        { role: "user", content: `Tell me a story about a cat, number ${turn}.`, request_id: requestId, at: now },
        { role: "assistant", content: REPLY, request_id: requestId, at: now },
      ],
      applied,
      turns: turn + 1,
    };
  }
  return conversationStateSchema.parse(state);
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
    const kafka = benchKafkaConfig(ctx.brokers, "bench-restore");
    const producer = await KafkaProducer.connect(kafka, { logger });
    const admin = new KafkaAdmin(kafka);
    const deps: StoreDeps = { kafka, admin, producer, logger };
    const recordBytes = encodeRecord(sampleState("conversation-000000")).length;
    const allPartitions = Array.from({ length: PARTITIONS }, (_, p) => p);
    const measures: Measure[] = [];
    let warm: WarmCold | undefined;
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
          await producer.send({ topic: spec.topics.memory, messages });
        }
        ctx.log(`  written in ${fmt((performance.now() - started) / 1000, 1)} s`);
        written = size;
        for (const variant of ["as shipped"] as const) {
          for (let r = 0; r < repeats; r++) {
            const m = await restoreOnce(deps, spec.topics.memory, size, allPartitions, recordBytes, variant);
            measures.push(m);
            ctx.log(
              `  ${variant}, all ${PARTITIONS} partitions: ${m.stalled ? `STALLED (not done after ${RESTORE_TIMEOUT_MS / 1000} s)` : `${fmt(m.perSecond, 0)} conversations/s`}`,
            );
            if (m.stalled) break;
          }
          if (measures.at(-1)!.stalled) continue;
          const one = await restoreOnce(deps, spec.topics.memory, size, [0], recordBytes, variant);
          measures.push(one);
          ctx.log(`  ${variant}, one partition: ${one.stalled ? "STALLED" : `${fmt(one.perSecond, 0)} conversations/s`}`);
        }
      }
      warm = await measureWarmCold(ctx, deps);
    } finally {
      await producer.disconnect();
      admin.close();
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
                  ? "the restore never reached its fence: see the worker's memory reader (it must move on past what it read, or it fetches the same batch again)"
                  : "the restore reads slower than the target; see the MB/s and profile the memory reader and the state store's writes",
              }),
        });
      }
    }
    if (warm) {
      const cold = median(warm.runs.map((r) => r.cold.seconds));
      const regained = median(warm.runs.map((r) => r.regained.seconds));
      const restarted = median(warm.runs.map((r) => r.restarted.seconds));
      const of = `median of ${warm.runs.length}`;
      rows.push(
        {
          figure: `one partition with ${warm.conversations / 1000}k conversations: cold restore (no state store)`,
          measured: `${fmt(cold, 2)} s (${of})`,
          compared: `${warm.runs[0]!.cold.records} records read; ${fmt(warm.conversations / cold, 0)} conversations/s`,
        },
        {
          figure: `the same, warm after 1% changed: partition revoked and regained`,
          measured: `${fmt(regained, 3)} s (${of})`,
          compared: `${fmt(cold / regained, 1)}x faster than cold; ${warm.runs[0]!.regained.records} records read`,
        },
        {
          figure: `the same, warm after 1% changed: a new store on the same directory (restarted container)`,
          measured: `${fmt(restarted, 3)} s (${of})`,
          compared: `${fmt(cold / restarted, 1)}x faster than cold; ${warm.runs[0]!.restarted.records} records read`,
        },
      );
      const slower = Math.max(regained, restarted);
      targets.push({
        target: `warm restore (1% changed) >= 10x faster than cold at ${warm.conversations / 1000}k conversations`,
        measured: `${fmt(cold / slower, 1)}x`,
        met: cold / slower >= 10,
        ...(cold / slower >= 10 ? {} : { why: "a warm restore still pays the fence write and the reader's seek and fetch round trips; see the raw figures" }),
      });
    }
    return {
      rows,
      targets,
      notes: [
        `Each state is ${recordBytes} bytes of JSON (3 turns: 6 messages, 3 applied final events); ${PARTITIONS} partitions; the worker's own memory reader (librdkafka by assignment, platform/kafka/assigned-reader.ts) as the worker configures it. The store keeps records as bytes and decodes a conversation only when a turn needs it.`,
        "The rate includes the fence write per partition that marks the end of the restore, and writing the records into the worker's LMDB state store (one transaction per fetch).",
        "Warm vs cold: the clock runs from assign() to the partition's fence being read (the store already started); a warm restore reads only the records after the store's checkpoint.",
      ],
      raw: { recordBytes, partitions: PARTITIONS, restoreTimeoutMs: RESTORE_TIMEOUT_MS, measures, warm },
      broken,
    };
  },
};

/** The clients a bench store is made with, as a worker's. */
interface StoreDeps {
  kafka: KafkaConfig;
  admin: KafkaAdmin;
  producer: KafkaProducer;
  logger: ReturnType<typeof createLogger>;
}

/** The worker's own store over `topic`, in `stateDir`, as a worker with `partitions` partitions makes it. */
function benchStore(deps: StoreDeps, topic: string, stateDir: string, partitions: number, onConversations: (n: number) => void = () => {}): MemoryStore {
  return new MemoryStore({
    kafka: deps.kafka,
    admin: deps.admin,
    producer: deps.producer,
    logger: deps.logger,
    topic,
    groupPrefix: `bench-restore-${randomUUID()}`,
    metrics: { restoreSeconds: { observe: () => {} }, conversations: { set: onConversations } },
    stateDir,
    conversationTtlMs: 7 * 24 * 3_600_000,
    partitions,
  });
}

/** Waits for `ready`, or RESTORE_TIMEOUT_MS: a restore that never ends is a finding, not a hang. */
async function readyOrStalled(ready: Promise<unknown>): Promise<"done" | "stalled"> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => "done" as const),
    new Promise<"stalled">((resolve) => (timer = setTimeout(() => resolve("stalled"), RESTORE_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  return outcome;
}

async function restoreOnce(deps: StoreDeps, topic: string, total: number, partitions: number[], recordBytes: number, variant: Variant): Promise<Measure> {
  // A fresh state directory: every restore here is cold, as the figures before the store were.
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "bench-restore-"));
  let conversations = 0;
  const store = benchStore(deps, topic, stateDir, PARTITIONS, (v) => (conversations = v));
  await store.start();
  try {
    const started = performance.now();
    store.assign(partitions);
    const outcome = await readyOrStalled(Promise.all(partitions.map((p) => store.ready(p))));
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
    rmSync(stateDir, { recursive: true, force: true });
  }
}

interface RestoreRun {
  seconds: number;
  /** Records the restore read (MemoryStore.lastRestore). */
  records: number;
  kind: string;
}

interface WarmCold {
  conversations: number;
  changed: number;
  runs: Array<{ cold: RestoreRun; regained: RestoreRun; restarted: RestoreRun }>;
}

/** Cold and warm restores of one partition of its own topic (see the header). */
async function measureWarmCold(ctx: ScenarioContext, deps: StoreDeps): Promise<WarmCold> {
  const { producer } = deps;
  const conversations = ctx.quick ? 10_000 : 100_000;
  const changed = conversations / 100;
  const repeats = ctx.quick ? 1 : 3;
  const spec = stackSpec(ctx.brokers, "restore-warm", 1);
  await createTopics(spec);
  const topic = spec.topics.memory;
  const idOf = (i: number) => `conversation-${i.toString().padStart(6, "0")}`;
  const write = async (ids: string[]) => {
    // 200 records (~0.8 MB) per send: one partition's batch must stay under the broker's 1 MB.
    for (let i = 0; i < ids.length; i += 200) {
      await producer.send({ topic, messages: ids.slice(i, i + 200).map((id) => ({ partition: 0, key: id, value: encodeRecord(sampleState(id)) })) });
    }
  };
  ctx.log(`warm vs cold: writing ${conversations} conversations to one partition`);
  await write(Array.from({ length: conversations }, (_, i) => idOf(i)));
  const someChanged = (round: number) => Array.from({ length: changed }, (_, i) => idOf((i * 97 + round * 13) % conversations));
  const newStore = (stateDir: string) => benchStore(deps, topic, stateDir, 1);
  const timed = async (store: MemoryStore): Promise<RestoreRun> => {
    const started = performance.now();
    store.assign([0]);
    const outcome = await readyOrStalled(store.ready(0));
    if (outcome === "stalled") throw new Error(`restore of ${conversations} conversations not done after ${RESTORE_TIMEOUT_MS / 1000} s`);
    const seconds = (performance.now() - started) / 1000;
    const last = store.lastRestore(0)!;
    return { seconds, records: last.records, kind: last.kind };
  };
  const runs: WarmCold["runs"] = [];
  for (let r = 0; r < repeats; r++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "bench-restore-warm-"));
    try {
      const first = newStore(dir);
      await first.start();
      const cold = await timed(first);
      first.assign([]);
      await write(someChanged(2 * r));
      const regained = await timed(first);
      first.assign([]);
      await first.stop();
      await write(someChanged(2 * r + 1));
      const second = newStore(dir);
      await second.start();
      const restarted = await timed(second);
      await second.stop();
      if (cold.kind !== "cold" || regained.kind !== "warm" || restarted.kind !== "warm")
        throw new Error(`expected cold, warm, warm restores, got ${cold.kind}, ${regained.kind}, ${restarted.kind}`);
      runs.push({ cold, regained, restarted });
      ctx.log(
        `  cold ${fmt(cold.seconds, 2)} s (${cold.records} records); warm, regained ${fmt(regained.seconds, 3)} s (${regained.records}); warm, restarted ${fmt(restarted.seconds, 3)} s (${restarted.records})`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { conversations, changed, runs };
}
