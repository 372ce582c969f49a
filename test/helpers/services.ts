/**
 * Runs the real worker and gateway as child processes (`node --import tsx <svc>/main.ts`),
 * on 127.0.0.1 and free ports, and stops them with the test.
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

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

export interface Service {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly baseUrl: string;
  output(): string;
  /** Sends `signal` and waits for the exit; returns the exit code (null when killed). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

export async function startService(options: {
  name: string;
  entry: "worker/main.ts" | "gateway/main.ts";
  env: Record<string, string>;
  port: number;
  readyPath: string;
  timeoutMs?: number;
}): Promise<Service> {
  const proc = spawn(process.execPath, ["--import", "tsx", options.entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: "info", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(proc);
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-200_000);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => {
      running.delete(proc);
      resolve(code);
    }),
  );
  const baseUrl = `http://127.0.0.1:${options.port}`;
  const service: Service = {
    name: options.name,
    proc,
    baseUrl,
    output: () => output,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${options.name} exited with ${proc.exitCode}:\n${output}`);
    try {
      const res = await fetch(baseUrl + options.readyPath);
      if (res.ok) return service;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await service.stop("SIGKILL");
  throw new Error(`${options.name} was not ready within the timeout:\n${output}`);
}
