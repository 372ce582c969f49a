/**
 * How many threads llama.cpp may use. Its threads spin while they wait, so more threads
 * than CPUs makes generation orders of magnitude slower. In a pod the limit is the
 * cgroup CPU quota, not the host's core count that os.cpus() reports.
 */
import { readFileSync } from "node:fs";
import os from "node:os";

/** CPUs allowed by the cgroup quota (v2 cpu.max, else v1 cfs), or null when unlimited. */
export function cgroupCpuLimit(read: (path: string) => string | null = tryRead): number | null {
  const v2 = read("/sys/fs/cgroup/cpu.max");
  if (v2 !== null) return parseCpuMax(v2);
  const quota = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const period = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  if (quota === null || period === null) return null;
  const q = Number(quota.trim());
  const p = Number(period.trim());
  return q > 0 && p > 0 ? q / p : null;
}

/** Parses cgroup v2 cpu.max ("max 100000" or "150000 100000"). */
export function parseCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === "max") return null;
  const q = Number(quota);
  const p = Number(period ?? "100000");
  return q > 0 && p > 0 ? q / p : null;
}

/**
 * Threads for generation: `configured` when > 0, else the CPU quota rounded down (at
 * least 1), capped by the CPUs this process may run on.
 */
export function generationThreads(configured: number, limit = cgroupCpuLimit(), cpus = os.availableParallelism()): number {
  if (configured > 0) return configured;
  const byQuota = limit === null ? cpus : Math.max(1, Math.floor(limit));
  return Math.max(1, Math.min(byQuota, cpus));
}

function tryRead(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}
