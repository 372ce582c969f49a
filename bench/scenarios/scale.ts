/**
 * 7. Scale events: while 3 workers are busy, a fourth joins, then one of the four leaves
 * (SIGTERM: it finishes its running turns and leaves the group). Run once per setting of the
 * workers' consumer (bench/scale/kafka-clients.ts: librdkafka): as shipped on KIP-848, with
 * a short drain bound, and on the classic protocol (cooperative-sticky). Earlier runs
 * compared kafkajs and @platformatic/kafka too; their figures are kept in
 * bench/results/scale.json's history and docs/benchmarks.md.
 *
 * Workers are simulated (bench/scale/sim-worker.ts: a 1-5 s turn per record, 4 partitions
 * at a time, heartbeats as the real worker sends them, commit after each turn); 12
 * partitions, each kept at two queued records, so every partition always has work. From the workers'
 * own records of every turn (start, end, ticks) it counts, per event:
 *
 *   in flight   turns running when the event happened
 *   stalled     turns whose 50 ms ticks paused for more than 250 ms (a blocked event loop)
 *   aborted     turns stopped because the client reported the member's partitions lost
 *   handed over turns stopped at the drain bound, their reply continued by the next owner
 *   re-run      records started again from scratch (a turn that was neither committed nor
 *               handed over before its partition moved); a handed-over turn's continuation
 *               is not a re-run
 *   stop        per partition, the longest pause between one turn's end and the next one's
 *               start in the event's window: for partitions that kept their owner (they
 *               need not stop at all) and for those that moved (the handover)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { ensureTopics } from "../../platform/topic-admin.js";
import { REPO_ROOT } from "../../testkit/services.js";
import { benchKafkaConfig } from "../lib/stack.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt, sleep } from "../lib/scenario.js";
import { median } from "../lib/stats.js";
import type { ClientKind } from "../scale/kafka-clients.js";

const PARTITIONS = 12;
const SLOTS = 4;
const GEN_MS = 3000;
const SESSION_TIMEOUT_MS = 10_000;
/** The worker's default, as the real workers would heartbeat. */
const HEARTBEAT_INTERVAL_MS = loadWorkerConfig({ MODEL: "-", WORKER_HTTP_HOST: "127.0.0.1" }).consumer.heartbeatIntervalMs;
/** The worker's default (above the drain bound). */
const REBALANCE_TIMEOUT_MS = loadWorkerConfig({ MODEL: "-", WORKER_HTTP_HOST: "127.0.0.1" }).consumer.rebalanceTimeoutMs;
const STALL_MS = 250;
/** Records queued per partition, kept so. */
const BACKLOG = 2;
/** How long an event may take to settle before the run moves on (and reports what it saw). */
const WAIT_MS = 40_000;

interface Fact {
  worker: string;
  t: number;
  ev: string;
  p?: number;
  offset?: string;
  outcome?: string;
  maxTickGapMs?: number;
  partitions?: number[];
}

interface Turn {
  worker: string;
  p: number;
  offset: string;
  start: number;
  end: number | null;
  outcome: string | null;
  maxTickGapMs: number | null;
}

interface EventFigures {
  event: "add" | "remove" | "none";
  inFlight: number;
  stalled: number;
  aborted: number;
  handedOver: number;
  rerun: number;
  unmoved: number[];
  moved: number[];
  unmovedStopMs: { max: number; median: number; each: number[] };
  movedStopMs: { max: number; median: number; each: number[] };
  /** add: from the newcomer's join request to its first turn; remove: from SIGTERM to the last moved partition's first turn elsewhere. */
  settledAfterMs: number;
}

const epochNow = () => performance.timeOrigin + performance.now();

function spawnSim(kind: ClientKind, name: string, brokers: string, group: string, topic: string, facts: Fact[], onFact: (f: Fact) => void): ChildProcess {
  const proc = spawn(process.execPath, ["--import", "tsx", "bench/scale/sim-worker.ts"], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      SIM_CLIENT: kind,
      SIM_BROKERS: brokers,
      SIM_GROUP: group,
      SIM_TOPIC: topic,
      SIM_NAME: name,
      SIM_GEN_MS: String(GEN_MS),
      SIM_SLOTS: String(SLOTS),
      SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS),
      HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
      REBALANCE_TIMEOUT_MS: String(REBALANCE_TIMEOUT_MS),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let partial = "";
  proc.stdout!.on("data", (chunk: Buffer) => {
    partial += chunk.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      try {
        const fact = { worker: name, ...(JSON.parse(line) as Omit<Fact, "worker">) };
        facts.push(fact);
        onFact(fact);
      } catch {
        // not ours
      }
    }
  });
  let err = "";
  proc.stderr!.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  proc.on("exit", (code, signal) => {
    if (code !== 0 && signal !== "SIGKILL") facts.push({ worker: name, t: epochNow(), ev: "crashed", outcome: `${code ?? signal}: ${err}` });
  });
  return proc;
}

function turnsOf(facts: Fact[]): Turn[] {
  const turns: Turn[] = [];
  const open = new Map<string, Turn>();
  for (const f of [...facts].sort((a, b) => a.t - b.t)) {
    const key = `${f.worker}/${f.p}/${f.offset}`;
    if (f.ev === "start") {
      const turn = { worker: f.worker, p: f.p!, offset: f.offset!, start: f.t, end: null, outcome: null, maxTickGapMs: null };
      turns.push(turn);
      open.set(key, turn);
    } else if (f.ev === "end") {
      const turn = open.get(key);
      if (turn) {
        turn.end = f.t;
        turn.outcome = f.outcome ?? null;
        turn.maxTickGapMs = f.maxTickGapMs ?? null;
        open.delete(key);
      }
    }
  }
  return turns;
}

/** Who holds each partition at time t, from the members' own assigned/revoked facts. */
function ownersAt(facts: Fact[], t: number): Map<number, string> {
  const owners = new Map<number, string>();
  for (const f of facts) {
    if (f.t > t) break;
    if (f.ev === "assigned") for (const p of f.partitions ?? []) owners.set(p, f.worker);
    else if (f.ev === "revoked") for (const p of f.partitions ?? []) if (owners.get(p) === f.worker) owners.delete(p);
  }
  return owners;
}

/**
 * The longest stretch of [t0, t1] in which partition p ran no turn. Every partition has a
 * backlog, so any such stretch is the partition stopped (waiting on a rebalance, on another
 * partition's turn, or starved), whether or not a turn came before it.
 */
function longestIdle(turns: Turn[], p: number, t0: number, t1: number): number {
  let cursor = t0;
  let longest = 0;
  for (const x of turns.filter((y) => y.p === p).sort((a, b) => a.start - b.start)) {
    const s = Math.max(x.start, t0);
    const e = Math.min(x.end ?? t1, t1);
    if (e <= t0 || s >= t1) continue;
    if (s > cursor) longest = Math.max(longest, s - cursor);
    cursor = Math.max(cursor, e);
  }
  return Math.max(longest, t1 - cursor);
}

function analyse(event: "add" | "remove" | "none", t0: number, t1: number, turns: Turn[], facts: Fact[], gone?: string): EventFigures {
  const inFlight = turns.filter((x) => x.start < t0 && (x.end === null || x.end > t0));
  const window = turns.filter((x) => x.start >= t0 - GEN_MS && x.start < t1);
  const sorted = [...facts].sort((a, b) => a.t - b.t);
  const before = ownersAt(sorted, t0);
  const after = ownersAt(sorted, t1);
  // A member that left holds nothing, whether or not it said so (static members do not).
  for (const [p, w] of after) if (w === gone) after.delete(p);
  const unmoved: number[] = [];
  const moved: number[] = [];
  const stopOf = new Map<number, number>();
  for (let p = 0; p < PARTITIONS; p++) {
    (before.get(p) !== undefined && before.get(p) === after.get(p) ? unmoved : moved).push(p);
    stopOf.set(p, longestIdle(turns, p, t0, t1));
  }
  // Runs of each record, in start order: a run after one that was handed over continues it.
  const runs = new Map<string, Turn[]>();
  for (const x of [...turns].sort((a, b) => a.start - b.start)) runs.set(`${x.p}/${x.offset}`, [...(runs.get(`${x.p}/${x.offset}`) ?? []), x]);
  const rerun = [...runs.entries()].filter(
    ([key, list]) => list.slice(1).some((_, i) => list[i]!.outcome !== "handed_over") && window.some((x) => `${x.p}/${x.offset}` === key),
  ).length;
  const stats = (ps: number[]) => {
    const each = ps.map((p) => Math.round(stopOf.get(p)!));
    return { max: each.length ? Math.max(...each) : 0, median: each.length ? median(each) : 0, each };
  };
  return {
    event,
    inFlight: inFlight.length,
    stalled: window.filter((x) => (x.maxTickGapMs ?? 0) > STALL_MS).length,
    aborted: window.filter((x) => x.outcome === "aborted").length,
    handedOver: window.filter((x) => x.outcome === "handed_over").length,
    rerun,
    unmoved,
    moved,
    unmovedStopMs: stats(unmoved),
    movedStopMs: stats(moved),
    settledAfterMs: 0,
  };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

async function runClient(kind: ClientKind, ctx: ScenarioContext) {
  const id = randomBytes(3).toString("hex");
  const topic = `bench-scale-${kind}-${id}`;
  const group = `bench-scale-${kind}-${id}`;
  const logger = createLogger("bench", "fatal");
  const kafka = benchKafkaConfig(ctx.brokers, "bench-scale");
  const admin = new KafkaAdmin(kafka);
  try {
    // Created, and served by its leaders, before the workers join.
    await ensureTopics(admin, [{ name: topic, partitions: PARTITIONS, replicationFactor: 1, configs: {} }], logger);
  } finally {
    admin.close();
  }
  const producer = await KafkaProducer.connect(kafka, { logger });
  // A small queue on every partition, kept topped up: each finished turn puts one more
  // record on its partition (users who send their next message when a reply is done), so
  // every partition always has work, and a fetch finds a record or two per partition, as
  // under live traffic. One record per batch, as the gateway writes requests.
  for (let i = 0; i < BACKLOG; i++) {
    await producer.send({
      topic,
      messages: Array.from({ length: PARTITIONS }, (_, p) => ({ partition: p, key: `c-${p}`, value: Buffer.from(JSON.stringify({ p, i })) })),
    });
  }
  let topUps = Promise.resolve();
  const onFact = (f: Fact) => {
    if (f.ev !== "end" || f.p === undefined) return;
    const partition = f.p;
    topUps = topUps.then(() =>
      producer.send({ topic, messages: [{ partition, key: `c-${partition}`, value: Buffer.from("{}") }] }).then(
        () => undefined,
        () => undefined,
      ),
    );
  };

  const facts: Fact[] = [];
  const procs = new Map<string, ChildProcess>();
  const startSim = (name: string) => procs.set(name, spawnSim(kind, name, ctx.brokers, group, topic, facts, onFact));
  try {
    for (const name of ["w1", "w2", "w3"]) startSim(name);
    // Busy: every partition has started a turn (a client that runs fewer partitions at once
    // than it holds may never get there: then 30 s, and the steady-state row shows it).
    const covered = () => new Set(facts.filter((f) => f.ev === "start").map((f) => f.p)).size;
    const deadline = Date.now() + 30_000;
    while (covered() < PARTITIONS && Date.now() < deadline) {
      const crashed = facts.find((f) => f.ev === "crashed");
      if (crashed) throw new Error(`${kind}: ${crashed.worker} crashed: ${crashed.outcome}`);
      await sleep(200);
    }
    if (covered() === 0) throw new Error(`${kind}: the three workers ran no turn in 30 s`);
    const steadyFrom = epochNow();
    await sleep(ctx.quick ? 2 * GEN_MS : 4 * GEN_MS);

    ctx.log(`${kind}: a fourth worker joins`);
    const tAdd = epochNow();
    startSim("w4");
    // Until the newcomer runs turns (or gives up), then two turns' time for the group to settle.
    await waitFor(() => facts.some((f) => f.worker === "w4" && f.ev === "start"), WAIT_MS);
    await sleep(2 * GEN_MS);
    ctx.log(`${kind}: w1 leaves (SIGTERM)`);
    const tRemove = epochNow();
    procs.get("w1")!.kill("SIGTERM");
    // Until every partition has started a turn on one of the others, then one more turn's time.
    await waitFor(() => new Set(facts.filter((f) => f.ev === "start" && f.t > tRemove && f.worker !== "w1").map((f) => f.p)).size === PARTITIONS, WAIT_MS);
    await sleep(GEN_MS);
    const tEnd = epochNow();
    const crashed = facts.find((f) => f.ev === "crashed" && f.worker !== "w1");
    if (crashed) throw new Error(`${kind}: ${crashed.worker} crashed: ${crashed.outcome}`);

    const turns = turnsOf(facts);
    // The "add" event counts from when w4 asked to join (its process start is not the protocol's doing).
    const joinAt = facts.find((f) => f.worker === "w4" && f.ev === "joining")?.t ?? tAdd;
    const firstW4 = facts.find((f) => f.worker === "w4" && f.ev === "start")?.t;
    const events = [analyse("add", joinAt, tRemove, turns, facts), analyse("remove", tRemove, tEnd, turns, facts, "w1")];
    // Before any event: the share of the three workers' 12 slots that ran a turn.
    const busyFrom = steadyFrom;
    // The same measure over the steady window before any event: what "stop" is without one.
    const steady = analyse("none", busyFrom + GEN_MS, joinAt, turns, facts);
    const busyMs = turns.reduce((a, x) => a + Math.max(0, Math.min(x.end ?? joinAt, joinAt) - Math.max(x.start, busyFrom)), 0);
    const slotUse = busyMs / ((joinAt - busyFrom) * 3 * SLOTS);
    events[0]!.settledAfterMs = firstW4 === undefined ? Number.POSITIVE_INFINITY : firstW4 - joinAt;
    const lastMoved = Math.max(
      ...events[1]!.moved.map((p) => turns.find((x) => x.p === p && x.start > tRemove && x.worker !== "w1")?.start ?? Number.POSITIVE_INFINITY),
    );
    events[1]!.settledAfterMs = events[1]!.moved.length ? lastMoved - tRemove : 0;
    const t0 = Math.min(...facts.map((f) => f.t));
    const compact = turns.map((x) => ({
      w: x.worker,
      p: x.p,
      o: x.offset,
      s: Math.round(x.start - t0),
      e: x.end === null ? null : Math.round(x.end - t0),
      r: x.outcome,
    }));
    return {
      kind,
      events,
      steady,
      slotUse,
      facts: facts.length,
      timeline: { addAt: Math.round(joinAt - t0), removeAt: Math.round(tRemove - t0), turns: compact },
    };
  } finally {
    for (const proc of procs.values()) if (proc.exitCode === null) proc.kill("SIGKILL");
    await topUps;
    await producer.disconnect();
  }
}

export const scaleScenario: Scenario = {
  id: "scale",
  title: "7. Scale events with 3 busy workers: add a fourth, remove one; the workers' librdkafka consumer on KIP-848 and on the classic protocol",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const kinds: ClientKind[] = ["confluent-consumer", "confluent-consumer-drain1s", "confluent-classic"];
    const notes: string[] = [
      `Simulated workers (bench/scale/sim-worker.ts): turns of ${fmt(GEN_MS / 3000, 0)}-${fmt((5 * GEN_MS) / 3000, 0)} s (uniform), ${SLOTS} partitions at a time, ${PARTITIONS} partitions each kept at ${BACKLOG} queued records (a finished turn queues the next); SESSION_TIMEOUT_MS=${SESSION_TIMEOUT_MS}, HEARTBEAT_INTERVAL_MS=${HEARTBEAT_INTERVAL_MS}, REBALANCE_TIMEOUT_MS=${REBALANCE_TIMEOUT_MS}. Four model workers would need four spinning llama.cpp threads on 2 cores; the group protocol does not care what a turn computes.`,
      `"stopped" = the longest stretch of the event's window (from the event until the group settled and one more turn's time) in which the partition ran no turn; every partition has a backlog, so such a stretch is waiting on the rebalance, on another partition's turn, or starvation. The steady row gives the same measure over a window with no event. "moved"/"kept their owner" come from the members' own assignment callbacks.`,
    ];
    // Quick: the shipped consumer only.
    if (ctx.quick) kinds.splice(0, kinds.length, "confluent-consumer");
    // BENCH_SCALE_CLIENTS=confluent-consumer,confluent-classic picks settings (for development).
    const only = process.env.BENCH_SCALE_CLIENTS?.split(",");
    const results = [];
    for (const kind of kinds) if (!only || only.includes(kind)) results.push(await runClient(kind, ctx));

    const rows: Row[] = [];
    for (const r of results) {
      rows.push({
        figure: `${r.kind}: share of the 3 workers' ${3 * SLOTS} slots running a turn, before any event`,
        measured: `${fmt(r.slotUse * 100, 0)}%`,
        compared: `longest stretch a partition ran no turn, with no event: ${fmt(r.steady.unmovedStopMs.max / 1000, 2)} s (median ${fmt(r.steady.unmovedStopMs.median / 1000, 2)} s)`,
      });
      for (const e of r.events) {
        rows.push({
          figure: `${r.kind}, ${e.event === "add" ? "4th worker joins" : "1 of 4 leaves"}: partitions that kept their owner stopped for (max / median)`,
          measured: `${fmt(e.unmovedStopMs.max / 1000, 2)} / ${fmt(e.unmovedStopMs.median / 1000, 2)} s (${e.unmoved.length} partitions)`,
          compared: `moved partitions (${e.moved.length}): ${fmt(e.movedStopMs.max / 1000, 2)} / ${fmt(e.movedStopMs.median / 1000, 2)} s; ${e.event === "add" ? "newcomer's first turn" : "last moved partition running again"} ${Number.isFinite(e.settledAfterMs) ? `after ${fmt(e.settledAfterMs / 1000, 2)} s` : "not within the run"}; in flight ${e.inFlight}: stalled ${e.stalled}, aborted ${e.aborted}, handed over ${e.handedOver}, restarted ${e.rerun}`,
        });
      }
    }
    return {
      rows,
      targets: [],
      notes,
      raw: { partitions: PARTITIONS, slots: SLOTS, genMs: GEN_MS, sessionTimeoutMs: SESSION_TIMEOUT_MS, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS, results },
    };
  },
};
