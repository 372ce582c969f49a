/**
 * 17. Model pools (issue 27): what routing by model costs the gateway, and whether one pool's
 * burst reaches another's. Two measurements in one run, every figure a comparison within it.
 *
 * Routing cost. Two installs side by side on the broker, each a gateway of its own: one with
 * one pool (the default), one with four (default, p1, p2, p3: each its request topic and
 * group, and in the gateway its request reader, queued-notice watch, lag exporter and owner
 * lookup), every pool a worker on stories260K answering 4-token turns. Three configurations:
 * 1 pool, 4 pools with the requests round-robin over them, and the 4-pool install with every
 * request to its default pool (what having pools costs, apart from spreading the traffic).
 * Rounds run the three one after the other, the order turned by one every round. A
 * configuration's round: the gateway's idle CPU over a few seconds; native POSTs sent at a
 * fixed rate, each naming a model on a fresh conversation, not followed (the cost of
 * accepting: routing and the produce to the pool's topic); then as many again, each followed
 * on its SSE stream to the final (the cost of a whole turn). Gateway CPU is its process's and
 * its children's (bench/lib/process-tree.ts); accept latency is the POST's 202.
 *
 * Burst isolation. One install with two pools, A (default) and B, each one worker. A runs a
 * steady load (callers, one turn after another); B gets turns at a fixed rate, then ten times
 * that rate for a window (more than its worker can answer, so its lag grows), then its rate
 * again until its backlog is answered. A's completed turns per second and time to first token
 * are compared between the calm window and the burst window, with each pool's lag as the
 * gateway exports it (kafka_llm_consumer_group_total_lag{pool}) and each process's CPU.
 */
import type http from "node:http";
import { DEFAULT_POOL } from "../../contracts/pools.js";
import { topicNames } from "../../contracts/topics.js";
import { cpuSecondsOf, type Service } from "../../testkit/services.js";
import { treeCpuSeconds } from "../lib/process-tree.js";
import { keepAliveAgent } from "../lib/http-clients.js";
import { FixedRate, LagSampler, SteadyCallers, poolPost, poolTurn, untilListed, type PoolTarget, type PoolTurn } from "../lib/pool-load.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, type TargetCheck, fmt, sleep } from "../lib/scenario.js";
import { createTopics, stackSpec, startGateway, startWorker, type StackSpec } from "../lib/stack.js";
import { median, summarize } from "../lib/stats.js";
import { addPhaseDiff, meanPhaseMs, readTurnPhases, type PhaseTotals } from "../lib/turn-phases.js";
import { PROMPTS } from "./route.js";

/** The worker's phases of a turn (worker/turn-phases.ts). */
const WORKER_PHASES = ["load", "slot_wait", "first_token", "generate", "memory_write", "events", "commit"] as const;

const PARTITIONS = 4;
/** Routing cost: turns sent per second, and each turn's max_tokens. */
const ROUTE_RATE = 20;
const ROUTE_MAX_TOKENS = 4;
/** After the last accepted POST of an accept-only window, while the workers answer what was sent, ms. */
const ACCEPT_SETTLE_MS = 1500;
/** Routing cost: the gateway's 4-pool CPU per turn within this of 1 pool's (the bench's own bound; the issue sets none). */
const ROUTE_CPU_BOUND = 1.25;
/** Burst: A's callers and max_tokens; B's rate (turns/s) and max_tokens; the burst multiplies B's rate. */
const A_CALLERS = 2;
const A_MAX_TOKENS = 16;
const B_RATE = 2;
const B_MAX_TOKENS = 128;
const BURST_FACTOR = 10;
/** Each pool's worker slots in the burst measurement. */
const SLOTS = 4;

const modelOf = (pool: string) => `stories-${pool}`;
const poolIds = (n: number) => [DEFAULT_POOL, ...Array.from({ length: n - 1 }, (_, i) => `p${i + 1}`)];
const ok = (t: PoolTurn) => t.error === undefined && t.finalAt !== undefined;

/** An install of `pools` pools: its topics, a worker per pool, one gateway that has learnt them all. */
interface PoolStack {
  spec: StackSpec;
  pools: string[];
  gateway: Service;
  workers: Map<string, Service>;
}

/** An install's topics, its pools' included (one install at a time: two at once on a secured broker raced their ACLs). */
async function provisionPools(ctx: ScenarioContext, name: string, pools: readonly string[]): Promise<StackSpec> {
  const spec = stackSpec(ctx.brokers, name, PARTITIONS);
  await createTopics(spec);
  for (const pool of pools) if (pool !== DEFAULT_POOL) await createTopics({ ...spec, topics: topicNames(spec.prefix, pool) });
  return spec;
}

async function startPoolStack(
  ctx: ScenarioContext,
  spec: StackSpec,
  name: string,
  pools: readonly string[],
  env: { gateway?: Record<string, string>; worker?: Record<string, string> },
): Promise<PoolStack> {
  const stack: PoolStack = { spec, pools: [...pools], gateway: null as unknown as Service, workers: new Map() };
  try {
    stack.gateway = await startGateway(spec, { MODEL_NAME: modelOf(DEFAULT_POOL), LOG_LEVEL: "warn", ...env.gateway });
    const workers = await Promise.allSettled(
      pools.map((pool) =>
        startWorker(spec, ctx.model, `w-${name}-${pool}`, { WORKER_POOL: pool, MODEL_NAME: modelOf(pool), LOG_LEVEL: "warn", ...env.worker }),
      ),
    );
    workers.forEach((w, i) => w.status === "fulfilled" && stack.workers.set(pools[i]!, w.value));
    for (const w of workers) if (w.status === "rejected") throw w.reason;
    await untilListed(stack.gateway.baseUrl, pools.map(modelOf), {}, 60_000);
    return stack;
  } catch (err) {
    await stopPoolStack(stack);
    throw err;
  }
}

async function stopPoolStack(stack: PoolStack | null): Promise<void> {
  if (!stack) return;
  await stack.gateway?.stop().catch(() => {});
  await Promise.all([...stack.workers.values()].map((w) => w.stop().catch(() => {})));
}

// ---------------------------------------------------------------------------------------------
// Routing cost: 1 pool vs 4

/** The gateway's CPU seconds with its child processes (its group describer), and theirs alone. */
function gatewayCpu(gw: Service): { all: number; children: number } {
  const t = treeCpuSeconds(gw.pid);
  return { all: t.self + t.children, children: t.children };
}

/** One window of a round: gateway CPU (its children's too) from the first POST to the end, s; its wall time, s. */
interface RouteWindow {
  cpuS: number;
  /** Of cpuS, the gateway's child processes' (the group describer). */
  childCpuS: number;
  /** The broker's CPU over the window, s (when the run started the broker). */
  brokerCpuS?: number;
  windowS: number;
  ok: number;
  failed: number;
  acceptMs: number[];
  /** Whole turns (POST to final) and their time to first token, for the windows that follow the streams. */
  turnMs: number[];
  ttftMs: number[];
  /** The workers' mean time per turn in each phase (kafka_llm_turn_phase_seconds), ms. */
  workerPhaseMs: Record<string, number>;
}

interface RouteRound {
  install: string;
  round: number;
  /** Gateway CPU and wall time with nothing sent, s. */
  idle: { cpuS: number; s: number };
  /** POSTs only (accepted, never followed), then a settle while the workers answer them. */
  accept: RouteWindow;
  /** Whole turns: POST, then the SSE stream to the final. */
  turns: RouteWindow;
}

async function routeWindow(
  gw: Service,
  workers: readonly Service[],
  n: number,
  settleMs: number,
  send: (i: number) => Promise<PoolTurn>,
  done: (t: PoolTurn) => boolean,
  brokerPid: number | undefined,
): Promise<RouteWindow> {
  const brokerCpu = () => (brokerPid === undefined ? Number.NaN : cpuSecondsOf(brokerPid));
  const phasesBefore = await Promise.all(workers.map((w) => readTurnPhases(w.baseUrl)));
  const start = { cpu: gatewayCpu(gw), broker: brokerCpu(), at: performance.now() };
  const sender = new FixedRate(ROUTE_RATE, send);
  sender.start();
  while (sender.sent < n) await sleep(5);
  await sender.stop();
  await sleep(settleMs);
  const end = { cpu: gatewayCpu(gw), broker: brokerCpu(), at: performance.now() };
  const phases: PhaseTotals = new Map();
  const phasesAfter = await Promise.all(workers.map((w) => readTurnPhases(w.baseUrl)));
  phasesAfter.forEach((after, i) => addPhaseDiff(phases, phasesBefore[i]!, after));
  const good = sender.turns.filter(done);
  return {
    cpuS: end.cpu.all - start.cpu.all,
    childCpuS: end.cpu.children - start.cpu.children,
    ...(brokerPid !== undefined && { brokerCpuS: end.broker - start.broker }),
    windowS: (end.at - start.at) / 1000,
    ok: good.length,
    failed: sender.turns.length - good.length,
    acceptMs: good.map((t) => t.acceptedAt! - t.sentAt),
    turnMs: good.filter((t) => t.finalAt !== undefined).map((t) => t.finalAt! - t.sentAt),
    ttftMs: good.filter((t) => t.firstTextAt !== undefined).map((t) => t.firstTextAt! - t.sentAt),
    workerPhaseMs: meanPhaseMs(phases, WORKER_PHASES),
  };
}

/** What a round sends to: an install, and the pools its requests name (round-robin). */
interface RouteConfig {
  label: string;
  stack: PoolStack;
  pools: readonly string[];
}

async function routeRound(config: RouteConfig, round: number, n: number, idleMs: number, agent: http.Agent, brokerPid?: number): Promise<RouteRound> {
  const gw = config.stack.gateway;
  const idle0 = { cpu: gatewayCpu(gw).all, at: performance.now() };
  await sleep(idleMs);
  const idle = { cpuS: gatewayCpu(gw).all - idle0.cpu, s: (performance.now() - idle0.at) / 1000 };
  const targets: PoolTarget[] = config.pools.map((pool) => ({ pool, model: modelOf(pool) }));
  const args = (kind: string, i: number) =>
    [gw.baseUrl, agent, targets[i % targets.length]!, `${kind}-${round}-${i}`, PROMPTS[i % PROMPTS.length]!, ROUTE_MAX_TOKENS] as const;
  const workers = [...config.stack.workers.values()];
  const accept = await routeWindow(
    gw,
    workers,
    n,
    ACCEPT_SETTLE_MS,
    (i) => poolPost(...args("accept", i)),
    (t) => t.acceptedAt !== undefined,
    brokerPid,
  );
  const turns = await routeWindow(gw, workers, n, 0, (i) => poolTurn(...args("turn", i)), ok, brokerPid);
  return { install: config.label, round, idle, accept, turns };
}

interface RouteCost {
  turns: number;
  failed: number;
  /** Gateway CPU per request, ms: as measured, and less the gateway's idle CPU rate over the window. */
  cpuMs: number;
  netCpuMs: number;
  /** Of cpuMs, the group describer's (a child process). */
  childCpuMs: number;
  /** The broker's CPU per request, ms (NaN when the run did not start the broker). */
  brokerCpuMs: number;
  accept: ReturnType<typeof summarize>;
  turn: ReturnType<typeof summarize>;
  ttft: ReturnType<typeof summarize>;
  /** The workers' mean ms per turn in each phase, over every round. */
  workerPhaseMs: Record<string, number>;
}

interface RouteFigures {
  install: string;
  idleCpuMsPerS: number;
  accept: RouteCost;
  turns: RouteCost;
}

function routeFigures(install: string, rounds: readonly RouteRound[]): RouteFigures {
  const sum = (f: (r: RouteRound) => number) => rounds.reduce((a, r) => a + f(r), 0);
  const idleRate = sum((r) => r.idle.cpuS) / sum((r) => r.idle.s);
  const cost = (w: (r: RouteRound) => RouteWindow): RouteCost => {
    const n = sum((r) => w(r).ok);
    const cpu = sum((r) => w(r).cpuS);
    return {
      turns: n,
      failed: sum((r) => w(r).failed),
      cpuMs: (cpu / n) * 1000,
      childCpuMs: (sum((r) => w(r).childCpuS) / n) * 1000,
      brokerCpuMs: (sum((r) => w(r).brokerCpuS ?? Number.NaN) / n) * 1000,
      netCpuMs: ((cpu - idleRate * sum((r) => w(r).windowS)) / n) * 1000,
      accept: summarize(rounds.flatMap((r) => w(r).acceptMs)),
      turn: summarize(rounds.flatMap((r) => w(r).turnMs)),
      ttft: summarize(rounds.flatMap((r) => w(r).ttftMs)),
      workerPhaseMs: Object.fromEntries(WORKER_PHASES.map((p) => [p, sum((r) => w(r).workerPhaseMs[p]! * w(r).ok) / n])),
    };
  };
  return { install, idleCpuMsPerS: idleRate * 1000, accept: cost((r) => r.accept), turns: cost((r) => r.turns) };
}

const ONE = "1 pool";
const FOUR = "4 pools";
const FOUR_TO_ONE = "4 pools, all to default";

async function routingCost(ctx: ScenarioContext, one: PoolStack, four: PoolStack) {
  const rounds = ctx.quick ? 1 : 4;
  const n = ctx.quick ? 40 : 120;
  const idleMs = ctx.quick ? 2000 : 4000;
  const agent = keepAliveAgent(256);
  try {
    const configs: RouteConfig[] = [
      { label: ONE, stack: one, pools: one.pools },
      { label: FOUR, stack: four, pools: four.pools },
      { label: FOUR_TO_ONE, stack: four, pools: [DEFAULT_POOL] },
    ];
    ctx.log("routing cost: warm-up");
    for (const config of configs) await routeRound(config, -1, 20, 500, agent, ctx.brokerPid);
    const all: RouteRound[] = [];
    for (let round = 0; round < rounds; round++) {
      // The order turns by one every round, so no configuration always follows the same one.
      for (const config of configs.map((_, i) => configs[(i + round) % configs.length]!)) {
        const r = await routeRound(config, round, n, idleMs, agent, ctx.brokerPid);
        const per = (w: RouteWindow) => fmt((w.cpuS / w.ok) * 1000, 2);
        ctx.log(
          `routing cost: round ${round} ${config.label}: CPU ${per(r.accept)} ms an accepted POST, ${per(r.turns)} ms a whole turn, idle ${fmt((r.idle.cpuS / r.idle.s) * 1000, 1)} ms/s; accept p50 ${fmt(median(r.accept.acceptMs), 1)} ms`,
        );
        all.push(r);
      }
    }
    // Each round's CPU per request of `label` over the 1-pool one's in the same round.
    const paired = (label: string, w: (r: RouteRound) => RouteWindow) =>
      Array.from({ length: rounds }, (_, round) => {
        const [a, b] = [ONE, label].map((l) => w(all.find((r) => r.install === l && r.round === round)!));
        return b!.cpuS / b!.ok / (a!.cpuS / a!.ok);
      });
    const of = (label: string) =>
      routeFigures(
        label,
        all.filter((r) => r.install === label),
      );
    return {
      one: of(ONE),
      four: of(FOUR),
      fourToOne: of(FOUR_TO_ONE),
      paired: { accept: paired(FOUR, (r) => r.accept), turns: paired(FOUR, (r) => r.turns), turnsToOne: paired(FOUR_TO_ONE, (r) => r.turns) },
      rounds: all,
      perRound: n,
      idleMs,
    };
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Burst isolation: pool A's steady load while pool B bursts

const POOL_A = DEFAULT_POOL;
const POOL_B = "b";

interface CpuSnapshot {
  at: number;
  gateway: number;
  workerA: number;
  workerB: number;
  broker?: number;
}

interface PhaseFigures {
  phase: "calm" | "burst";
  rep: number;
  seconds: number;
  aTurnsPerS: number;
  aTtft: ReturnType<typeof summarize>;
  aAccept: ReturnType<typeof summarize>;
  aLagMax: number;
  aLagMean: number;
  bTurnsPerS: number;
  bSent: number;
  bLagMax: number;
  /** Each process's CPU over the window, in cores (1.0 = one CPU busy the whole window). */
  cores: { gateway: number; workerA: number; workerB: number; broker?: number };
}

function phaseFigures(
  phase: PhaseFigures["phase"],
  rep: number,
  window: { from: CpuSnapshot; to: CpuSnapshot },
  a: readonly PoolTurn[],
  b: readonly PoolTurn[],
  lag: LagSampler,
): PhaseFigures {
  const { from, to } = window;
  const seconds = (to.at - from.at) / 1000;
  const ended = (turns: readonly PoolTurn[]) => turns.filter((t) => ok(t) && t.finalAt! >= from.at && t.finalAt! < to.at);
  const sent = (turns: readonly PoolTurn[]) => turns.filter((t) => ok(t) && t.sentAt >= from.at && t.sentAt < to.at);
  const aLag = lag.between(POOL_A, from.at, to.at);
  const cores = (f: (s: CpuSnapshot) => number | undefined) => (f(to)! - f(from)!) / seconds;
  return {
    phase,
    rep,
    seconds,
    aTurnsPerS: ended(a).length / seconds,
    aTtft: summarize(sent(a).map((t) => t.firstTextAt! - t.sentAt)),
    aAccept: summarize(sent(a).map((t) => t.acceptedAt! - t.sentAt)),
    aLagMax: Math.max(0, ...aLag),
    aLagMean: aLag.length ? aLag.reduce((x, y) => x + y, 0) / aLag.length : 0,
    bTurnsPerS: ended(b).length / seconds,
    bSent: b.filter((t) => t.sentAt >= from.at && t.sentAt < to.at).length,
    bLagMax: Math.max(0, ...lag.between(POOL_B, from.at, to.at)),
    cores: {
      gateway: cores((s) => s.gateway),
      workerA: cores((s) => s.workerA),
      workerB: cores((s) => s.workerB),
      ...(from.broker !== undefined && { broker: cores((s) => s.broker) }),
    },
  };
}

async function burstIsolation(ctx: ScenarioContext, stack: PoolStack) {
  const reps = ctx.quick ? 1 : 2;
  const windowMs = ctx.quick ? 8000 : 15_000;
  const drainLimitMs = ctx.quick ? 45_000 : 90_000;
  const agentA = keepAliveAgent(16);
  const agentB = keepAliveAgent(2048);
  let callers: SteadyCallers | null = null;
  let sender: FixedRate | null = null;
  const base = stack.gateway.baseUrl;
  const sampler = new LagSampler(base, [POOL_A, POOL_B], 250);
  try {
    const snapshot = (): CpuSnapshot => ({
      at: performance.now(),
      gateway: gatewayCpu(stack.gateway).all,
      workerA: stack.workers.get(POOL_A)!.cpuSeconds(),
      workerB: stack.workers.get(POOL_B)!.cpuSeconds(),
      ...(ctx.brokerPid !== undefined && { broker: cpuSecondsOf(ctx.brokerPid) }),
    });
    const a: PoolTarget = { pool: POOL_A, model: modelOf(POOL_A) };
    const b: PoolTarget = { pool: POOL_B, model: modelOf(POOL_B) };
    callers = new SteadyCallers(A_CALLERS, (caller, i) => poolTurn(base, agentA, a, `a-${caller}-${i}`, PROMPTS[i % PROMPTS.length]!, A_MAX_TOKENS));
    sender = new FixedRate(B_RATE, (i) => poolTurn(base, agentB, b, `b-${i}`, `${PROMPTS[i % PROMPTS.length]!} Tell it long.`, B_MAX_TOKENS));
    sampler.start();
    callers.start();
    sender.start();
    await sleep(3000); // both loads steady
    const phases: PhaseFigures[] = [];
    const drains: Array<{ rep: number; seconds: number; drained: boolean; backlogAtBurstEnd: number }> = [];
    for (let rep = 0; rep < reps; rep++) {
      ctx.log(`burst ${rep}: calm (${windowMs / 1000} s: A ${A_CALLERS} callers, B ${B_RATE} turns/s)`);
      const c0 = snapshot();
      await sleep(windowMs);
      const c1 = snapshot();
      ctx.log(`burst ${rep}: B at ${B_RATE * BURST_FACTOR} turns/s for ${windowMs / 1000} s`);
      sender.setRate(B_RATE * BURST_FACTOR);
      await sleep(windowMs);
      sender.setRate(B_RATE);
      const c2 = snapshot();
      const endedByBurstEnd = sender.turns.length;
      const burstSent = sender.sent;
      // B's backlog answered (bounded wait): every turn sent up to the burst's end, and the
      // lag back to what B's worker holds (the turns sent at B's own rate meanwhile queued
      // behind the backlog; the next calm window must not measure their drain).
      const drainStart = performance.now();
      const backlogDone = () => sender!.turns.filter((t) => t.sentAt < c2.at).length >= burstSent && (sampler.latest(POOL_B) ?? 0) <= SLOTS;
      while (!backlogDone() && performance.now() - drainStart < drainLimitMs) await sleep(200);
      const drained = backlogDone();
      drains.push({ rep, seconds: (performance.now() - drainStart) / 1000, drained, backlogAtBurstEnd: burstSent - endedByBurstEnd });
      phases.push(phaseFigures("calm", rep, { from: c0, to: c1 }, callers.turns, sender.turns, sampler));
      phases.push(phaseFigures("burst", rep, { from: c1, to: c2 }, callers.turns, sender.turns, sampler));
      const last = phases.at(-1)!;
      ctx.log(
        `burst ${rep}: A ${fmt(phases.at(-2)!.aTurnsPerS, 1)} → ${fmt(last.aTurnsPerS, 1)} turns/s, TTFT p50 ${fmt(phases.at(-2)!.aTtft.p50, 1)} → ${fmt(last.aTtft.p50, 1)} ms; B lag peak ${last.bLagMax}, A lag max ${last.aLagMax}; drained in ${fmt(drains.at(-1)!.seconds, 1)} s`,
      );
      // B's peak lag may come after the window, while its backlog drains.
      last.bLagMax = Math.max(last.bLagMax, ...sampler.between(POOL_B, c2.at, performance.now()));
      if (!drained) break;
    }
    sampler.stop();
    await Promise.all([callers.stop(), sender.stop()]);
    const failures = [...callers.turns, ...sender.turns].filter((t) => !ok(t)).map((t) => `${t.pool}: ${t.error ?? "no final"}`);
    return { phases, drains, failures, windowMs, reps, aTurns: callers.turns.length, bTurns: sender.turns.length, lagSamples: sampler.samples.length };
  } finally {
    sampler.stop();
    await callers?.stop().catch(() => {});
    await sender?.stop().catch(() => {});
    agentA.destroy();
    agentB.destroy();
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Both measurements, each on installs of its own: the 1-pool and 4-pool installs run side by
 * side for the routing cost (their topics made one install after the other), and are stopped
 * before the burst install starts.
 */
async function measure(ctx: ScenarioContext) {
  const routeWorker = { DEFAULT_MAX_TOKENS: String(ROUTE_MAX_TOKENS), WORKER_SLOTS: "2", CONTEXT_SIZE: "512" };
  const stacks: PoolStack[] = [];
  const start = async (name: string, pools: readonly string[], env: Parameters<typeof startPoolStack>[4]) => {
    const stack = await startPoolStack(ctx, await provisionPools(ctx, name, pools), name, pools, env);
    stacks.push(stack);
    return stack;
  };
  try {
    ctx.log("routing cost: starting a 1-pool install and a 4-pool install (5 workers, 2 gateways)");
    const one = await start("pools1", poolIds(1), { worker: routeWorker });
    const four = await start("pools4", poolIds(4), { worker: routeWorker });
    const route = await routingCost(ctx, one, four);
    await Promise.all([stopPoolStack(one), stopPoolStack(four)]);
    ctx.log("burst: starting an install with pools A (default) and B, one worker each");
    const burstStack = await start("pools-burst", [POOL_A, POOL_B], { gateway: { LAG_REFRESH_MS: "1000" }, worker: { WORKER_SLOTS: String(SLOTS) } });
    const burst = await burstIsolation(ctx, burstStack);
    return { route, burst };
  } finally {
    await Promise.all(stacks.map(stopPoolStack));
  }
}

const sumOf = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

export const poolsScenario: Scenario = {
  id: "pools",
  title: "17. Model pools: the gateway's routing cost with 1 pool and 4, and a pool's throughput while another bursts",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const { route, burst } = await measure(ctx);

    const { one, four, fourToOne } = route;
    const rounds = route.rounds.filter((r) => r.install === ONE).length;
    const cpuRatio = four.accept.netCpuMs / one.accept.netCpuMs;
    const calm = burst.phases.filter((p) => p.phase === "calm");
    const bursting = burst.phases.filter((p) => p.phase === "burst");
    const mean = (ps: readonly PhaseFigures[], f: (p: PhaseFigures) => number) => sumOf(ps.map(f)) / Math.max(1, ps.length);
    const aRate = { calm: mean(calm, (p) => p.aTurnsPerS), burst: mean(bursting, (p) => p.aTurnsPerS) };
    const aTtft = { calm: median(calm.map((p) => p.aTtft.p50)), burst: median(bursting.map((p) => p.aTtft.p50)) };
    const bLagPeak = Math.max(0, ...bursting.map((p) => p.bLagMax));
    const bLagCalm = Math.max(0, ...calm.map((p) => p.bLagMax));
    const aLagBurst = Math.max(0, ...bursting.map((p) => p.aLagMax));
    const aLagCalm = Math.max(0, ...calm.map((p) => p.aLagMax));
    const cores = (ps: readonly PhaseFigures[], k: keyof PhaseFigures["cores"]) => mean(ps, (p) => p.cores[k] ?? Number.NaN);
    const aPerCpu = { calm: aRate.calm / cores(calm, "workerA"), burst: aRate.burst / cores(bursting, "workerA") };
    const perRep = burst.phases.map((p) => `${p.phase} ${p.rep}: A ${fmt(p.aTurnsPerS, 1)}/s, TTFT p50 ${fmt(p.aTtft.p50, 1)} ms`).join("; ");

    const phaseSum = (f: RouteFigures) => sumOf(Object.values(f.turns.workerPhaseMs));
    const x = (a: number, b: number) => `${fmt(b / a, 2)}x`;
    const range = (v: readonly number[]) => `${fmt(median(v), 2)}x median (${fmt(Math.min(...v), 2)}-${fmt(Math.max(...v), 2)})`;
    const rows: Row[] = [
      {
        figure: `gateway CPU per accepted request (its group-describer child included), 1 pool vs 4 pools: ${one.accept.turns} / ${four.accept.turns} native POSTs at ${ROUTE_RATE}/s naming a model (round-robin over the install's models), not followed`,
        measured: `${fmt(one.accept.cpuMs, 2)} vs ${fmt(four.accept.cpuMs, 2)} ms (${x(one.accept.cpuMs, four.accept.cpuMs)})`,
        compared: `net of each gateway's idle CPU: ${fmt(one.accept.netCpuMs, 2)} vs ${fmt(four.accept.netCpuMs, 2)} ms (${x(one.accept.netCpuMs, four.accept.netCpuMs)}); round by round ${range(route.paired.accept)}; 4 pools with every request to the default pool: ${fmt(fourToOne.accept.cpuMs, 2)} ms`,
      },
      {
        figure: "accept latency (POST to 202: routed, and acknowledged on its pool's topic), p50 / p99, 1 pool vs 4 pools",
        measured: `${fmt(one.accept.accept.p50, 2)} / ${fmt(one.accept.accept.p99, 1)} vs ${fmt(four.accept.accept.p50, 2)} / ${fmt(four.accept.accept.p99, 1)} ms`,
        compared: `p50 ${x(one.accept.accept.p50, four.accept.accept.p50)}, p99 ${x(one.accept.accept.p99, four.accept.accept.p99)}; with every stream followed: p50 ${fmt(one.turns.accept.p50, 2)} vs ${fmt(four.turns.accept.p50, 2)} ms (${x(one.turns.accept.p50, four.turns.accept.p50)})`,
      },
      {
        figure: `gateway CPU per whole turn (the same POSTs, each followed on its SSE stream to the final; ${ROUTE_MAX_TOKENS} tokens), 1 pool vs 4 pools`,
        measured: `${fmt(one.turns.cpuMs, 2)} vs ${fmt(four.turns.cpuMs, 2)} ms (${x(one.turns.cpuMs, four.turns.cpuMs)})`,
        compared: `net of idle ${x(one.turns.netCpuMs, four.turns.netCpuMs)}; round by round ${range(route.paired.turns)}; of which the group describer (child process) ${fmt(one.turns.childCpuMs, 2)} vs ${fmt(four.turns.childCpuMs, 2)} ms${Number.isNaN(one.turns.brokerCpuMs) ? "" : `; the broker's CPU per turn ${fmt(one.turns.brokerCpuMs, 2)} vs ${fmt(four.turns.brokerCpuMs, 2)} ms`}. 4 pools with every turn to the default pool: ${fmt(fourToOne.turns.cpuMs, 2)} ms (${range(route.paired.turnsToOne)})`,
      },
      {
        figure: "a whole turn's latency at the client (POST to the final), p50, and its time to first token p50, 1 pool vs 4 pools",
        measured: `${fmt(one.turns.turn.p50, 1)} vs ${fmt(four.turns.turn.p50, 1)} ms (${x(one.turns.turn.p50, four.turns.turn.p50)}); TTFT ${fmt(one.turns.ttft.p50, 1)} vs ${fmt(four.turns.ttft.p50, 1)} ms`,
        compared: `4 pools with every turn to the default pool: ${fmt(fourToOne.turns.turn.p50, 1)} ms, TTFT ${fmt(fourToOne.turns.ttft.p50, 1)} ms; the workers' own phases of a turn (kafka_llm_turn_phase_seconds, mean): ${fmt(phaseSum(one), 1)} vs ${fmt(phaseSum(four), 1)} ms (${fmt(phaseSum(fourToOne), 1)} to one pool)`,
      },
      {
        figure: "gateway CPU with no requests (each pool's request reader, queued-notice watch and lag exporter), 1 pool vs 4 pools",
        measured: `${fmt(one.idleCpuMsPerS, 1)} vs ${fmt(four.idleCpuMsPerS, 1)} ms CPU per s`,
        compared: `${fmt((four.idleCpuMsPerS - one.idleCpuMsPerS) / 3, 2)} ms/s per added pool (${rounds} idle windows of ${route.idleMs / 1000} s per install)`,
      },
      {
        figure: `pool A's completed turns/s and time to first token p50 (${A_CALLERS} steady callers, ${A_MAX_TOKENS} tokens): B calm (${B_RATE} turns/s) vs B bursting (${B_RATE * BURST_FACTOR} turns/s of ${B_MAX_TOKENS} tokens)`,
        measured: `${fmt(aRate.calm, 1)} → ${fmt(aRate.burst, 1)} turns/s (${fmt(aRate.burst / aRate.calm, 2)}x); TTFT p50 ${fmt(aTtft.calm, 1)} → ${fmt(aTtft.burst, 1)} ms (${fmt(aTtft.burst / aTtft.calm, 2)}x)`,
        compared: `${burst.reps} calm/burst pair(s) of ${burst.windowMs / 1000} s: ${perRep}`,
      },
      {
        figure: "lag per pool (the gateway's kafka_llm_consumer_group_total_lag{pool}): B's peak while bursting, A's most",
        measured: `B peak ${bLagPeak} (calm: ${bLagCalm}); A at most ${aLagBurst} while B bursts (calm: ${aLagCalm}; A has ${A_CALLERS} turns in flight)`,
        compared: `B's backlog answered ${burst.drains.map((d) => (d.drained ? `${fmt(d.seconds, 1)} s` : `not within ${fmt(d.seconds, 0)} s`)).join(", ")} after its burst ended; B answered ${fmt(
          mean(bursting, (p) => p.bTurnsPerS),
          1,
        )} turns/s while bursting`,
      },
      {
        figure: "CPU in cores (2 on this machine), calm → burst: worker A, worker B, gateway, broker",
        measured: `A ${fmt(cores(calm, "workerA"), 2)} → ${fmt(cores(bursting, "workerA"), 2)}, B ${fmt(cores(calm, "workerB"), 2)} → ${fmt(cores(bursting, "workerB"), 2)}, gateway ${fmt(cores(calm, "gateway"), 2)} → ${fmt(cores(bursting, "gateway"), 2)}${Number.isNaN(cores(calm, "broker")) ? "" : `, broker ${fmt(cores(calm, "broker"), 2)} → ${fmt(cores(bursting, "broker"), 2)}`}`,
        compared: `A's turns per CPU-second of its worker: ${fmt(aPerCpu.calm, 1)} calm, ${fmt(aPerCpu.burst, 1)} bursting (${x(aPerCpu.calm, aPerCpu.burst)}): A's throughput moves with the CPU its worker gets. The pools' workers share these 2 cores with each other, the gateway, the broker and the clients (and here other jobs on the machine); in a cluster each pool's workers run on nodes of their own`,
      },
    ];
    // A's own turns in flight, and one more: a turn's offset is committed just after its final, when its caller may have sent the next.
    const aLagBound = A_CALLERS + 1;
    const isolated = aLagBurst <= aLagBound && bLagPeak > aLagBound;
    const turnRatio = four.turns.cpuMs / one.turns.cpuMs;
    const latencyRatio = four.turns.turn.p50 / one.turns.turn.p50;
    const targets: TargetCheck[] = [
      {
        target: `Kafka-side isolation: while B's lag grows, A's stays within its own turns in flight (<= ${A_CALLERS} callers + 1)`,
        measured: `A at most ${aLagBurst} while B peaked at ${bLagPeak}`,
        met: isolated,
        ...(isolated
          ? {}
          : {
              why:
                bLagPeak <= aLagBound
                  ? "B's burst built no backlog: raise B_RATE or B_MAX_TOKENS until the burst outruns B's worker"
                  : "A's requests waited on its own topic while B burst: A's worker was slowed by the CPU B's worker took",
            }),
      },
      {
        target: `gateway CPU per accepted request (net of idle) with 4 pools within ${ROUTE_CPU_BOUND}x of 1 pool (the bench's own bound; the issue sets none)`,
        measured: `${fmt(cpuRatio, 2)}x`,
        met: cpuRatio <= ROUTE_CPU_BOUND,
        ...(cpuRatio <= ROUTE_CPU_BOUND
          ? {}
          : { why: "each pool's lanes (request reader, queued notices, lag exporter) cost the gateway CPU whether or not it has requests" }),
      },
      {
        target: `gateway CPU per whole turn (the stream followed) with 4 pools within ${ROUTE_CPU_BOUND}x of 1 pool (the bench's own bound)`,
        measured: `${fmt(turnRatio, 2)}x (${fmt(fourToOne.turns.cpuMs / one.turns.cpuMs, 2)}x with every turn to one pool); the broker's CPU per turn ${fmt(four.turns.brokerCpuMs / one.turns.brokerCpuMs, 2)}x`,
        met: turnRatio <= ROUTE_CPU_BOUND,
        ...(turnRatio <= ROUTE_CPU_BOUND
          ? {}
          : {
              why: "a followed turn costs the gateway more per pool it runs: look at what each pool's lanes do per stream (gateway/kafka/pool-lanes.ts). Before daff261 every waiting stream was watched by every pool's queue watch, and the pools that never read the request asked Kafka about it every 250 ms: 1.47x here then",
            }),
      },
      {
        target: `a whole turn's p50 at the client with 4 pools within ${ROUTE_CPU_BOUND}x of 1 pool (the bench's own bound)`,
        measured: `${fmt(latencyRatio, 2)}x (${fmt(one.turns.turn.p50, 1)} vs ${fmt(four.turns.turn.p50, 1)} ms; ${fmt(fourToOne.turns.turn.p50 / one.turns.turn.p50, 2)}x with every turn to one pool)`,
        met: latencyRatio <= ROUTE_CPU_BOUND,
        ...(latencyRatio <= ROUTE_CPU_BOUND
          ? {}
          : {
              why: "the time goes between the worker's event and the client, not in the worker (its phases are no slower), and no more CPU is spent: each of the gateway's Kafka consumers (a request reader per pool, chat.events' reader and group, chat.models' reader) waits in a consume of up to 100 ms on one of libuv's threads (platform/kafka/assigned-reader.ts), and Node has 4 of them by default: 4 consumers with 1 pool, 7 with 4, so the one reading chat.events waits for a thread. A diagnostic run with UV_THREADPOOL_SIZE=16 brought the 4-pool gateway's event delay (worker's event to client, median of 60 turns) from 21-31 ms back to 8-10 ms, as with 1 pool (8-9 ms)",
            }),
      },
    ];
    const broken = [
      ...(one.accept.failed + four.accept.failed + one.turns.failed + four.turns.failed > 0
        ? [`routing: ${one.accept.failed + four.accept.failed} POSTs and ${one.turns.failed + four.turns.failed} turns failed`]
        : []),
      ...(burst.failures.length > 0 ? [`burst: ${burst.failures.length} turns failed: ${burst.failures.slice(0, 3).join("; ")}`] : []),
    ];
    return {
      rows,
      targets,
      notes: [
        `Routing cost: two installs on the run's broker, each its gateway and a worker per pool (stories260K, one CPU thread, WORKER_SLOTS=2, ${PARTITIONS} partitions per request topic): 1 pool (default) and 4 pools (default, p1, p2, p3); every worker declares its pool on chat.models and each gateway learns its pools from there. Three configurations: 1 pool; 4 pools with requests round-robin over them; the same 4-pool install with every request to its default pool (what having pools costs, apart from spreading the traffic). ${rounds} rounds, each running the three one after the other, in an order turned by one every round. A configuration's round: the gateway's idle CPU over ${route.idleMs / 1000} s; then ${route.perRound} POSTs at ${ROUTE_RATE}/s, each a native turn on a fresh conversation naming a model (round-robin over the install's models), not followed, and ${ACCEPT_SETTLE_MS / 1000} s more while the workers answer them (the accepted-request figures); then ${route.perRound} more, each followed on its SSE stream to the final (the whole-turn figures). Gateway CPU is user+system from /proc over each window, the gateway's and its child process's (the worker-group describer, platform/kafka/group-describer.ts), also shown net of the gateway's idle CPU rate over the same time. Both gateways run with their default LAG_REFRESH_MS (5 s) and QUEUE_NOTICE_MS (3 s), LOG_LEVEL=warn.`,
        `All 5 workers and both gateways run at once on the machine's 2 cores (the idle install's processes beside the one measured); figures are ratios within this run.${four.accept.cpuMs < one.accept.cpuMs ? " The 4-pool gateway took less CPU per accepted request than the 1-pool one: the bench runs one gateway process per install and cannot tell a process's own speed from what its pools cost, so read it as no cost the bench can see, not as a saving." : ""}`,
        `Burst isolation: one install, pool A (default) and pool B, one worker each (stories260K, one CPU thread, WORKER_SLOTS=${SLOTS}); gateway LAG_REFRESH_MS=1000, its lag read every 250 ms. A: ${A_CALLERS} callers, one ${A_MAX_TOKENS}-token turn after another (fresh conversation each). B: turns of ${B_MAX_TOKENS} tokens started at ${B_RATE}/s whatever the replies do, raised to ${B_RATE * BURST_FACTOR}/s (${BURST_FACTOR}x) for the burst window, then back to ${B_RATE}/s until every turn sent by the burst's end is answered and B's lag is back within its slots (${SLOTS}). A's turns/s counts finals within a window; its TTFT is from before the POST to the first delta, for turns sent within the window.`,
        "On 2 cores the two pools' workers share CPU with each other and with the gateway, the broker and the clients: when B's worker runs flat out, A's worker has less of a core, so A's throughput and TTFT under the burst measure CPU sharing on this machine as well as the pools' separation. What pools separate is the queue: A's requests are on A's topic, read by A's group, so B's backlog never stands in front of them, which the lag row shows (A's lag stays at its own in-flight turns while B's grows).",
      ],
      raw: { route, burst },
      ...(broken.length > 0 && { broken }),
    };
  },
};
