/**
 * The command-line tools the deployment checks use. They are installed by
 * scripts/deploy/tools.sh (Helm and hadolint into .cache/bin, Prometheus from Debian); a
 * missing one fails the check with the command that installs it, never skips it.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../../helpers/services.js";

const LOCAL = path.join(REPO_ROOT, ".cache", "bin");

export function toolPath(name: "helm" | "hadolint" | "prometheus" | "promtool"): string {
  const local = path.join(LOCAL, name);
  if (existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} is not installed: run bash scripts/deploy/tools.sh`);
}
