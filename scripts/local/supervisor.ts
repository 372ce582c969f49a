/**
 * Runs local processes the way their Kubernetes objects would: a `replicated` process (a
 * worker of the Deployment) that dies is logged and started again after a back-off, while
 * the others keep going; a process that is not replicated (the broker, the gateway) dying
 * ends the run. Each process runs in its own process group, so a Ctrl-C reaches only the
 * supervisor, which stops them in order; whatever is still alive when the supervisor
 * exits is killed with its group.
 */
import { writeFileSync } from "node:fs";
import { execa, type ResultPromise } from "execa";

export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  /** The pid of the running process is written here (for `kill $(cat ...)`). */
  readonly pidFile?: string;
  /** Restart it when it dies (a replica); otherwise its death ends the run. */
  readonly replicated: boolean;
  /** How long a stop waits after SIGTERM before SIGKILL, ms. */
  readonly stopGraceMs: number;
  /**
   * Never SIGKILL it, only SIGTERM: for a process that must clean up after itself (the
   * broker script, which stops its JVM; killed, it would leave the JVM running).
   */
  readonly termOnly?: boolean;
}

/** Back-off before restart number n: 1 s doubling to 30 s; a process that stayed up a minute starts over at 1 s. */
export function restartDelayMs(previousDelayMs: number | null, uptimeMs: number): number {
  if (previousDelayMs === null || uptimeMs >= 60_000) return 1000;
  return Math.min(previousDelayMs * 2, 30_000);
}

type Log = (line: string) => void;

interface Running {
  spec: ProcessSpec;
  child: ResultPromise | null;
  restartTimer: NodeJS.Timeout | null;
}

export class Supervisor {
  readonly #log: Log;
  readonly #running = new Map<string, Running>();
  #stopping = false;
  #fatal: ((reason: string) => void) | null = null;
  /** Resolves with the reason the run must end (a non-replicated process died). */
  readonly ended: Promise<string>;

  constructor(log: Log) {
    this.#log = log;
    this.ended = new Promise((resolve) => (this.#fatal = resolve));
    process.on("exit", () => this.#killAllSync());
  }

  /** Starts `spec` and keeps it running as its spec says. */
  start(spec: ProcessSpec): void {
    const entry: Running = { spec, child: null, restartTimer: null };
    this.#running.set(spec.name, entry);
    this.#launch(entry, null);
  }

  pid(name: string): number | undefined {
    return this.#running.get(name)?.child?.pid;
  }

  #launch(entry: Running, previousDelayMs: number | null): void {
    const { spec } = entry;
    const startedAt = Date.now();
    const child = execa(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      extendEnv: true,
      stdin: "ignore",
      stdout: { file: spec.logFile, append: true },
      stderr: { file: spec.logFile, append: true },
      detached: true, // its own process group: the terminal's Ctrl-C goes to the supervisor only
      cleanup: false, // #killAllSync does that, for the whole group
      forceKillAfterDelay: spec.termOnly ? false : spec.stopGraceMs,
      reject: false,
    });
    entry.child = child;
    if (spec.pidFile && child.pid !== undefined) writeFileSync(spec.pidFile, `${child.pid}\n`);
    void child.then((result) => {
      entry.child = null;
      // Whatever it started in its group (node-llama-cpp tests its binaries in a child
      // process) goes with it; a termOnly process's helpers stop themselves.
      if (!spec.termOnly && child.pid !== undefined) killGroup(child.pid);
      if (this.#stopping) return;
      const how = result.signal ? `signal ${result.signal}` : `code ${result.exitCode ?? "?"}`;
      const upS = ((Date.now() - startedAt) / 1000).toFixed(1);
      if (!spec.replicated) {
        this.#fatal?.(`${spec.name} exited (${how}) after ${upS} s; see ${spec.logFile}`);
        return;
      }
      const delay = restartDelayMs(previousDelayMs, Date.now() - startedAt);
      this.#log(`${spec.name} exited (${how}) after ${upS} s; starting it again in ${delay / 1000} s (the others keep serving; log ${spec.logFile})`);
      entry.restartTimer = setTimeout(() => {
        entry.restartTimer = null;
        if (this.#stopping) return;
        this.#launch(entry, delay);
        this.#log(`${spec.name} started again (pid ${entry.child?.pid ?? "?"})`);
      }, delay);
    });
  }

  /**
   * Stops every process: the groups of `order` one after the other (SIGTERM, SIGKILL
   * after their grace), then any others at once. Resolves when all are gone.
   */
  async stop(order: readonly (readonly string[])[]): Promise<void> {
    this.#stopping = true;
    for (const entry of this.#running.values()) if (entry.restartTimer) clearTimeout(entry.restartTimer);
    const named = new Set(order.flat());
    const rest = [...this.#running.keys()].filter((n) => !named.has(n));
    for (const group of [...order, rest]) {
      await Promise.all(
        group.map(async (name) => {
          const child = this.#running.get(name)?.child;
          if (!child) return;
          child.kill("SIGTERM");
          await child;
        }),
      );
    }
  }

  /** Stops everything now (a second Ctrl-C): SIGKILL to every group (SIGTERM to termOnly ones). */
  killNow(): void {
    this.#stopping = true;
    this.#killAllSync();
  }

  #killAllSync(): void {
    for (const entry of this.#running.values()) {
      if (entry.restartTimer) clearTimeout(entry.restartTimer);
      const pid = entry.child?.pid;
      if (pid === undefined) continue;
      try {
        process.kill(-pid, entry.spec.termOnly ? "SIGTERM" : "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is empty: nothing was left
  }
}
