/** The Markdown summary of a run: environment, the table (with the command behind each row), targets, notes. */
import type { Environment } from "./env.js";
import type { ScenarioResult } from "./scenario.js";

const esc = (s: string) => s.replace(/\|/g, "\\|");

export function renderTable(results: readonly ScenarioResult[]): string {
  const lines = ["| scenario | figure | measured | compared with | command |", "| --- | --- | --- | --- | --- |"];
  for (const r of results) {
    for (const row of r.rows)
      lines.push(`| ${esc(r.title.split(" ")[0]!)} ${r.id} | ${esc(row.figure)} | ${esc(row.measured)} | ${esc(row.compared)} | \`${r.command}\` |`);
  }
  return lines.join("\n");
}

export function renderTargets(results: readonly ScenarioResult[]): string {
  const lines = ["| scenario | target | measured | met? | why (for a miss) |", "| --- | --- | --- | --- | --- |"];
  for (const r of results) {
    for (const t of r.targets) lines.push(`| ${r.id} | ${esc(t.target)} | ${esc(t.measured)} | ${t.met ? "met" : "**missed**"} | ${esc(t.why ?? "")} |`);
  }
  return lines.join("\n");
}

export function renderSummary(
  results: readonly ScenarioResult[],
  failures: ReadonlyArray<{ id: string; error: string }>,
  env: Environment,
  totalS: number,
): string {
  const out: string[] = [];
  const oneRun = results.every((r) => r.environment.at === env.at);
  out.push("# kafka-llm benchmark results", "");
  out.push(
    `${oneRun ? "Measured" : "Latest run"} ${env.at} on ${env.cpus} × ${env.cpuModel}, ${env.memoryGiB} GiB, ${env.platform}; Node ${env.node}; ` +
      `Kafka ${env.kafkaVersion} (single local KRaft broker) with ${env.kafkaClient}; model ${env.model.file.split("/").pop()} ` +
      `(sha256 ${env.model.sha256.slice(0, 12)}…), ${env.llama}; commit ${commitOf(env)}.` +
      `${env.quick ? " **Quick (smoke) run: small sizes, not for comparison.**" : ""} ${oneRun ? "Whole run" : "That run"}: ${totalS} s.`,
    "",
    ...(oneRun
      ? []
      : [
          "The scenarios were measured in more than one run (`npm run bench -- --only NAME` replaces its scenarios' sections): " +
            "each section's notes say when, and on which commit. Compare figures only within one scenario's rows.",
          "",
        ]),
    "The machine is shared and noisy (1-minute load average per scenario below): absolute times only mean something beside " +
      "their baseline from the same run. Every row compares figures measured in the same run.",
    "",
  );
  out.push("## Figures", "", renderTable(results), "");
  out.push("## Targets", "", renderTargets(results), "");
  if (failures.length) {
    out.push("## Failed or broken (the run exits non-zero)", "");
    for (const f of failures) out.push(`- **${f.id}**: \`${f.error.split("\n")[0]}\``);
    out.push("");
  }
  out.push("## Notes per scenario", "");
  for (const r of results) {
    out.push(
      `### ${r.title}`,
      "",
      `\`${r.command}\` — measured ${r.environment.at} on commit ${commitOf(r.environment)}, ${r.durationS} s, load average ${r.loadAverage.before} → ${r.loadAverage.after}; raw numbers in \`bench/results/${r.id}.json\`.`,
      "",
    );
    for (const n of r.notes) out.push(`- ${n}`);
    out.push("");
  }
  return out.join("\n");
}

function commitOf(env: Environment): string {
  return `${env.commit.slice(0, 12)}${env.dirty ? " (with uncommitted changes)" : ""}`;
}
