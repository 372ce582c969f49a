/**
 * "Before" code for a before → after benchmark: a git worktree of a fixed commit under
 * .cache/bench-before, its node_modules a symlink to the repo's, so its services run with
 * `node --import tsx <tree>/gateway/main.ts` beside the working tree's in the same run.
 * Reused when it is already at the commit; moved there (checkout --force) when not.
 */
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, symlinkSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../../testkit/services.js";

/** Where a scenario's services come from: `entry` gives an entry point's path for startService. */
export interface CodeTree {
  label: "before" | "after";
  /** The commit it runs (the working tree's HEAD for "after", which may hold uncommitted changes). */
  commit: string;
  entry(file: string): string;
}

function git(args: string[], cwd = REPO_ROOT): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** The working tree, as "after". */
export function workingTree(): CodeTree {
  return { label: "after", commit: git(["rev-parse", "HEAD"]), entry: (file) => file };
}

/** A worktree of `commit` under .cache/bench-before, as "before"; made (or moved) on first use. */
export function beforeTree(commit: string, dir = path.join(REPO_ROOT, ".cache", "bench-before")): CodeTree {
  let full: string;
  try {
    full = git(["rev-parse", "--verify", `${commit}^{commit}`]);
  } catch {
    throw new Error(
      `the "before" commit ${commit} is not in this clone (a shallow one?): fetch it (git fetch --unshallow) or name another with BENCH_BEFORE_COMMIT`,
    );
  }
  if (!existsSync(path.join(dir, ".git"))) {
    git(["worktree", "prune"]);
    git(["worktree", "add", "--detach", "--force", dir, full]);
  } else if (git(["rev-parse", "HEAD"], dir) !== full) {
    git(["checkout", "--force", "--detach", full], dir);
  }
  const modules = path.join(dir, "node_modules");
  if (!existsSync(modules) && !isLink(modules)) symlinkSync(path.join(REPO_ROOT, "node_modules"), modules, "dir");
  return { label: "before", commit: full, entry: (file) => path.join(dir, file) };
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
