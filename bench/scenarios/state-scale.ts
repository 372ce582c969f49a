/**
 * 12. State that scales with the right quantity (issue 12), before → after in one run:
 * "before" is BASE (the code before issue 12) run from a worktree under .cache/bench-before,
 * "after" the working tree. Everything is measured through Kafka and HTTP on real gateway
 * and worker processes (bench/lib/state-scale-measures.ts), so the scenario measures
 * whatever the working tree does.
 *
 * 1. Bytes written to chat.memory per turn at turns 1, 10 and 40 of one conversation (40
 *    turns through the gateway, default max tokens), beside the turn's new text.
 * 2. Gateway RSS with 10k, 100k and 1M stored conversations, written to chat.memory by a
 *    generator, and reads of the first-written conversation and of 100 spread over all
 *    (GET /v1/conversations/{id}).
 * 3. Gateway CPU per delivered token: 3 replicas with the clients spread over them vs 1.
 * 4. Restore of a 100k-conversation partition by a worker process: cold, then warm (same
 *    state dir) after 1% changed. The in-process store's rates are `--only restore`'s.
 */
import { beforeTree, workingTree } from "../lib/before-tree.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, type TargetCheck, fmt } from "../lib/scenario.js";
import {
  type CpuMeasure,
  type RestoreMeasure,
  type RssMeasure,
  type TurnBytes,
  USER_MESSAGE,
  gatewayCpu,
  gatewayRss,
  memoryPerTurn,
  perK,
  workerRestore,
} from "../lib/state-scale-measures.js";

/** The base commit of issue 12; BENCH_BEFORE_COMMIT overrides it. */
export const BASE = "618f663";

const ratio = (before: number, after: number) => (before > 0 ? `${fmt(after / before, 2)}x` : "n/a");
const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
/** "98 of 100 sampled answer 200 (404: 2)". */
const sampled = (m: RssMeasure) => {
  const others = Object.entries(m.sample).filter(([status]) => status !== "200");
  return `${m.sample["200"] ?? 0} of ${total(m.sample)} sampled answer 200${others.length ? ` (${others.map(([st, n]) => `${st}: ${n}`).join(", ")})` : ""}`;
};
const kilo = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);

export const stateScaleScenario: Scenario = {
  id: "state-scale",
  title: "12. State at scale, before → after issue 12: memory bytes per turn, gateway RSS and CPU, restore",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const turns = ctx.quick ? 10 : 40;
    const turnMarks = ctx.quick ? [1, 5, 10] : [1, 10, 40];
    const sizes = ctx.quick ? [1_000, 10_000, 100_000] : [10_000, 100_000, 1_000_000];
    const cpuTurns = ctx.quick ? 48 : 160;
    const concurrency = ctx.quick ? 6 : 12;
    const restoreSize = ctx.quick ? 10_000 : 100_000;
    const before = beforeTree(process.env.BENCH_BEFORE_COMMIT || BASE);
    const after = workingTree();
    const trees = [before, after];
    ctx.log(`before: ${before.commit.slice(0, 12)} (.cache/bench-before); after: the working tree at ${after.commit.slice(0, 12)}`);

    const memory: Record<string, TurnBytes[]> = {};
    for (const tree of trees) {
      ctx.log(`${tree.label}: ${turns} turns of one conversation`);
      memory[tree.label] = await memoryPerTurn(ctx, tree, turns);
      ctx.log(`  chat.memory bytes at turns ${turnMarks.join(", ")}: ${turnMarks.map((t) => memory[tree.label]![t - 1]!.memoryBytes).join(", ")}`);
    }
    const rss = await gatewayRss(ctx, trees, sizes);
    const cpu: CpuMeasure[] = [];
    for (const tree of trees) {
      ctx.log(`${tree.label}: gateway CPU, ${cpuTurns} turns, ${concurrency} concurrent streams, 1 then 3 replicas`);
      cpu.push(...(await gatewayCpu(ctx, tree, cpuTurns, concurrency)));
    }
    const restores: RestoreMeasure[] = [];
    for (const tree of trees) {
      ctx.log(`${tree.label}: worker restore of a ${kilo(restoreSize)}-conversation partition, cold then warm after 1% changed`);
      restores.push(...(await workerRestore(ctx, tree, restoreSize)));
    }

    const rows: Row[] = [];
    const targets: TargetCheck[] = [];

    // 1. memory bytes per turn
    for (const t of turnMarks) {
      const b = memory.before![t - 1]!;
      const a = memory.after![t - 1]!;
      rows.push({
        figure: `chat.memory bytes written at turn ${t} of ${turns}`,
        measured: `before ${b.memoryBytes} B → after ${a.memoryBytes} B (${ratio(b.memoryBytes, a.memoryBytes)})`,
        compared: `the turn's new text ${b.newTextBytes} / ${a.newTextBytes} B: before ${fmt(b.memoryBytes / b.newTextBytes, 1)}x, after ${fmt(a.memoryBytes / a.newTextBytes, 1)}x (goal at turn ${turns}: ≤ 4x); chat.history ${b.historyBytes} → ${a.historyBytes} B`,
      });
    }
    const last = memory.after![turns - 1]!;
    const memMet = last.memoryBytes <= 4 * last.newTextBytes;
    targets.push({
      target: `chat.memory bytes per turn ≤ 4x the turn's new text at turn ${turns}`,
      measured: `${last.memoryBytes} B for ${last.newTextBytes} B of new text (${fmt(last.memoryBytes / last.newTextBytes, 1)}x)`,
      met: memMet,
      ...(memMet ? {} : { why: "each memory record still carries the applied window's final events (their replies)" }),
    });

    // 2. gateway RSS
    const rssOf = (tree: string, n: number) => rss.measures.find((m) => m.tree === tree && m.conversations === n)!;
    for (const n of sizes) {
      const b = rssOf("before", n);
      const a = rssOf("after", n);
      rows.push({
        figure: `gateway RSS with ${kilo(n)} stored conversations; GET of the first-written one`,
        measured: `before ${fmt(b.rssMB, 0)} MB → after ${fmt(a.rssMB, 0)} MB (${ratio(b.rssMB, a.rssMB)}); first-written: before ${b.firstStatus}, after ${a.firstStatus}`,
        compared: `goal: after within 1.2x of its RSS at ${kilo(sizes[0]!)}, no 404; ${sampled(b)} / ${sampled(a)}; gateway ready in ${fmt(b.readyS, 1)} / ${fmt(a.readyS, 1)} s; after's worker RSS ${a.workerRssMB === null ? "n/a" : `${fmt(a.workerRssMB, 0)} MB`}`,
      });
    }
    const small = rssOf("after", sizes[0]!);
    const big = rssOf("after", sizes.at(-1)!);
    const rssMet = big.rssMB <= 1.2 * small.rssMB;
    targets.push({
      target: `gateway RSS at ${kilo(sizes.at(-1)!)} conversations within 1.2x of its RSS at ${kilo(sizes[0]!)}`,
      measured: `${fmt(small.rssMB, 0)} → ${fmt(big.rssMB, 0)} MB (${fmt(big.rssMB / small.rssMB, 2)}x)`,
      met: rssMet,
      ...(rssMet ? {} : { why: "the gateway still holds the memory view (every conversation of chat.memory, up to MEMORY_VIEW_MAX_BYTES)" }),
    });
    const missing = rss.measures.filter((m) => m.tree === "after" && (m.firstStatus !== 200 || (m.sample["200"] ?? 0) !== total(m.sample)));
    targets.push({
      target: "no 404 for any stored conversation (after: the first-written and 100 spread over all, the last included)",
      measured:
        missing.length === 0 ? "200 at every size" : missing.map((m) => `${kilo(m.conversations)}: first-written ${m.firstStatus}, ${sampled(m)}`).join("; "),
      met: missing.length === 0,
      ...(missing.length === 0 ? {} : { why: "the memory view evicted the conversations written longest ago (or no owner answered)" }),
    });

    // 3. gateway CPU per delivered token
    const cpuOf = (tree: string, replicas: number) => cpu.find((m) => m.tree === tree && m.replicas === replicas)!;
    const net = (m: CpuMeasure) => perK({ cpuS: m.netCpuS, tokens: m.tokens });
    for (const replicas of [1, 3]) {
      const b = cpuOf("before", replicas);
      const a = cpuOf("after", replicas);
      const each = (m: CpuMeasure) => m.perReplica.map((r) => fmt(perK(r), 3)).join(" / ");
      rows.push({
        figure: `gateway CPU-seconds per 1k delivered tokens, ${replicas === 1 ? "1 replica" : "3 replicas together (clients spread over them)"}`,
        measured: `before ${fmt(perK(b), 3)} → after ${fmt(perK(a), 3)} (${ratio(perK(b), perK(a))}); less idle: ${fmt(net(b), 3)} → ${fmt(net(a), 3)}`,
        compared:
          replicas === 1
            ? `${b.tokens} / ${a.tokens} tokens in ${cpuTurns} turns, ${concurrency} concurrent streams`
            : `3 replicas vs 1: before ${fmt(perK(b) / perK(cpuOf("before", 1)), 2)}x, after ${fmt(perK(a) / perK(cpuOf("after", 1)), 2)}x; per replica before ${each(b)}, after ${each(a)}`,
      });
    }
    // Each replica's idle cost (its readers polling) is paid however events are routed: the
    // target compares what delivering tokens costs, less that.
    const cpu3 = net(cpuOf("after", 3)) / net(cpuOf("after", 1));
    targets.push({
      target: "3 gateway replicas together spend ≤ 1.5x one replica's CPU per delivered token, less idle (each reads its clients' events, not the fleet's)",
      measured: `${fmt(cpu3, 2)}x (before: ${fmt(net(cpuOf("before", 3)) / net(cpuOf("before", 1)), 2)}x; with idle: after ${fmt(perK(cpuOf("after", 3)) / perK(cpuOf("after", 1)), 2)}x, before ${fmt(perK(cpuOf("before", 3)) / perK(cpuOf("before", 1)), 2)}x)`,
      met: cpu3 <= 1.5,
      ...(cpu3 <= 1.5 ? {} : { why: "every replica still reads every event of the fleet from chat.events" }),
    });

    // 4. restore
    const restoreOf = (tree: string, kind: string) => restores.find((m) => m.tree === tree && m.kind === kind)!;
    const restoreS = (m: RestoreMeasure) => m.restoreMetricS ?? m.servedS;
    for (const tree of ["before", "after"] as const) {
      const cold = restoreOf(tree, "cold");
      const warm = restoreOf(tree, "warm");
      rows.push({
        figure: `${tree}: restore of a partition with ${kilo(restoreSize)} conversations by a worker, cold vs warm after 1% changed`,
        measured: `cold ${fmt(restoreS(cold), 3)} s → warm ${fmt(restoreS(warm), 3)} s (${fmt(restoreS(cold) / restoreS(warm), 1)}x faster)${cold.restoreMetricS === null ? " (spawn to first delta)" : " (kafka_llm_memory_restore_seconds)"}`,
        compared: `spawn to the first delta of a stored conversation's turn: ${fmt(cold.servedS, 2)} → ${fmt(warm.servedS, 2)} s; spawn to ready ${fmt(cold.readyS, 2)} → ${fmt(warm.readyS, 2)} s; goal (after): warm ≥ 10x faster${tree === "before" ? "; before has no local store, so its restart is cold again" : ""}`,
      });
    }
    const speedup = restoreS(restoreOf("after", "cold")) / restoreS(restoreOf("after", "warm"));
    targets.push({
      target: `warm restore ≥ 10x faster than cold (${kilo(restoreSize)} conversations, 1% changed)`,
      measured: `${fmt(speedup, 1)}x`,
      met: speedup >= 10,
      ...(speedup >= 10 ? {} : { why: "the worker reads the whole memory partition on every restore (no local store of what it applied)" }),
    });

    return {
      rows,
      targets,
      notes: [
        `Before: commit ${before.commit.slice(0, 12)} run from a worktree at .cache/bench-before (node_modules linked to the repo's); after: the working tree (${after.commit.slice(0, 12)}). Each runs its own gateway and worker processes against the same broker, on topics of their own.`,
        `Memory bytes: one conversation, ${turns} turns through the gateway's API, a ${Buffer.byteLength(USER_MESSAGE)}-byte user message, default max tokens; the chat.memory records keyed by the conversation, read back from the topic, each attributed to its turn by the state's \`turns\` (by order where absent). New text = user message + reply, UTF-8 bytes.`,
        `RSS: ${sizes.map(kilo).join(" / ")} generated states of ${rss.recordBytes} B each (3 short turns, tenant "local", no applied window, so the same bytes are valid before and after) over 6 partitions, written in ${rss.writeS.map((s) => fmt(s, 1)).join(" / ")} s (cumulative sizes); a fresh gateway per size and tree; its VmRSS the median of 3 samples 1 s apart after ready, the reads (the first-written, then 100 spread over all, 8 at a time) and a 3 s settle. After runs a worker, since conversation reads go to the partition's owner: stopped while the generator writes (only an owner writes its partitions' memory), started again for each size on the same WORKER_STATE_DIR; its read of the first-written conversation retries 503 for up to 300 s while that worker restores.`,
        `CPU: one worker (4 slots) on stories260K, ${concurrency} concurrent SSE clients spread round-robin over the replicas (each posts to and follows at its replica), ${cpuTurns} turns of max_tokens 64 after a warm-up; CPU = user+system from /proc over the window; "less idle" subtracts each replica's idle CPU rate, measured over 8 s just before (the target uses it: idle polling is paid however events are routed). Tokens = completion tokens of the finals each replica delivered.`,
        `Restore: a 1-partition stack; a worker of the tree starts (cold, empty WORKER_STATE_DIR), serves one turn of a stored conversation, stops (SIGTERM); 1% of the conversations are rewritten; it starts again on the same WORKER_STATE_DIR. The figure is kafka_llm_memory_restore_seconds' sum on the worker (spawn to first delta when it has no such metric). The in-process store's restore rates are in \`npm run bench -- --only restore\`.`,
      ],
      raw: { before: before.commit, after: after.commit, memory, rss, cpu, restores },
    };
  },
};
