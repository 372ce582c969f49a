/** The Python tools of scripts/python-tools.txt, installed by scripts/setup.sh (ensure_python_tools). */
import { existsSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./services.js";

/** The path of a command in .cache/python-tools/bin; throws, saying how to install it, when absent. */
export function pythonTool(command: string): string {
  const file = path.join(REPO_ROOT, ".cache", "python-tools", "bin", command);
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: run bash -c '. scripts/setup.sh && ensure_python_tools' (scripts/test.sh does)`);
  }
  return file;
}
