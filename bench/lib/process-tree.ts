/**
 * CPU time of a process and everything it started, from /proc. A service's own /proc/<pid>/stat
 * leaves out its children while they run (the gateway describes the worker group in a child
 * process, platform/kafka/group-describer.ts), and counts a child only once it has exited and
 * been waited for (cutime, cstime): both are added here.
 */
import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS = 100; // USER_HZ on Linux

interface Stat {
  ppid: number;
  /** utime + stime, s. */
  own: number;
  /** cutime + cstime (exited children it waited for), s. */
  reaped: number;
}

function statOf(pid: number): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), own: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS, reaped: (Number(f[13]) + Number(f[14])) / CLOCK_TICKS };
  } catch {
    return null; // gone since the listing
  }
}

/** CPU seconds (user + system) of `root` itself and of its descendants, running or exited. */
export function treeCpuSeconds(root: number): { self: number; children: number } {
  const stats = new Map<number, Stat>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = statOf(Number(name));
    if (s) stats.set(Number(name), s);
  }
  const top = stats.get(root);
  if (!top) throw new Error(`no process ${root}`);
  const byParent = new Map<number, number[]>();
  for (const [pid, s] of stats) byParent.set(s.ppid, [...(byParent.get(s.ppid) ?? []), pid]);
  let children = top.reaped;
  const queue = [...(byParent.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    const s = stats.get(pid)!;
    children += s.own + s.reaped;
    queue.push(...(byParent.get(pid) ?? []));
  }
  return { self: top.own, children };
}
