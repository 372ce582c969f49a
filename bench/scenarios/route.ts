/**
 * 1. What the Kafka route costs. The same turns (same prompts, same max_tokens, greedy,
 * so the same replies) go to the same model five ways, in interleaved rounds:
 *
 *   in-process     worker/generator.ts called here: the baseline
 *   rest           a plain HTTP call to one worker (bench/baselines/http-worker.ts)
 *   kafka          chat.requests → worker → chat.events, read by a Kafka client (no gateway)
 *   gateway        HTTP POST + SSE through the real gateway, then as `kafka`
 *   kafka-tx       as `kafka`, to a worker with WORKER_TRANSACTIONS=true (stories260K only):
 *                  what a turn costs when its writes and offset go in one Kafka transaction
 *                  instead of behind the memory log's fence
 *
 * Time to first token is measured by the caller, on one clock, from just before the call
 * to the arrival of the first text. Throughput is completion tokens over wall time, at
 * concurrency 1 (a single user), at concurrency = WORKER_SLOTS (as many callers as slots,
 * each waiting for its reply before the next call) and at twice that (saturated: a call is
 * always waiting, so what a turn costs besides generation can overlap another's
 * generation), with concurrent conversations on distinct partitions (a worker runs one
 * turn per partition at a time).
 *
 * Placement: during a route's turns the process that runs its model (the worker, the REST
 * worker, or this process for in-process) has a CPU to itself, and the broker, the gateway
 * and the clients share the other(s), as production keeps them off the GPU worker's
 * machine; on a 2-CPU box they would otherwise take the generating thread's CPU. The
 * worker's own Kafka work runs in its process, on the model's CPU, and is measured. One
 * more comparison at WORKER_SLOTS concurrent runs with every process on every CPU.
 *
 * Two models in one run: stories260K (1.2 MB, ~1,000 tokens/s on one thread, so the route's
 * fixed cost per turn weighs heavily) and the demo model Gemma 3 270M (~17 tokens/s, a
 * realistic ratio of generation to fixed cost), fewer turns on Gemma to keep the run short.
 * Targets: at WORKER_SLOTS concurrent callers, >= 0.95x in-process on Gemma and >= 0.8x on
 * stories260K; time to first token p50 <= +10 ms over in-process.
 *
 * Where a Kafka turn's fixed cost goes: the sequential Kafka turns' timelines (client side:
 * produce → start event seen → first delta → final seen) beside the worker's own phases
 * (kafka_llm_turn_phase_seconds from its /metrics, read around those turns: load, slot
 * wait, first token, generate, memory write, events, commit), for either fence. A turn's
 * fixed cost is the client's final less the worker's generation time; through the gateway,
 * from before the POST to the final on the SSE stream. Targets for stories260K: at most
 * 5 ms p50 on the Kafka route, 10 ms through the gateway.
 */
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { newConversation, promptFor } from "../../worker/conversation.js";
import { loadInProcess } from "../baselines/in-process.js";
import { gatewayTurn, keepAliveAgent, restGenerate } from "../lib/http-clients.js";
import { LOCAL_TENANT } from "../../gateway/auth.js";
import { BENCH_TENANT, BenchChat } from "../lib/kafka-chat.js";
import path from "node:path";
import { ensureGemma270m } from "../../scripts/models.js";
import { describeLlama } from "../lib/llama-settings.js";
import { addPhaseDiff, meanPhaseMs, readTurnPhases, type PhaseTotals } from "../lib/turn-phases.js";
import { KeyMaker } from "../lib/partitions.js";
import { freePort, startService, type Service } from "../../testkit/services.js";
import { cpuPlacement, placeProcess } from "../lib/cpu-placement.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, type TargetCheck, fmt, ms } from "../lib/scenario.js";
import { createTopics, stackSpec, startGateway, startWorker } from "../lib/stack.js";
import { median, summarize, type Summary } from "../lib/stats.js";

export const PROMPTS = [
  "Tell me a story about a cat.",
  "Once upon a time there was a little dog.",
  "What did the bird see in the garden?",
  "Lily went to the park with her mom.",
  "Write about a boy who found a red ball.",
  "The sun was shining and Tom was happy.",
  "Can you tell me about the big tree?",
  "A little girl had a toy car.",
];
const MAX_TOKENS = 64;
const SLOTS = 4;
const PARTITIONS = 8;

type RouteName = "in-process" | "rest" | "kafka" | "gateway" | "kafka-tx";
const ROUTES: RouteName[] = ["in-process", "rest", "kafka", "gateway"];
/** The Kafka routes whose sequential turns are broken down (the route, and how its worker fences). */
const BROKEN_DOWN = [
  { route: "kafka", fence: "log fence" },
  { route: "kafka-tx", fence: "WORKER_TRANSACTIONS=true" },
] as const;

interface Sample {
  ttftMs: number;
  totalMs: number;
  tokens: number;
  /** The worker's generation time, where the route reports it (its final's timings). */
  generationMs?: number;
}

interface PhaseResult {
  samples: Sample[];
  wallMs: number;
  tokens: number;
}

type Call = (lane: number, index: number) => Promise<Sample>;

async function runPhase(call: Call, concurrency: number, requests: number): Promise<PhaseResult> {
  const samples: Sample[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      for (let i = lane; i < requests; i += concurrency) samples.push(await call(lane, i));
    }),
  );
  const wallMs = performance.now() - started;
  return { samples, wallMs, tokens: samples.reduce((a, s) => a + s.tokens, 0) };
}

/** One Kafka turn's timeline, ms from the produce call (client clock) or as the worker timed it. */
interface KafkaTurnTimes {
  startSeenMs: number;
  firstDeltaSeenMs: number;
  finalSeenMs: number;
  workerQueueWaitMs: number;
  workerTtftMs: number;
  workerGenerationMs: number;
}

const WORKER_PHASES = ["load", "slot_wait", "first_token", "generate", "memory_write", "events", "commit"] as const;

interface ModelRun {
  label: string;
  file: string;
  rounds: number;
  seqPerRound: number;
  concPerRound: number;
  /** Throughput target at SLOTS concurrent callers (x in-process). */
  concurrentTarget: number;
  /** Also the kafka-tx route, with its fixed-cost comparison, and the fixed-cost targets. */
  transactions: boolean;
}

interface RouteFigures {
  /** `fixed`: a turn's time less the worker's generation, on the routes that report it. */
  sequential: { ttft: Summary; total: Summary; tokensPerS: number; requests: number; meanTokens: number; fixed?: Summary };
  concurrent: { tokensPerS: number; requests: number; ttft: Summary };
  saturated: { tokensPerS: number; requests: number };
}

export const routeScenario: Scenario = {
  id: "route",
  title: "1. Kafka route vs in-process vs plain HTTP (REST) to one worker",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const models: ModelRun[] = [
      {
        label: path.basename(ctx.model, ".gguf"),
        file: ctx.model,
        rounds: ctx.quick ? 1 : 3,
        seqPerRound: ctx.quick ? 12 : 50,
        concPerRound: ctx.quick ? 16 : 80,
        concurrentTarget: 0.8,
        transactions: true,
      },
      {
        label: "gemma-3-270m",
        file: await ensureGemma270m(ctx.log),
        // 8 concurrent turns a round (2 per caller) made the ratio swing by 0.1 between runs.
        rounds: ctx.quick ? 1 : 3,
        seqPerRound: ctx.quick ? 2 : 4,
        concPerRound: ctx.quick ? 4 : 12,
        concurrentTarget: 0.95,
        transactions: false,
      },
    ];
    const out: ScenarioOutput = { rows: [], targets: [], notes: [], raw: {} };
    for (const [i, m] of models.entries()) {
      ctx.log(`model ${m.label}`);
      const r = await measureModel(ctx, m, `route${i}`);
      out.rows.push(...r.rows);
      out.targets.push(...r.targets);
      out.notes!.push(...(r.notes ?? []));
      (out.raw as Record<string, unknown>)[m.label] = r.raw;
    }
    return out;
  },
};

async function measureModel(ctx: ScenarioContext, m: ModelRun, name: string): Promise<ScenarioOutput> {
  const { rounds, seqPerRound, concPerRound } = m;
  const system = loadWorkerConfig({ MODEL: m.file, WORKER_HTTP_HOST: "127.0.0.1" }).memory.systemPrompt;
  const routes: RouteName[] = m.transactions ? [...ROUTES, "kafka-tx"] : ROUTES;

  const spec = stackSpec(ctx.brokers, name, PARTITIONS);
  await createTopics(spec);
  // The transactional worker has an install of its own (topics, group), so both fences see the same empty partitions.
  const txSpec = m.transactions ? stackSpec(ctx.brokers, `${name}tx`, PARTITIONS) : null;
  if (txSpec) await createTopics(txSpec);
  const children: Service[] = [];
  const chat = new BenchChat(ctx.brokers, spec.topics);
  const txChat = txSpec ? new BenchChat(ctx.brokers, txSpec.topics) : null;
  const agent = keepAliveAgent();
  const inproc = await loadInProcess(m.file, SLOTS);
  const placement = cpuPlacement();
  try {
    ctx.log(`starting worker${txSpec ? "s (log fence, WORKER_TRANSACTIONS)" : ""}, gateway and REST worker`);
    const workerEnv = { WORKER_SLOTS: String(SLOTS) };
    const worker = await startWorker(spec, m.file, `w-${name}`, workerEnv);
    children.push(worker);
    const txWorker = txSpec ? await startWorker(txSpec, m.file, `w-${name}-tx`, { ...workerEnv, WORKER_TRANSACTIONS: "true" }) : null;
    if (txWorker) children.push(txWorker);
    const gateway = await startGateway(spec);
    children.push(gateway);
    const restPort = await freePort();
    const rest = await startService({
      name: "rest-worker",
      entry: "bench/baselines/http-worker.ts",
      port: restPort,
      readyPath: "/readyz",
      timeoutMs: 120_000,
      env: { MODEL: m.file, WORKER_SLOTS: String(SLOTS), BENCH_HTTP_PORT: String(restPort) },
    });
    children.push(rest);
    await chat.start();
    await txChat?.start();

    // Conversations are spread over partitions by their key, tenant and id: BenchChat's tenant, the gateway's (no auth).
    const keys = new KeyMaker("route", PARTITIONS, BENCH_TENANT);
    const gatewayKeys = new KeyMaker("route-gw", PARTITIONS, LOCAL_TENANT);
    const messagesFor = (id: string, i: number) => promptFor(newConversation(id, BENCH_TENANT, Date.now()), PROMPTS[i % PROMPTS.length]!, system);
    let unique = 0;
    /** Set while a Kafka route's sequential turns run: their timelines are the breakdown's. */
    let kafkaTimes: KafkaTurnTimes[] | null = null;
    const breakdown = new Map<RouteName, { times: KafkaTurnTimes[]; phases: PhaseTotals }>();
    const kafkaCall =
      (via: BenchChat): Call =>
      async (lane, i) => {
        const t = await via.finished(await via.turn(keys.next(lane), PROMPTS[i % PROMPTS.length]!, { params: { max_tokens: MAX_TOKENS } }));
        kafkaTimes?.push({
          startSeenMs: (t.startAt ?? t.finalAt) - t.sentAt,
          firstDeltaSeenMs: (t.firstDeltaAt ?? t.finalAt) - t.sentAt,
          finalSeenMs: t.finalAt - t.sentAt,
          workerQueueWaitMs: t.final.timings.queue_wait_ms,
          workerTtftMs: t.final.timings.time_to_first_token_ms,
          workerGenerationMs: t.final.timings.generation_ms,
        });
        return {
          ttftMs: (t.firstDeltaAt ?? t.finalAt) - t.sentAt,
          totalMs: t.finalAt - t.sentAt,
          tokens: t.final.usage.completion_tokens,
          generationMs: t.final.timings.generation_ms,
        };
      };
    const calls: Record<RouteName, Call> = {
      "in-process": async (_lane, i) => {
        const id = `inproc-${unique++}`;
        const messages = messagesFor(id, i);
        const sentAt = performance.now();
        let first: number | undefined;
        const r = await inproc.generate(id, messages, MAX_TOKENS, () => (first ??= performance.now()));
        const end = performance.now();
        return { ttftMs: (first ?? end) - sentAt, totalMs: end - sentAt, tokens: r.completionTokens };
      },
      rest: async (_lane, i) => {
        const id = `rest-${unique++}`;
        const t = await restGenerate(rest.baseUrl, { conversation_id: id, messages: messagesFor(id, i), max_tokens: MAX_TOKENS }, agent);
        return { ttftMs: (t.firstTextAt ?? t.finalAt!) - t.sentAt, totalMs: t.finalAt! - t.sentAt, tokens: t.completionTokens };
      },
      kafka: kafkaCall(chat),
      "kafka-tx": txChat ? kafkaCall(txChat) : () => Promise.reject(new Error("no transactional worker in this run")),
      gateway: async (lane, i) => {
        const t = await gatewayTurn(gateway.baseUrl, gatewayKeys.next(lane), PROMPTS[i % PROMPTS.length]!, MAX_TOKENS, agent);
        return {
          ttftMs: (t.firstTextAt ?? t.finalAt!) - t.sentAt,
          totalMs: t.finalAt! - t.sentAt,
          tokens: t.completionTokens,
          ...(t.generationMs !== undefined && { generationMs: t.generationMs }),
        };
      },
    };

    /**
     * Gives `route`'s model process (the worker for kafka and gateway, the transactional
     * worker for kafka-tx, the REST worker, or this process for in-process) a CPU to itself
     * and every other process the rest, as production keeps the broker, the gateway and the
     * clients off the GPU worker's machine (bench/lib/cpu-placement.ts); null: every process
     * shares every CPU.
     */
    const place = (route: RouteName | null) => {
      if (!placement) return;
      const on = (runsModel: boolean) => (route === null ? placement.all : runsModel ? placement.model : placement.rest);
      if (ctx.brokerPid !== undefined) placeProcess(ctx.brokerPid, on(false));
      placeProcess(gateway.pid, on(false));
      placeProcess(worker.pid, on(route === "kafka" || route === "gateway"));
      if (txWorker) placeProcess(txWorker.pid, on(route === "kafka-tx"));
      placeProcess(rest.pid, on(route === "rest"));
      placeProcess(process.pid, on(route === "in-process"));
    };
    const workerOf = (route: RouteName) => (route === "kafka-tx" ? txWorker! : worker);

    ctx.log("warm-up");
    for (const route of routes) {
      place(route);
      await runPhase(calls[route], SLOTS, SLOTS * 2);
    }

    const seq = new Map<RouteName, PhaseResult[]>(routes.map((r) => [r, []]));
    const conc = new Map<RouteName, PhaseResult[]>(routes.map((r) => [r, []]));
    const sat = new Map<RouteName, PhaseResult[]>(routes.map((r) => [r, []]));
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so slow drift of the machine spreads over every route.
      const order = routes.map((_, i) => routes[(i + round) % routes.length]!);
      for (const route of order) {
        ctx.log(`round ${round + 1}/${rounds}: ${route}`);
        place(route);
        if (route === "kafka" || route === "kafka-tx") {
          const into = breakdown.get(route) ?? { times: [], phases: new Map() };
          breakdown.set(route, into);
          kafkaTimes = into.times;
          const before = await readTurnPhases(workerOf(route).baseUrl);
          seq.get(route)!.push(await runPhase(calls[route], 1, seqPerRound));
          addPhaseDiff(into.phases, before, await readTurnPhases(workerOf(route).baseUrl));
          kafkaTimes = null;
        } else {
          seq.get(route)!.push(await runPhase(calls[route], 1, seqPerRound));
        }
        conc.get(route)!.push(await runPhase(calls[route], SLOTS, concPerRound));
        sat.get(route)!.push(await runPhase(calls[route], 2 * SLOTS, concPerRound));
      }
    }

    // The same comparison at SLOTS concurrent with every process sharing every CPU, as the
    // figures before placement were measured: what the broker and the clients cost the model here.
    place(null);
    const shared = { kafka: [] as PhaseResult[], "in-process": [] as PhaseResult[] };
    if (placement) {
      for (let round = 0; round < 2; round++) {
        for (const route of round === 0 ? (["in-process", "kafka"] as const) : (["kafka", "in-process"] as const)) {
          ctx.log(`shared CPUs, round ${round + 1}/2: ${route}`);
          shared[route].push(await runPhase(calls[route], SLOTS, concPerRound));
        }
      }
    }

    const figures = {} as Record<RouteName, RouteFigures>;
    for (const route of routes) {
      const s = seq.get(route)!;
      const c = conc.get(route)!;
      const x = sat.get(route)!;
      const sSamples = s.flatMap((p) => p.samples);
      const sTokens = s.reduce((a, p) => a + p.tokens, 0);
      const fixed = sSamples.filter((x) => x.generationMs !== undefined).map((x) => x.totalMs - x.generationMs!);
      figures[route] = {
        sequential: {
          ttft: summarize(sSamples.map((x) => x.ttftMs)),
          total: summarize(sSamples.map((x) => x.totalMs)),
          tokensPerS: (sTokens / s.reduce((a, p) => a + p.wallMs, 0)) * 1000,
          requests: sSamples.length,
          meanTokens: sTokens / sSamples.length,
          ...(fixed.length > 0 && { fixed: summarize(fixed) }),
        },
        concurrent: {
          tokensPerS: (c.reduce((a, p) => a + p.tokens, 0) / c.reduce((a, p) => a + p.wallMs, 0)) * 1000,
          requests: c.reduce((a, p) => a + p.samples.length, 0),
          ttft: summarize(c.flatMap((p) => p.samples.map((x) => x.ttftMs))),
        },
        saturated: {
          tokensPerS: (x.reduce((a, p) => a + p.tokens, 0) / x.reduce((a, p) => a + p.wallMs, 0)) * 1000,
          requests: x.reduce((a, p) => a + p.samples.length, 0),
        },
      };
    }

    const base = figures["in-process"];
    const L = m.label;
    const rows: Row[] = [];
    for (const route of routes) {
      const f = figures[route];
      const added = (q: "p50" | "p95" | "p99") => f.sequential.ttft[q] - base.sequential.ttft[q];
      rows.push({
        figure: `${L}, ${route}: throughput, saturated (${2 * SLOTS} callers, ${SLOTS} slots)`,
        measured: `${fmt(f.saturated.tokensPerS, 0)} tok/s`,
        compared: route === "in-process" ? "baseline" : `${fmt(f.saturated.tokensPerS / base.saturated.tokensPerS, 3)}x in-process`,
      });
      rows.push({
        figure: `${L}, ${route}: throughput, ${SLOTS} concurrent`,
        measured: `${fmt(f.concurrent.tokensPerS, 0)} tok/s`,
        compared: route === "in-process" ? "baseline" : `${fmt(f.concurrent.tokensPerS / base.concurrent.tokensPerS, 3)}x in-process`,
      });
      rows.push({
        figure: `${L}, ${route}: throughput, 1 at a time`,
        measured: `${fmt(f.sequential.tokensPerS, 0)} tok/s`,
        compared: route === "in-process" ? "baseline" : `${fmt(f.sequential.tokensPerS / base.sequential.tokensPerS, 3)}x in-process`,
      });
      rows.push({
        figure: `${L}, ${route}: time to first token p50/p95/p99, 1 at a time`,
        measured: `${fmt(f.sequential.ttft.p50)} / ${fmt(f.sequential.ttft.p95)} / ${fmt(f.sequential.ttft.p99)} ms`,
        compared: route === "in-process" ? "baseline" : `+${fmt(added("p50"))} / +${fmt(added("p95"))} / +${fmt(added("p99"))} ms over in-process`,
      });
    }
    const restVsKafka = figures.gateway.saturated.tokensPerS / figures.rest.saturated.tokensPerS;
    rows.push({
      figure: `${L}, gateway route vs REST: throughput, saturated`,
      measured: `${fmt(restVsKafka, 3)}x`,
      compared: `TTFT p50 +${fmt(figures.gateway.sequential.ttft.p50 - figures.rest.sequential.ttft.p50)} ms over REST`,
    });

    const tokensPerS = (r: PhaseResult[]) => (r.reduce((a, p) => a + p.tokens, 0) / r.reduce((a, p) => a + p.wallMs, 0)) * 1000;
    if (placement) {
      const k = tokensPerS(shared.kafka);
      const ip = tokensPerS(shared["in-process"]);
      rows.push({
        figure: `${L}, kafka: throughput, ${SLOTS} concurrent, every process sharing every CPU (no placement)`,
        measured: `${fmt(k, 0)} tok/s`,
        compared: `${fmt(k / ip, 3)}x in-process sharing them too (${fmt(ip, 0)} tok/s)`,
      });
    }

    // Where a sequential Kafka turn's time goes (medians of the client's timelines, means of the worker's phases), for either fence.
    const phaseMeans: Partial<Record<RouteName, Record<string, number>>> = {};
    const fixedMs: Partial<Record<RouteName, number>> = {};
    for (const { route, fence } of BROKEN_DOWN) {
      const b = breakdown.get(route);
      if (!b) continue;
      const med = (pick: (t: KafkaTurnTimes) => number) => median(b.times.map(pick));
      const phaseMs = meanPhaseMs(b.phases, WORKER_PHASES);
      phaseMeans[route] = phaseMs;
      const generationMs = phaseMs.first_token! + phaseMs.generate!;
      const workerFixedMs = phaseMs.load! + phaseMs.slot_wait! + phaseMs.memory_write! + phaseMs.events!;
      fixedMs[route] = med((t) => t.finalSeenMs - t.workerGenerationMs);
      rows.push({
        figure: `${L}, ${route} (${fence}): a turn, 1 at a time, as the client sees it (median ms from the produce call)`,
        measured: `start ${fmt(med((t) => t.startSeenMs))} · first delta ${fmt(med((t) => t.firstDeltaSeenMs))} · final ${fmt(med((t) => t.finalSeenMs))}`,
        compared: `worker: queue wait ${fmt(med((t) => t.workerQueueWaitMs))} (produce → turn starts), TTFT ${fmt(med((t) => t.workerTtftMs))}, generation ${fmt(med((t) => t.workerGenerationMs))}; fixed cost (final seen − generation) ${fmt(fixedMs[route]!)} ms`,
      });
      rows.push({
        figure: `${L}, ${route} (${fence}): the worker's phases of a turn (mean ms, kafka_llm_turn_phase_seconds)`,
        measured: WORKER_PHASES.map((p) => `${p} ${fmt(phaseMs[p]!, 2)}`).join(" · "),
        compared: `fixed on the worker before the final is acked: ${fmt(workerFixedMs, 2)} ms (load + slot_wait + memory_write + events) beside ${fmt(generationMs, 1)} ms generating; the rest of the fixed cost is the request's and the final's way through Kafka (queue wait, final write → seen) and the commit (${fmt(phaseMs.commit!, 2)} ms), which the partition's next turn waits for`,
      });
    }
    const gatewayFixed = figures.gateway.sequential.fixed;
    if (gatewayFixed) {
      rows.push({
        figure: `${L}, gateway: a turn's fixed cost, 1 at a time (POST to the final on the SSE stream, less the worker's generation) p50/p95`,
        measured: `${fmt(gatewayFixed.p50)} / ${fmt(gatewayFixed.p95)} ms`,
        compared:
          fixedMs.kafka === undefined
            ? ""
            : `+${fmt(gatewayFixed.p50 - fixedMs.kafka)} ms over the Kafka route's p50 (HTTP, the gateway's produce and its events reader)`,
      });
    }
    if (fixedMs.kafka !== undefined && fixedMs["kafka-tx"] !== undefined) {
      const fence = phaseMeans.kafka!;
      const tx = phaseMeans["kafka-tx"]!;
      const f = figures.kafka;
      const t = figures["kafka-tx"];
      rows.push({
        figure: `${L}, a turn's fixed cost both ways, 1 at a time (median): log fence (default) vs WORKER_TRANSACTIONS=true`,
        measured: `${fmt(fixedMs.kafka)} vs ${fmt(fixedMs["kafka-tx"])} ms (${fmt(fixedMs["kafka-tx"] / fixedMs.kafka, 2)}x)`,
        compared: `memory write + events + commit (worker means): ${fmt(fence.memory_write! + fence.events! + fence.commit!, 2)} vs ${fmt(tx.memory_write! + tx.events! + tx.commit!, 2)} ms; throughput at ${SLOTS} concurrent ${fmt(f.concurrent.tokensPerS / base.concurrent.tokensPerS, 3)}x vs ${fmt(t.concurrent.tokensPerS / base.concurrent.tokensPerS, 3)}x in-process`,
      });
    }

    const targets: TargetCheck[] = [];
    const clientFixedMs = fixedMs.kafka ?? NaN;
    const fencePhases = phaseMeans.kafka ?? {};
    const generationMs = (fencePhases.first_token ?? 0) + (fencePhases.generate ?? 0);
    for (const route of ["kafka", "gateway"] as const) {
      const f = figures[route];
      const ratio = f.concurrent.tokensPerS / base.concurrent.tokensPerS;
      const goal = m.concurrentTarget;
      targets.push({
        target: `${L}, ${route} route: throughput >= ${goal}x in-process (${SLOTS} concurrent)`,
        measured: `${fmt(ratio, 3)}x (saturated: ${fmt(f.saturated.tokensPerS / base.saturated.tokensPerS, 3)}x; 1 at a time: ${fmt(f.sequential.tokensPerS / base.sequential.tokensPerS, 3)}x)`,
        met: ratio >= goal,
        ...(ratio >= goal
          ? {}
          : {
              why: `every turn pays a fixed cost besides generation (${fmt(clientFixedMs)} ms median, 1 at a time; see the breakdown rows: the request's way to the worker, the memory write, the final's way back, the commit) during which its slot is idle, beside ${fmt(generationMs, 1)} ms of generation; and the worker's own Kafka work (its event loop: the producer's requests, the consumers, the state store) runs on the model's CPU between the generation's steps`,
            }),
      });
      const added = f.sequential.ttft.p50 - base.sequential.ttft.p50;
      targets.push({
        target: `${L}, ${route} route: time to first token <= +10 ms p50 over in-process`,
        measured: `+${ms(added)}`,
        met: added <= 10,
        ...(added <= 10
          ? {}
          : {
              why: `before the first token a turn crosses Kafka twice: the request to the worker (queue wait ${fmt(median(breakdown.get("kafka")?.times.map((t) => t.workerQueueWaitMs) ?? []))} ms median, the worker's fetch included), the memory load (${fmt(fencePhases.load ?? NaN, 2)} ms) and the first delta back; on this shared 2-core machine every hop also waits for a CPU. See the REST route's p50 for what one HTTP hop costs`,
            }),
      });
    }
    if (m.transactions) {
      for (const [route, limit, fixed] of [
        ["kafka", 5, clientFixedMs],
        ["gateway", 10, gatewayFixed?.p50 ?? NaN],
      ] as const) {
        targets.push({
          target: `${L}, ${route} route: a turn's fixed cost (final seen less generation, 1 at a time) <= ${limit} ms p50`,
          measured: ms(fixed),
          met: fixed <= limit,
          ...(fixed <= limit
            ? {}
            : {
                why: `a turn crosses Kafka in series: the request to the worker, the history record, then the memory record that points at it, then the final that must not announce a reply memory does not hold, each acks=all; see the breakdown rows for where it goes on this run's machine${route === "gateway" ? ", plus the POST, the gateway's produce and its read of chat.events" : ""}`,
              }),
        });
      }
    }
    return {
      rows,
      targets,
      notes: [
        `${L}: ${describeLlama()}, WORKER_SLOTS=${SLOTS}, max_tokens=${MAX_TOKENS}, greedy (same replies on every route: ${fmt(base.sequential.meanTokens)} tokens on average), ${rounds} interleaved round(s) of ${seqPerRound} sequential + ${concPerRound} concurrent turns per route.`,
        "Kafka turns are new conversations (one turn each), so each writes its memory record as production turns do; concurrent conversations are put on distinct partitions.",
        ...(txSpec
          ? [
              "kafka-tx: the same turns to a second worker with WORKER_TRANSACTIONS=true on an install of its own (its own topics and group), in the same rounds: a turn's history and memory records, its final and its request offset in one Kafka transaction, the deltas outside it.",
            ]
          : []),
        placement
          ? `Placement: during a route's turns its model process (the worker for kafka and gateway, the transactional worker for kafka-tx, the REST worker, or the bench process for in-process) has CPU ${placement.model} to itself; the broker, the gateway, the clients and the idle model processes share CPU ${placement.rest}, as production keeps them off the GPU worker's machine (bench/lib/cpu-placement.ts). The worker's own Kafka work (its event loop) shares the model's CPU with generation and is part of the measured cost. The "every process sharing every CPU" row repeats the ${SLOTS}-concurrent comparison without placement.`
          : "Every process shares every CPU (taskset missing, or one CPU): on the Kafka routes the broker, the worker's event loop and (for gateway) the gateway run beside the generating thread; that is part of the measured cost.",
      ],
      raw: {
        rounds,
        seqPerRound,
        concPerRound,
        maxTokens: MAX_TOKENS,
        slots: SLOTS,
        partitions: PARTITIONS,
        figures,
        placement,
        shared: placement ? { kafka: tokensPerS(shared.kafka), inProcess: tokensPerS(shared["in-process"]), perRound: shared } : null,
        perRound: { sequential: Object.fromEntries(seq), concurrent: Object.fromEntries(conc), saturated: Object.fromEntries(sat) },
        kafkaBreakdown: Object.fromEntries(
          [...breakdown].map(([route, b]) => [route, { fixedMedianMs: fixedMs[route], workerPhaseMeanMs: phaseMeans[route], turns: b.times }]),
        ),
      },
    };
  } finally {
    // The broker serves the next scenarios, and this process runs them: give them every CPU back.
    if (placement) {
      placeProcess(process.pid, placement.all);
      if (ctx.brokerPid !== undefined) placeProcess(ctx.brokerPid, placement.all);
    }
    await chat.stop().catch(() => {});
    await txChat?.stop().catch(() => {});
    for (const c of children.reverse()) await c.stop().catch(() => {});
    await inproc.dispose();
    agent.destroy();
  }
}
