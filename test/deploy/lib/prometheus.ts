/**
 * A real Prometheus (Debian's package, scripts/deploy/tools.sh) for a test: its own
 * config, storage in a temporary directory, 127.0.0.1 on a free port, stopped by the test.
 * Never the system service. Exemplar storage is on, so the trace ids the services put on
 * their histogram buckets (OpenMetrics exemplars) can be read back.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "../../helpers/services.js";
import { toolPath } from "./tools.js";

export interface ScrapeTarget {
  job: string;
  address: string;
  /** Labels every series of the target gets, as a ServiceMonitor's relabelling gives them. */
  labels: Record<string, string>;
}

export interface Series {
  metric: Record<string, string>;
  values: Array<[number, string]>;
}

/** One series' exemplars, as /api/v1/query_exemplars gives them. */
export interface ExemplarSeries {
  seriesLabels: Record<string, string>;
  exemplars: Array<{ labels: Record<string, string>; value: string; timestamp: number }>;
}

export interface Prometheus {
  readonly url: string;
  readonly configFile: string;
  /** Instant query; the result vector (or a scalar as one unlabelled sample). */
  query(expr: string, time?: number): Promise<Array<{ metric: Record<string, string>; value: number }>>;
  /** Range query, `step` in seconds. */
  queryRange(expr: string, start: number, end: number, step: number): Promise<Series[]>;
  labelValues(label: string, match: string): Promise<string[]>;
  /** The exemplars of the series `expr` selects, from `start` to `end` (Unix seconds). */
  queryExemplars(expr: string, start: number, end: number): Promise<ExemplarSeries[]>;
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

export async function startPrometheus(targets: readonly ScrapeTarget[], scrapeIntervalS = 1): Promise<Prometheus> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "prometheus-"));
  const configFile = path.join(dir, "prometheus.yml");
  const jobs = new Map<string, ScrapeTarget[]>();
  for (const t of targets) jobs.set(t.job, [...(jobs.get(t.job) ?? []), t]);
  const config = {
    global: { scrape_interval: `${scrapeIntervalS}s`, evaluation_interval: `${scrapeIntervalS}s` },
    scrape_configs: [...jobs].map(([job, ts]) => ({
      job_name: job,
      metrics_path: "/metrics",
      static_configs: ts.map((t) => ({ targets: [t.address], labels: t.labels })),
    })),
  };
  // JSON is YAML.
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const check = spawnSync(toolPath("promtool"), ["check", "config", configFile], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`promtool check config failed:\n${check.stdout}${check.stderr}`);

  const port = await freePort();
  const proc = spawn(
    toolPath("prometheus"),
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--storage.tsdb.retention.time=1h",
      "--enable-feature=exemplar-storage",
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  running.add(proc);
  let output = "";
  const keep = (b: Buffer) => (output = (output + b.toString()).slice(-50_000));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<void>((r) => proc.once("exit", () => (running.delete(proc), r())));
  const url = `http://127.0.0.1:${port}`;

  const api = async <T>(p: string, params: Record<string, string>): Promise<T> => {
    const res = await fetch(`${url}${p}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`Prometheus ${p} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  };

  const prom: Prometheus = {
    url,
    configFile,
    async query(expr, time) {
      const data = await api<{ resultType: string; result: unknown }>("/api/v1/query", {
        query: expr,
        ...(time !== undefined && { time: String(time) }),
      });
      if (data.resultType === "scalar") return [{ metric: {}, value: Number((data.result as [number, string])[1]) }];
      return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((r) => ({
        metric: r.metric,
        value: Number(r.value[1]),
      }));
    },
    async queryRange(expr, start, end, step) {
      const data = await api<{ resultType: string; result: Series[] }>("/api/v1/query_range", {
        query: expr,
        start: String(start),
        end: String(end),
        step: String(step),
      });
      return data.result;
    },
    async labelValues(label, match) {
      return api<string[]>(`/api/v1/label/${label}/values`, { "match[]": match });
    },
    async queryExemplars(expr, start, end) {
      return api<ExemplarSeries[]>("/api/v1/query_exemplars", { query: expr, start: String(start), end: String(end) });
    },
    output: () => output,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`prometheus exited with ${proc.exitCode}:\n${output}`);
    try {
      if ((await fetch(`${url}/-/ready`)).ok) return prom;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await prom.stop();
      throw new Error(`prometheus was not ready in 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The project's metric names an expression reads (its own, and the OpenTelemetry GenAI ones it exports). */
export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  // A name followed by a matcher (gen_ai_token_type="input") is a label's.
  for (const m of expr.matchAll(/\b((?:kafka_llm|gen_ai)_[a-z0-9_]+)\b(?!\s*(?:=|!=|=~|!~))/g)) names.add(m[1]!);
  return [...names];
}
