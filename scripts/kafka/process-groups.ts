/**
 * Broker processes run in process groups of their own; these are the groups this process
 * started and has not stopped yet, killed (and their temp dirs removed) when it goes away.
 */
import fs from "node:fs";

/** Process groups of brokers started by this process and not yet stopped → temp dir to remove. */
const liveGroups = new Map<number, string | undefined>();
const FATAL_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

function killAllSync(): void {
  for (const [pgid, tempDir] of liveGroups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
    // Only synchronous work runs in an 'exit' handler. Best effort: SIGKILL is immediate, and
    // the retries cover a file the dying JVM was still creating.
    try {
      if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // a leftover temp dir is not worth failing the exit over
    }
  }
  liveGroups.clear();
}

/**
 * The broker runs in its own process group, so Ctrl-C does not reach it and a dying parent does
 * not take it along. 'exit' covers normal ends and uncaught exceptions; a signal kills node
 * without 'exit', so while brokers run we also watch the usual signals — but only act when
 * nobody else handles the signal (e.g. the CLI stops gracefully itself), and then re-raise it
 * so the process still dies the way it would have.
 */
function onFatalSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  killAllSync();
  untrackAll();
  process.kill(process.pid, signal);
}

export function track(pgid: number, tempDir: string | undefined): void {
  if (liveGroups.size === 0) {
    process.on("exit", killAllSync);
    for (const s of FATAL_SIGNALS) process.on(s, onFatalSignal);
  }
  liveGroups.set(pgid, tempDir);
}

export function untrack(pgid: number): void {
  liveGroups.delete(pgid);
  if (liveGroups.size === 0) untrackAll();
}

function untrackAll(): void {
  process.off("exit", killAllSync);
  for (const s of FATAL_SIGNALS) process.off(s, onFatalSignal);
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: already exited
  }
}
