/**
 * kafka-llm benchmarks: `npm run bench` (all, under 20 minutes on 2 cores),
 * `npm run bench -- --quick` (a smoke run of a few minutes), `--only route,restore`.
 *
 * Starts one local Kafka broker (or uses KAFKA_BROKERS), runs each scenario against
 * stories260K with one CPU thread per model, writes bench/results/<scenario>.json and
 * bench/results/SUMMARY.md, prints the table, and exits non-zero when a scenario failed.
 * Every figure is a ratio or a comparison measured in the same run. A run of some
 * scenarios (--only) replaces their sections of SUMMARY.md and keeps the others' (from
 * their JSON), each section saying when and on which commit it was measured.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startBroker } from "../scripts/kafka-broker.js";
import { defaultVersion } from "../scripts/kafka/jars.js";
import { ensureTestModel } from "../scripts/models.js";
import { describeEnvironment } from "./lib/env.js";
import { killAll, REPO_ROOT } from "../testkit/services.js";
import { renderSummary, renderTable } from "./lib/summary.js";
import type { Scenario, ScenarioResult } from "./lib/scenario.js";
import { batchingScenario } from "./scenarios/batching.js";
import { failoverScenario } from "./scenarios/failover.js";
import { fanoutScenario } from "./scenarios/fanout.js";
import { grammarScenario } from "./scenarios/grammar.js";
import { historyScenario } from "./scenarios/history.js";
import { kvReuseScenario } from "./scenarios/kv-reuse.js";
import { llamaNativeScenario } from "./scenarios/llama-native.js";
import { noisyNeighbourScenario } from "./scenarios/noisy-neighbour.js";
import { openaiScenario } from "./scenarios/openai.js";
import { poolsScenario } from "./scenarios/pools.js";
import { adaptersScenario } from "./scenarios/adapters.js";
import { responsesScenario } from "./scenarios/responses.js";
import { restoreScenario } from "./scenarios/restore.js";
import { routeScenario } from "./scenarios/route.js";
import { scaleScenario } from "./scenarios/scale.js";
import { stateScaleScenario } from "./scenarios/state-scale.js";
import { tenancyScenario } from "./scenarios/tenancy.js";
import { tracingScenario } from "./scenarios/tracing.js";

const running: { broker: Awaited<ReturnType<typeof startBroker>> | null } = { broker: null };

const SCENARIOS: Scenario[] = [
  routeScenario,
  batchingScenario,
  kvReuseScenario,
  failoverScenario,
  restoreScenario,
  fanoutScenario,
  scaleScenario,
  llamaNativeScenario,
  openaiScenario,
  historyScenario,
  stateScaleScenario,
  tenancyScenario,
  noisyNeighbourScenario,
  grammarScenario,
  responsesScenario,
  tracingScenario,
  poolsScenario,
  adaptersScenario,
];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: process.env.BENCH_QUICK === "1" },
      only: { type: "string" },
      out: { type: "string" },
    },
  });
  const quick = values.quick!;
  const outGiven = values.out !== undefined;
  // Quick runs are smoke runs: their numbers stay out of the committed results.
  values.out ??= path.join(REPO_ROOT, quick ? ".cache/bench-quick" : "bench/results");
  const only = values.only ? new Set(values.only.split(",").map((s) => s.trim())) : null;
  const chosen = SCENARIOS.filter((s) => !only || only.has(s.id));
  if (chosen.length === 0) throw new Error(`no scenario matches --only ${values.only}; known: ${SCENARIOS.map((s) => s.id).join(", ")}`);
  const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

  const model = process.env.BENCH_MODEL || (await ensureTestModel());
  const external = process.env.KAFKA_BROKERS?.trim();
  const kafkaVersion = defaultVersion();
  log(external ? `using KAFKA_BROKERS=${external}` : `starting a local Kafka ${kafkaVersion} broker`);
  const broker = external ? null : await startBroker();
  running.broker = broker;
  // Services, simulators and the bench's clients log in with the broker's principals (bench/lib/stack.ts).
  if (broker?.credentialsFile) process.env.KAFKA_CREDENTIALS_FILE = broker.credentialsFile;
  const brokers = external || broker!.brokers;
  const env = await describeEnvironment(model, external ? "external" : kafkaVersion, quick);
  await mkdir(values.out!, { recursive: true });

  const results: ScenarioResult[] = [];
  const failures: Array<{ id: string; error: string }> = [];
  const started = performance.now();
  try {
    for (const scenario of chosen) {
      log(`scenario ${scenario.id}: ${scenario.title}`);
      const t0 = performance.now();
      const before = os.loadavg()[0]!;
      try {
        const out = await scenario.run({ quick, brokers, ...(broker && { brokerPid: broker.pid }), model, env, log: (l) => log(`  ${scenario.id}: ${l}`) });
        const result: ScenarioResult = {
          id: scenario.id,
          title: scenario.title,
          command: `npm run bench -- --only ${scenario.id}${quick ? " --quick" : ""}`,
          durationS: Math.round((performance.now() - t0) / 100) / 10,
          loadAverage: { before: Math.round(before * 100) / 100, after: Math.round(os.loadavg()[0]! * 100) / 100 },
          environment: env,
          ...out,
        };
        results.push(result);
        await writeFile(path.join(values.out!, `${scenario.id}.json`), `${JSON.stringify(result, null, 2)}\n`);
        process.stdout.write(`\n${renderTable([result])}\n`);
        for (const b of result.broken ?? []) {
          failures.push({ id: scenario.id, error: `broken: ${b}` });
          log(`scenario ${scenario.id} found something BROKEN: ${b}`);
        }
        log(`scenario ${scenario.id} done in ${result.durationS} s`);
      } catch (err) {
        const error = (err as Error).stack ?? String(err);
        failures.push({ id: scenario.id, error });
        log(`scenario ${scenario.id} FAILED: ${error}`);
      }
    }
  } finally {
    await broker?.stop();
  }
  const totalS = Math.round((performance.now() - started) / 1000);
  const summarized = only && !outGiven ? await withStoredResults(values.out!, results) : results;
  await writeFile(path.join(values.out!, "SUMMARY.md"), renderSummary(summarized, failures, env, totalS));
  process.stdout.write(`\n${renderTable(results)}\n`);
  log(`${results.length} scenario(s) done, ${failures.length} failed, ${totalS} s in all; results in ${path.relative(process.cwd(), values.out!)}`);
  return failures.length === 0 ? 0 : 1;
}

/** Every scenario's latest results, in the scenarios' order: this run's, else those stored in `dir`. */
async function withStoredResults(dir: string, fresh: readonly ScenarioResult[]): Promise<ScenarioResult[]> {
  const all: ScenarioResult[] = [];
  for (const scenario of SCENARIOS) {
    const result = fresh.find((r) => r.id === scenario.id);
    if (result) {
      all.push(result);
      continue;
    }
    try {
      all.push(JSON.parse(await readFile(path.join(dir, `${scenario.id}.json`), "utf8")) as ScenarioResult);
    } catch {
      // never measured here
    }
  }
  return all;
}

// Ctrl-C or a kill: stop every child and the broker before going (the broker's stop
// removes its data); a second signal exits at once.
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`bench: ${signal}: stopping every process it started\n`);
    killAll();
    void (running.broker?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
