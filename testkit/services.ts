/**
 * The one process-and-port helper of tests, bench and chaos (testkit/): runs the real worker and
 * gateway (or any entry) as child processes (`node --import tsx <entry>`), on 127.0.0.1
 * and free ports, keeps their output and pino log lines, reads their CPU time and memory
 * from /proc, and kills every child still running when this process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLOCK_TICKS = 100; // USER_HZ on Linux
const OUTPUT_CHARS = 400_000;

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One pino JSON log line of a child, with the time it was read (performance.now). */
export interface LogLine {
  readAt: number;
  record: Record<string, unknown>;
}

export interface Service {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly baseUrl: string;
  /** Its pino log lines so far (the latest 10,000 to 20,000). */
  readonly logs: LogLine[];
  /** The end of its stdout and stderr. */
  output(): string;
  /** Waits for a log line matching `predicate` that was read after `since` (performance.now). */
  waitForLog(predicate: (r: Record<string, unknown>) => boolean, timeoutMs: number, since?: number): Promise<LogLine>;
  /** user+system CPU seconds so far, from /proc. */
  cpuSeconds(): number;
  /** Resident set size now and at its peak (VmHWM), bytes. */
  memory(): { rss: number; peak: number };
  exited(): boolean;
  /** Sends `signal` (SIGKILL after 60 s) and waits for the exit; the exit code, null when killed. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/**
 * Workers keep their state store (LMDB) under WORKER_STATE_DIR: a child not given one gets a
 * directory of this process's own (one per service name, so a worker started again under
 * its name finds its store, as a restarted container does), removed when this process exits.
 */
let stateRoot: string | null = null;
function stateDirFor(name: string): string {
  if (stateRoot === null) {
    const root = mkdtempSync(path.join(os.tmpdir(), "kafka-llm-test-state-"));
    stateRoot = root;
    process.on("exit", () => rmSync(root, { recursive: true, force: true }));
  }
  return path.join(stateRoot, name.replace(/[^A-Za-z0-9._-]/g, "_"));
}

/** Kills every child still running (SIGKILL); for the end of a failed run. */
export function killAll(): void {
  for (const proc of running) proc.kill("SIGKILL");
}

export async function startService(options: {
  name: string;
  /** Entry file relative to the repo root, run with `node --import tsx`. */
  entry: string;
  env: Record<string, string>;
  port: number;
  /** Polled until it answers 2xx. */
  readyPath: string;
  /** Default 60 s. */
  timeoutMs?: number;
}): Promise<Service> {
  const proc = spawn(process.execPath, ["--import", "tsx", options.entry], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      LOG_LEVEL: "info",
      ...(options.entry.endsWith("worker/main.ts") && { WORKER_STATE_DIR: stateDirFor(options.name) }),
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(proc);
  const logs: LogLine[] = [];
  const listeners = new Set<(line: LogLine) => void>();
  let output = "";
  let partial = "";
  proc.stdout!.on("data", (chunk: Buffer) => {
    const readAt = performance.now();
    const text = chunk.toString();
    output = (output + text).slice(-OUTPUT_CHARS);
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // not a log record
      }
      const entry = { readAt, record };
      logs.push(entry);
      if (logs.length > 20_000) logs.splice(0, 10_000);
      for (const l of listeners) l(entry);
    }
  });
  proc.stderr!.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_CHARS);
  });
  const exit = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => {
      running.delete(proc);
      resolve(code);
    }),
  );
  const baseUrl = `http://127.0.0.1:${options.port}`;
  const service: Service = {
    name: options.name,
    proc,
    pid: proc.pid!,
    baseUrl,
    logs,
    output: () => output,
    waitForLog(predicate, timeoutMs, since = -Infinity) {
      const found = logs.find((l) => l.readAt >= since && predicate(l.record));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`${options.name}: no matching log line within ${timeoutMs} ms`));
        }, timeoutMs);
        const listener = (line: LogLine) => {
          if (line.readAt < since || !predicate(line.record)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(line);
        };
        listeners.add(listener);
      });
    },
    cpuSeconds: () => cpuSecondsOf(proc.pid!),
    memory: () => memoryOf(proc.pid!),
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
    async stop(signal = "SIGTERM") {
      if (service.exited()) return proc.exitCode;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (service.exited()) throw new Error(`${options.name} exited with ${proc.exitCode ?? proc.signalCode}:\n${output.slice(-20_000)}`);
    try {
      const res = await fetch(baseUrl + options.readyPath);
      if (res.ok) return service;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await service.stop("SIGKILL");
  throw new Error(`${options.name} was not ready within ${options.timeoutMs ?? 60_000} ms:\n${output.slice(-20_000)}`);
}

export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}
