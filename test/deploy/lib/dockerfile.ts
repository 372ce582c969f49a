/**
 * A small Dockerfile reader for the image checks: instructions with their continuation
 * lines joined, comments dropped, ARG defaults before the first FROM substituted into
 * FROM lines, and the stages those instructions belong to.
 */
export interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly index: number;
  readonly name: string | null;
  /** The image or stage it starts from, ARG defaults substituted. */
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  readonly globalArgs: Readonly<Record<string, string>>;
  readonly stages: readonly Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  const lines = text.split("\n");
  let pending = "";
  let start = 0;
  lines.forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (pending !== "" && line.trimStart().startsWith("#")) return; // comment inside a continuation
    if (pending === "") start = i + 1;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      return;
    }
    const full = (pending + line).trim();
    pending = "";
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (m) instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, " ").trim(), line: start });
  });

  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  let current: { name: string | null; from: string; instructions: Instruction[] } | null = null;
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: cannot read FROM ${ins.args}`);
      const from = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => globalArgs[a ?? b] ?? "");
      current = { name: m[2] ?? null, from, instructions: [] };
      stages.push({ index: stages.length, ...current, instructions: current.instructions });
      continue;
    }
    if (!current) {
      if (ins.keyword === "ARG") {
        const [name, value = ""] = ins.args.split("=", 2);
        globalArgs[name!.trim()] = value.trim();
      }
      continue;
    }
    current.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** The JSON array of an exec-form ENTRYPOINT/CMD, or null for the shell form. */
export function execForm(args: string): string[] | null {
  try {
    const v = JSON.parse(args) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : null;
  } catch {
    return null;
  }
}

/** The stage a name or index refers to, following `FROM <stage>` chains to the image. */
export function baseImage(df: Dockerfile, stage: Stage): string {
  const parent = df.stages.find((s) => s.name === stage.from && s.index < stage.index);
  return parent ? baseImage(df, parent) : stage.from;
}

export function last(stage: Stage, keyword: string): Instruction | undefined {
  return [...stage.instructions].reverse().find((i) => i.keyword === keyword);
}

/**
 * .dockerignore as Docker reads it, for the patterns this repo uses: a leading `**\/`
 * matches at any depth, `*` within one path segment, a bare name matches that path and
 * everything under it. `!` exceptions are not used here and are refused.
 */
export function dockerIgnoreMatcher(text: string): (relPath: string) => boolean {
  const patterns = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  if (patterns.some((p) => p.startsWith("!"))) throw new Error(".dockerignore exceptions are not supported here");
  const regexes = patterns.map((p) => {
    const body = p
      .replace(/^\/+/, "")
      .split("/")
      .map((seg) =>
        seg === "**"
          ? "(?:.*/)?"
          : seg
              .replace(/[.+^${}()|[\]\\]/g, "\\$&")
              .replace(/\*/g, "[^/]*")
              .replace(/\?/g, "[^/]") + "/",
      )
      .join("")
      .replace(/\(\?:\.\*\/\)\?\//g, "(?:.*/)?");
    return new RegExp(`^${body.replace(/\/$/, "")}(?:/.*)?$`);
  });
  return (relPath) => regexes.some((r) => r.test(relPath));
}
