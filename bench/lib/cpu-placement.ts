/**
 * Where a benchmark's processes run. In production the broker, the gateway and the
 * clients are other machines than the GPU worker; on this 2-CPU box they would take CPU
 * from the thread that generates, and a route's figure would measure the box's scarcity
 * rather than the route. So a scenario can give the process that runs the model (the
 * worker, the REST worker, or this process for the in-process baseline) a CPU of its own
 * and put every other process on the rest: `taskset` on every thread of each process (the
 * threads they start later inherit it).
 */
import { execFileSync } from "node:child_process";

export interface CpuPlacement {
  /** The CPU the model's process gets to itself (a taskset list). */
  readonly model: string;
  /** The CPUs everything else shares. */
  readonly rest: string;
  /** Every CPU this process may use, to give back afterwards. */
  readonly all: string;
}

/** A placement, or null when there are fewer than 2 CPUs or no taskset (the figures then share the CPUs). */
export function cpuPlacement(): CpuPlacement | null {
  const all = allowedCpus();
  if (all === null || all.length < 2) return null;
  return { model: String(all.at(-1)), rest: all.slice(0, -1).join(","), all: all.join(",") };
}

/** Puts every thread of process `pid` on `cpus` (a taskset list). */
export function placeProcess(pid: number, cpus: string): void {
  execFileSync("taskset", ["-a", "-c", "-p", cpus, String(pid)], { stdio: "ignore" });
}

function allowedCpus(): number[] | null {
  try {
    // "pid 123's current affinity list: 0,1" (or ranges: "0-3,6")
    const out = execFileSync("taskset", ["-c", "-p", String(process.pid)], { encoding: "utf8" });
    const list = out.slice(out.lastIndexOf(":") + 1).trim();
    return list.split(",").flatMap((part) => {
      const [a, b] = part.split("-").map(Number);
      return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
    });
  } catch {
    return null; // no taskset here
  }
}
