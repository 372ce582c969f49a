/**
 * Child processes of a benchmark: the real worker and gateway (`node --import tsx`), or a
 * bench-only entry, on 127.0.0.1 and free ports. Each one's CPU time and memory are read
 * from /proc; every child is killed when the benchmark exits, whatever happens.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLOCK_TICKS = 100; // USER_HZ on Linux

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

/** One pino JSON log line of a child, with the time the bench read it (performance.now). */
export interface LogLine {
  readAt: number;
  record: Record<string, unknown>;
}

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly baseUrl: string;
  readonly logs: LogLine[];
  output(): string;
  /** Waits for a log line matching `predicate` that was read after `since` (performance.now). */
  waitForLog(predicate: (r: Record<string, unknown>) => boolean, timeoutMs: number, since?: number): Promise<LogLine>;
  /** user+system CPU seconds so far, from /proc. */
  cpuSeconds(): number;
  /** Resident set size now and at its peak (VmHWM), bytes. */
  memory(): { rss: number; peak: number };
  exited(): boolean;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/** Kills every child still running (SIGKILL); for the end of a failed run. */
export function killAll(): void {
  for (const proc of running) proc.kill("SIGKILL");
}

export async function startChild(options: {
  name: string;
  /** Entry file relative to the repo root, run with `node --import tsx`. */
  entry: string;
  env: Record<string, string>;
  port: number;
  readyPath: string;
  timeoutMs?: number;
}): Promise<Child> {
  const proc = spawn(process.execPath, ["--import", "tsx", options.entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: "info", ...options.env },
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
    output = (output + text).slice(-400_000);
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      try {
        const entry = { readAt, record: JSON.parse(line) as Record<string, unknown> };
        logs.push(entry);
        if (logs.length > 20_000) logs.splice(0, 10_000);
        for (const l of listeners) l(entry);
      } catch {
        // not a log record
      }
    }
  });
  proc.stderr!.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-400_000);
  });
  const exit = new Promise<void>((resolve) =>
    proc.once("exit", () => {
      running.delete(proc);
      resolve();
    }),
  );
  const baseUrl = `http://127.0.0.1:${options.port}`;
  const child: Child = {
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
      if (child.exited()) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
      await exit;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  while (Date.now() < deadline) {
    if (child.exited()) throw new Error(`${options.name} exited with ${proc.exitCode}:\n${output.slice(-4000)}`);
    try {
      const res = await fetch(baseUrl + options.readyPath);
      if (res.ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await child.stop("SIGKILL");
  throw new Error(`${options.name} was not ready in time:\n${output.slice(-4000)}`);
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
