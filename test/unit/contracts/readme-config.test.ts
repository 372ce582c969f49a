/**
 * docs/configuration.md's tables against the zod config (contracts/config/): every
 * variable a service reads is in its table with the default the code applies, and the
 * tables list nothing the code does not read. So the two cannot drift apart.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import type { z } from "zod";
import { gatewayFields } from "../../../contracts/config/gateway.js";
import { kafkaFields } from "../../../contracts/config/shared.js";
import { tracingFields } from "../../../contracts/config/tracing.js";
import { workerFields } from "../../../contracts/config/worker.js";

const CONFIGURATION = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../docs/configuration.md");

interface Row {
  names: string[];
  defaultCell: string;
}

/** The rows of the table under `## heading` in docs/configuration.md. */
function configTable(markdown: string, heading: string): Row[] {
  const part = markdown.split(/^## /m).find((s) => s.startsWith(`${heading}\n`));
  assert.ok(part, `docs/configuration.md has a "## ${heading}" table`);
  return part
    .split("\n")
    .filter((line) => line.startsWith("|") && !/^\|\s*(variable|---)/.test(line))
    .map((line) => {
      const cells = line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim());
      return { names: [...cells[0]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!), defaultCell: cells[1] ?? "" };
    });
}

/** Defaults the doc states in words because the code's default is a stand-in for them. */
const IN_WORDS: Record<string, { words: string; code: unknown }> = {
  KAFKA_EVENT_PARTITIONS: { words: "same as requests", code: 0 },
  WORKER_ID: { words: "host name", code: os.hostname() },
};

/** The default the schema applies to an unset variable, as the doc writes it; null when there is none. */
function codeDefault(schema: z.ZodType): string | null {
  const parsed = schema.safeParse(undefined);
  if (!parsed.success || parsed.data === undefined) return null; // required, or optional without a default
  const value: unknown = parsed.data;
  const text = Array.isArray(value) ? value.join(",") : String(value);
  return text === "" ? null : text;
}

/** Problems with one row's default cell against the schema of `name`. */
function defaultProblem(name: string, schema: z.ZodType, cell: string): string | null {
  const words = IN_WORDS[name];
  if (words) {
    if (schema.safeParse(undefined).data !== words.code)
      return `${name}: the code's default is no longer ${String(words.code)}; update the test and docs/configuration.md`;
    return cell.includes(words.words) ? null : `${name}: the doc should say "${words.words}", says ${cell}`;
  }
  const expected = codeDefault(schema);
  const shown = /^`([^`]*)`/.exec(cell)?.[1];
  if (expected === null) {
    return shown === undefined ? null : `${name}: has no default in the code, the doc says \`${shown}\``;
  }
  if (shown === undefined) return `${name}: the doc should give the default \`${expected}\`, says ${cell || "nothing"}`;
  // A long default may be cut short with "…".
  const matches = shown.endsWith("…") ? expected.startsWith(shown.slice(0, -1).trimEnd()) : shown === expected;
  return matches ? null : `${name}: the doc says \`${shown}\`, the code's default is \`${expected}\``;
}

/** What is wrong with docs/configuration.md's `heading` table against `fields`: missing, extra or doubled rows, wrong defaults. */
function tableProblems(markdown: string, heading: string, fields: Record<string, z.ZodType>): string[] {
  const rows = configTable(markdown, heading);
  const listed = rows.flatMap((r) => r.names);
  const problems: string[] = [];
  for (const name of Object.keys(fields)) if (!listed.includes(name)) problems.push(`${name}: read by the config, missing from the "${heading}" table`);
  for (const name of listed) if (!(name in fields)) problems.push(`${name}: in the "${heading}" table, but the config does not read it`);
  for (const name of new Set(listed)) if (listed.filter((n) => n === name).length > 1) problems.push(`${name}: listed twice in "${heading}"`);
  for (const r of rows) for (const n of r.names) if (fields[n]) problems.push(...[defaultProblem(n, fields[n], r.defaultCell)].filter((p) => p !== null));
  return problems;
}

const without = (fields: Record<string, z.ZodType>, drop: Record<string, unknown>) => Object.fromEntries(Object.entries(fields).filter(([k]) => !(k in drop)));

const doc = readFileSync(CONFIGURATION, "utf8");
const workerOwn = without(workerFields, kafkaFields);
const gatewayOwn = without(gatewayFields, kafkaFields);

describe("docs/configuration.md's tables match contracts/config/", () => {
  it("Both services: the Kafka variables and their defaults", () => {
    assert.deepEqual(tableProblems(doc, "Both services", kafkaFields), []);
  });
  it("Tracing: OpenTelemetry's variables both services read", () => {
    assert.deepEqual(tableProblems(doc, "Tracing", tracingFields), []);
  });
  it("Worker: the worker's own variables and their defaults", () => {
    assert.deepEqual(tableProblems(doc, "Worker", workerOwn), []);
  });
  it("Gateway: the gateway's own variables and their defaults", () => {
    assert.deepEqual(tableProblems(doc, "Gateway", gatewayOwn), []);
  });

  it("the check catches drift: a missing row, an extra row, a wrong default", () => {
    const header = "| variable | default | meaning |\n| --- | --- | --- |\n";
    assert.ok(doc.includes(`## Worker\n\n${header}`), "the Worker table starts as the test expects");
    const edited = doc
      .replace(/^\| `WORKER_SLOTS` .*\n/m, "")
      .replace(/^\| `DEFAULT_MAX_TOKENS` \| `\d+`/m, "| `DEFAULT_MAX_TOKENS` | `999`")
      .replace(`## Worker\n\n${header}`, `## Worker\n\n${header}| \`NOT_READ\` | \`1\` | x |\n| \`MODEL\` | \`x.gguf\` | x |\n`);
    const problems = tableProblems(edited, "Worker", workerOwn).join("\n");
    assert.match(problems, /WORKER_SLOTS: read by the config, missing/);
    assert.match(problems, /NOT_READ: in the "Worker" table, but the config does not read it/);
    assert.match(problems, /MODEL: listed twice/);
    assert.match(problems, /MODEL: has no default in the code, the doc says `x.gguf`/);
    assert.match(problems, /DEFAULT_MAX_TOKENS: the doc says `999`, the code's default is `256`/);
    assert.match(defaultProblem("SYSTEM_PROMPT", workerOwn.SYSTEM_PROMPT!, "`Something else …`") ?? "", /the doc says/);
  });
});
