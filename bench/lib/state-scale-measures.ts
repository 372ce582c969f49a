/**
 * The measures of the state-scale scenario (bench/scenarios/state-scale.ts), each run
 * against one code tree (before or after) through Kafka and HTTP only: real gateway and
 * worker processes of that tree, on stories260K.
 */
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { conversationStateSchema } from "../../contracts/records/memory.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import type { Service } from "../../testkit/services.js";
import { SseReader } from "../../testkit/sse.js";
import type { CodeTree } from "./before-tree.js";
import { gatewayEvents, keepAliveAgent, type HttpTimeline } from "./http-clients.js";
import { type ScenarioContext, fmt, sleep } from "./scenario.js";
import { benchKafkaConfig, createTopics, stackSpec, startGateway, startWorker, type StackSpec } from "./stack.js";
import { TurnTally, generatedId, generatedState, readTopic, writeStates } from "./state-records.js";

const MB = 1024 * 1024;
export const USER_MESSAGE = "Tell me a story about a little dog who finds a red ball in the park and learns to share it with his friends.";

interface Stack {
  spec: StackSpec;
  gateways: Service[];
  worker: Service | null;
}

async function stopAll(stack: Stack): Promise<void> {
  await Promise.all([...stack.gateways, ...(stack.worker ? [stack.worker] : [])].map((s) => s.stop().catch(() => null)));
  stack.gateways = [];
  stack.worker = null;
}

/**
 * POSTs a turn; the request id. A 503 (no partition owner known yet: a worker still
 * starting or restoring, once conversation checks ask the owner) is retried every 100 ms
 * until `timeoutMs`; anything else but 202 throws.
 */
async function postTurn(baseUrl: string, conversationId: string, body: { content: string; max_tokens?: number }, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${baseUrl}/v1/conversations/${encodeURIComponent(conversationId)}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as { request_id?: string };
    if (res.status === 202 && answer.request_id) return answer.request_id;
    if (res.status !== 503 || Date.now() > deadline) throw new Error(`gateway answered ${res.status}: ${JSON.stringify(answer)}`);
    await sleep(100);
  }
}

/** A fresh WORKER_STATE_DIR for one worker (removed by the caller), so no two share a store. */
async function stateDirFor(name: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `bench-${name}-`));
}

/** POSTs a turn (default max tokens) and follows its SSE stream; the final event's reply. */
async function turnReply(baseUrl: string, conversationId: string, content: string): Promise<string> {
  const requestId = await postTurn(baseUrl, conversationId, { content });
  return new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}/v1/requests/${requestId}/events`, { headers: { accept: "text/event-stream" } }, (stream) => {
      if (stream.statusCode !== 200) return reject(new Error(`SSE: HTTP ${stream.statusCode}`));
      const sse = new SseReader();
      stream.on("data", (chunk: Buffer) => {
        for (const m of sse.push(chunk)) {
          if (m.event === "final") {
            resolve((JSON.parse(m.data) as { reply: string }).reply);
            req.destroy();
          } else if (m.event === "error") {
            reject(new Error(`turn ended with an error: ${m.data}`));
            req.destroy();
          }
        }
      });
      stream.on("end", () => reject(new Error("SSE ended without a final event")));
    });
    req.setTimeout(120_000, () => req.destroy(new Error("SSE timed out")));
    req.on("error", (err) => reject(err));
  });
}

// ---- 1. chat.memory bytes per turn ----------------------------------------------------------

export interface TurnBytes {
  turn: number;
  memoryBytes: number;
  memoryRecords: number;
  historyBytes: number;
  newTextBytes: number;
}

export async function memoryPerTurn(ctx: ScenarioContext, tree: CodeTree, turns: number): Promise<TurnBytes[]> {
  const stack: Stack = { spec: stackSpec(ctx.brokers, `state-mem-${tree.label}`, 2), gateways: [], worker: null };
  await createTopics(stack.spec);
  const kafka = benchKafkaConfig(ctx.brokers, "bench-state-scale");
  const stateDir = await stateDirFor("state-mem");
  try {
    stack.worker = await startWorker(
      stack.spec,
      ctx.model,
      `w-mem-${tree.label}`,
      { LOG_LEVEL: "warn", WORKER_STATE_DIR: stateDir },
      tree.entry("worker/main.ts"),
    );
    stack.gateways.push(await startGateway(stack.spec, { LOG_LEVEL: "warn" }, tree.entry("gateway/main.ts")));
    const conversation = `mem-${tree.label}-${Date.now().toString(36)}`;
    const newText: number[] = [];
    for (let t = 1; t <= turns; t++) {
      const reply = await turnReply(stack.gateways[0]!.baseUrl, conversation, USER_MESSAGE);
      newText.push(Buffer.byteLength(USER_MESSAGE) + Buffer.byteLength(reply));
    }
    await stopAll(stack);
    const memory = new TurnTally("turns");
    await readTopic(kafka, stack.spec.topics.memory, (r) => {
      if (r.key === conversation && r.value) memory.add(r.value);
    });
    const history = new TurnTally("seq");
    await readTopic(kafka, stack.spec.topics.history, (r) => {
      if (r.key === conversation && r.value) history.add(r.value);
    });
    return newText.map((text, i) => ({
      turn: i + 1,
      memoryBytes: memory.at(i + 1).bytes,
      memoryRecords: memory.at(i + 1).records,
      historyBytes: history.at(i + 1).bytes,
      newTextBytes: text,
    }));
  } finally {
    await stopAll(stack);
    await rm(stateDir, { recursive: true, force: true });
  }
}

// ---- 2. gateway RSS with many stored conversations ------------------------------------------

export interface RssMeasure {
  tree: "before" | "after";
  conversations: number;
  readyS: number;
  rssMB: number;
  firstStatus: number;
  /** Statuses of GETs of SAMPLED conversations spread evenly over the written ones (the last included). */
  sample: Record<string, number>;
  /** Seconds from the gateway's readiness to the first-written conversation's answer. */
  firstReadS: number;
  /** The worker's RSS (after only: it owns the partitions), MB. */
  workerRssMB: number | null;
}

/** GET /v1/conversations/{id}; retries 503 (an owner still restoring) until `timeoutMs`. */
async function readConversation(baseUrl: string, id: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${baseUrl}/v1/conversations/${id}`);
    await res.arrayBuffer();
    if (res.status !== 503 || Date.now() > deadline) return res.status;
    await sleep(500);
  }
}

const SAMPLED = 100;

async function settledRss(gateway: Service): Promise<number> {
  await sleep(3000);
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    samples.push(gateway.memory().rss);
    await sleep(1000);
  }
  return samples.sort((a, b) => a - b)[1]!;
}

export async function gatewayRss(
  ctx: ScenarioContext,
  trees: CodeTree[],
  sizes: number[],
): Promise<{ measures: RssMeasure[]; recordBytes: number; writeS: number[] }> {
  const spec = stackSpec(ctx.brokers, "state-rss", 6);
  await createTopics(spec);
  const kafka = benchKafkaConfig(ctx.brokers, "bench-state-scale");
  const sample = generatedState(generatedId(0), Date.now());
  const valid = decodeRecord(conversationStateSchema, Buffer.from(sample));
  if (!valid.ok) throw new Error(`the generator's record is not a valid ConversationState for the working tree: ${JSON.stringify(valid)}`);
  const measures: RssMeasure[] = [];
  const writeS: number[] = [];
  const stateDir = await stateDirFor("state-rss");
  let worker: Service | null = null;
  try {
    let written = 0;
    for (const size of sizes) {
      // Only a partition's owner writes its memory, so the generator writes while no worker runs.
      await worker?.stop();
      worker = null;
      ctx.log(`writing ${size - written} conversation states (${sample.length} B each) to chat.memory`);
      const t0 = performance.now();
      await writeStates(kafka, spec.topics.memory, written, size);
      writeS.push((performance.now() - t0) / 1000);
      ctx.log(`  written in ${fmt(writeS.at(-1)!, 1)} s`);
      written = size;
      for (const tree of trees) {
        // After: conversation reads go to the owning worker, which must run and restore (the
        // same state dir each time: from what it applied before, where the tree has a store).
        if (tree.label === "after" && !worker)
          worker = await startWorker(spec, ctx.model, "w-rss", { LOG_LEVEL: "warn", WORKER_STATE_DIR: stateDir }, tree.entry("worker/main.ts"));
        const started = performance.now();
        const gateway = await startGateway(spec, { LOG_LEVEL: "warn" }, tree.entry("gateway/main.ts"), 900_000);
        try {
          const readyS = (performance.now() - started) / 1000;
          const t1 = performance.now();
          const firstStatus = await readConversation(gateway.baseUrl, generatedId(0), 300_000);
          const firstReadS = (performance.now() - t1) / 1000;
          const sample: Record<string, number> = {};
          const ids = Array.from({ length: SAMPLED }, (_, i) => generatedId(i === SAMPLED - 1 ? size - 1 : Math.floor((i * size) / SAMPLED)));
          for (let i = 0; i < ids.length; i += 8) {
            const statuses = await Promise.all(ids.slice(i, i + 8).map((id) => readConversation(gateway.baseUrl, id, 60_000)));
            for (const st of statuses) sample[st] = (sample[st] ?? 0) + 1;
          }
          const rssMB = (await settledRss(gateway)) / MB;
          const workerRssMB = tree.label === "after" && worker ? worker.memory().rss / MB : null;
          measures.push({ tree: tree.label, conversations: size, readyS, rssMB, firstStatus, sample, firstReadS, workerRssMB });
          ctx.log(
            `  ${tree.label}, ${size} conversations: ready in ${fmt(readyS, 1)} s, RSS ${fmt(rssMB, 0)} MB, first-written ${firstStatus} (after ${fmt(firstReadS, 1)} s), ${SAMPLED} sampled: ${JSON.stringify(sample)}`,
          );
        } finally {
          await gateway.stop().catch(() => null);
        }
      }
    }
  } finally {
    await worker?.stop().catch(() => null);
    await rm(stateDir, { recursive: true, force: true });
  }
  return { measures, recordBytes: sample.length, writeS };
}

// ---- 3. gateway CPU per delivered token, 3 replicas vs 1 ------------------------------------

export interface CpuMeasure {
  tree: "before" | "after";
  replicas: number;
  turns: number;
  tokens: number;
  cpuS: number;
  perReplica: Array<{ cpuS: number; tokens: number; idleCpuPerS: number }>;
  wallS: number;
  /** CPU-seconds of the window less each replica's idle rate (measured just before) times the window. */
  netCpuS: number;
}

async function drive(gateways: Service[], label: string, turns: number, concurrency: number, maxTokens: number): Promise<Array<{ tokens: number }>> {
  const agents = gateways.map(() => keepAliveAgent(concurrency));
  const perGateway = gateways.map(() => ({ tokens: 0 }));
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async (_, slot) => {
        const g = slot % gateways.length;
        const conversation = `${label}-${slot}`;
        while (next < turns) {
          const i = next++;
          const t: HttpTimeline = { sentAt: performance.now(), completionTokens: 0, events: 0 };
          const id = await postTurn(gateways[g]!.baseUrl, conversation, { content: `Tell me story number ${i} about a cat.`, max_tokens: maxTokens });
          await gatewayEvents(gateways[g]!.baseUrl, id, agents[g]!, t);
          perGateway[g]!.tokens += t.completionTokens;
        }
      }),
    );
  } finally {
    for (const a of agents) a.destroy();
  }
  return perGateway;
}

/** Seconds over which each replica's idle CPU rate is read (/proc counts 10 ms ticks). */
const IDLE_S = 8;

export async function gatewayCpu(ctx: ScenarioContext, tree: CodeTree, turns: number, concurrency: number): Promise<CpuMeasure[]> {
  const maxTokens = 64;
  const stack: Stack = { spec: stackSpec(ctx.brokers, `state-cpu-${tree.label}`, 6), gateways: [], worker: null };
  await createTopics(stack.spec);
  const env = { LOG_LEVEL: "warn", GATEWAY_EVENTS_GROUP_ID: `${stack.spec.prefix}gateways` };
  const out: CpuMeasure[] = [];
  const stateDir = await stateDirFor("state-cpu");
  try {
    stack.worker = await startWorker(
      stack.spec,
      ctx.model,
      `w-cpu-${tree.label}`,
      { LOG_LEVEL: "warn", WORKER_SLOTS: "4", WORKER_STATE_DIR: stateDir },
      tree.entry("worker/main.ts"),
    );
    for (const replicas of [1, 3]) {
      while (stack.gateways.length < replicas) stack.gateways.push(await startGateway(stack.spec, env, tree.entry("gateway/main.ts")));
      await sleep(2000);
      await drive(stack.gateways, `warm-${tree.label}-${replicas}`, concurrency, concurrency, maxTokens);
      await sleep(1000);
      // The idle cost (Kafka readers polling, timers), so the window's delivery cost can be told from it.
      const idle0 = stack.gateways.map((g) => g.cpuSeconds());
      await sleep(IDLE_S * 1000);
      const cpu0 = stack.gateways.map((g) => g.cpuSeconds());
      const idleCpuPerS = cpu0.map((c, i) => (c - idle0[i]!) / IDLE_S);
      const t0 = performance.now();
      const delivered = await drive(stack.gateways, `cpu-${tree.label}-${replicas}`, turns, concurrency, maxTokens);
      const wallS = (performance.now() - t0) / 1000;
      const perReplica = stack.gateways.map((g, i) => ({ cpuS: g.cpuSeconds() - cpu0[i]!, tokens: delivered[i]!.tokens, idleCpuPerS: idleCpuPerS[i]! }));
      const cpuS = perReplica.reduce((a, r) => a + r.cpuS, 0);
      const m: CpuMeasure = {
        tree: tree.label,
        replicas,
        turns,
        tokens: perReplica.reduce((a, r) => a + r.tokens, 0),
        cpuS,
        perReplica,
        wallS,
        netCpuS: cpuS - perReplica.reduce((a, r) => a + r.idleCpuPerS * wallS, 0),
      };
      out.push(m);
      ctx.log(
        `  ${tree.label}, ${replicas} replica(s): ${fmt(perK(m), 3)} CPU-s per 1k tokens, ${fmt(perK({ cpuS: m.netCpuS, tokens: m.tokens }), 3)} less idle (${m.tokens} tokens, ${fmt(m.cpuS, 2)} CPU-s, ${fmt(wallS, 1)} s)`,
      );
    }
  } finally {
    await stopAll(stack);
    await rm(stateDir, { recursive: true, force: true });
  }
  return out;
}

/** CPU-seconds per 1,000 tokens. */
export const perK = (m: { cpuS: number; tokens: number }) => (m.cpuS / m.tokens) * 1000;

// ---- 4. restore of a partition through a worker process: cold, then warm after 1% changed ---

export interface RestoreMeasure {
  tree: "before" | "after";
  kind: "cold" | "warm";
  conversations: number;
  /** From the worker's spawn to /readyz answering 2xx. */
  readyS: number;
  /** From the worker's spawn to the first delta of a turn on a stored conversation (posted before). */
  servedS: number;
  /** The worker's kafka_llm_memory_restore_seconds (sum over its restores) when it exports it. */
  restoreMetricS: number | null;
}

async function restoreMetric(worker: Service): Promise<number | null> {
  try {
    const text = await (await fetch(`${worker.baseUrl}/metrics`)).text();
    const m = /^kafka_llm_memory_restore_seconds_sum(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * One chat.memory partition of `size` generated conversations; a worker of `tree` starts on it
 * (cold: an empty state dir), serves a turn, stops (SIGTERM); 1% of the conversations change;
 * it starts again on the same state dir (warm, where the tree has a store).
 */
export async function workerRestore(ctx: ScenarioContext, tree: CodeTree, size: number): Promise<RestoreMeasure[]> {
  const spec = stackSpec(ctx.brokers, `state-restore-${tree.label}`, 1);
  await createTopics(spec);
  const kafka = benchKafkaConfig(ctx.brokers, "bench-state-scale");
  await writeStates(kafka, spec.topics.memory, 0, size);
  const stateDir = await stateDirFor("state-restore");
  const gateway = await startGateway(spec, { LOG_LEVEL: "warn" }, tree.entry("gateway/main.ts"), 300_000);
  const out: RestoreMeasure[] = [];
  try {
    for (const kind of ["cold", "warm"] as const) {
      if (kind === "warm") await writeStates(kafka, spec.topics.memory, 0, Math.ceil(size / 100), { at: Date.now() + 1 });
      const conversation = generatedId(size - 1 - out.length);
      const started = performance.now();
      const worker = await startWorker(
        spec,
        ctx.model,
        `w-restore-${tree.label}`,
        { LOG_LEVEL: "warn", WORKER_STATE_DIR: stateDir },
        tree.entry("worker/main.ts"),
      );
      try {
        const readyS = (performance.now() - started) / 1000;
        const t: HttpTimeline = { sentAt: performance.now(), completionTokens: 0, events: 0 };
        const id = await postTurn(gateway.baseUrl, conversation, { content: "And then?", max_tokens: 16 }, 300_000);
        await gatewayEvents(gateway.baseUrl, id, false, t, { timeoutMs: 300_000 });
        const servedS = (t.firstTextAt! - started) / 1000;
        const m: RestoreMeasure = { tree: tree.label, kind, conversations: size, readyS, servedS, restoreMetricS: await restoreMetric(worker) };
        out.push(m);
        ctx.log(
          `  ${tree.label}, ${kind}: ready ${fmt(readyS, 2)} s, first delta of a stored conversation ${fmt(servedS, 2)} s after spawn; restore metric ${m.restoreMetricS === null ? "absent" : `${fmt(m.restoreMetricS, 3)} s`}`,
        );
      } finally {
        await worker.stop();
      }
    }
  } finally {
    await gateway.stop().catch(() => null);
    await rm(stateDir, { recursive: true, force: true });
  }
  return out;
}
