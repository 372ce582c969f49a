/**
 * Hostile schemas (issue 24, item 5): how long a structured-output turn stalls the worker's
 * event loop, which every other conversation of the worker shares. node-llama-cpp builds a
 * schema's grammar on the main thread and llama.cpp parses it there, when it is made and
 * again when a sequence samples with it; the grammar bounds (contracts/grammar-bounds.ts)
 * are what keep that short.
 *
 * In this process, with the worker's model loading, generator and grammar cache: the
 * event-loop delay's max (perf_hooks monitorEventLoopDelay, 1 ms resolution) over a plain
 * text turn, a turn under an ordinary schema, and turns under the most hostile schema of
 * each shape the bounds still accept (the largest that passes), each with a schema the cache
 * has not seen. And for the hostile schema of the issue (2,000 properties with 1,000 distinct
 * bounds, which the gateway used to accept): what the bounds check costs to refuse it, and
 * the stall compiling it costs, as the worker did before the bounds.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { GenerationParams } from "../../contracts/generation-params.js";
import { MAX_GRAMMAR_RULES, checkGrammarBounds } from "../../contracts/grammar-bounds.js";
import { normalizeJsonSchema } from "../../contracts/grammar-schema.js";
import { createLogger } from "../../platform/logger.js";
import { SequenceGenerator } from "../../worker/generator.js";
import { grammarCacheFor } from "../../worker/grammar.js";
import { loadLlm } from "../../worker/llm.js";
import { modelConfig } from "../baselines/in-process.js";
import { describeLlama } from "../lib/llama-settings.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt, ms } from "../lib/scenario.js";
import { median } from "../lib/stats.js";

type Schema = Record<string, unknown>;

const MAX_TOKENS = 24;
/** The worst stall a turn under an accepted schema may cause: a few tokens' time on a CPU. */
const TARGET_STALL_MS = 50;

function objectOf(n: number, property: (i: number) => Schema): Schema {
  const properties: Schema = {};
  for (let i = 0; i < n; i++) properties[`field_${i}`] = property(i);
  return { type: "object", properties, required: Object.keys(properties) };
}

function passes(schema: Schema): boolean {
  return checkGrammarBounds([{ path: [], schema: normalizeJsonSchema(schema) }]).problem === null;
}

/** The largest n for which `make(n)` passes the bounds (they grow with n). */
function largest(make: (n: number) => Schema, limit = 20_000): number {
  let lo = 1;
  let hi = limit;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (passes(make(mid))) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The most hostile schema of each shape that the bounds accept. */
function hostileAccepted(): Array<{ shape: string; schema: Schema }> {
  const enumOf = (chars: number) => ({
    type: "object",
    properties: { choice: { enum: Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(4, "0")}${"x".repeat(chars)}`) } },
    required: ["choice"],
  });
  const shapes: Array<[string, (n: number) => Schema]> = [
    ["strings with distinct maxLength", (n) => objectOf(n, (i) => ({ type: "string", maxLength: 1000 - (i % 1000) }))],
    ["arrays with distinct maxItems", (n) => objectOf(n, (i) => ({ type: "array", items: { type: "integer" }, maxItems: 1000 - (i % 1000) }))],
    [
      "maps with distinct maxProperties",
      (n) => objectOf(n, (i) => ({ type: "object", additionalProperties: { type: "integer" }, maxProperties: 1000 - (i % 1000) })),
    ],
    ["1,000 long enum values", (n) => enumOf(n)],
    ["plain string properties", (n) => objectOf(n, () => ({ type: "string" }))],
    ["nested objects", (n) => objectOf(n, () => ({ type: "object", properties: { a: { type: "string" }, b: { type: "number" } }, required: ["a", "b"] }))],
    ["anyOf properties", (n) => objectOf(n, () => ({ anyOf: [{ type: "string" }, { type: "null" }] }))],
  ];
  return shapes.map(([shape, make]) => ({ shape, schema: make(largest(make)) }));
}

const PLAIN: Schema = {
  type: "object",
  properties: { name: { type: "string", maxLength: 16 }, age: { type: "integer" }, colour: { enum: ["black", "white", "ginger"] } },
  required: ["name", "age", "colour"],
};

/** The issue's schema: 2,000 properties with 1,000 distinct bounds, every one within MAX_GRAMMAR_REPETITION. */
const ISSUE_HOSTILE: Schema = objectOf(2000, (i) => ({ type: "string", maxLength: 1000 - (i % 1000) }));

/** The event loop's longest delay while `work` runs, in ms. */
async function stallOf(work: () => Promise<unknown>): Promise<{ stallMs: number; wallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  // Let the histogram's timer start before the work does.
  await new Promise((resolve) => setTimeout(resolve, 5));
  h.enable();
  await new Promise((resolve) => setTimeout(resolve, 5));
  const started = performance.now();
  await work();
  const wallMs = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 5));
  h.disable();
  return { stallMs: h.max / 1e6, wallMs };
}

export const grammarScenario: Scenario = {
  id: "grammar",
  title: "13. Hostile schemas: the worker's event-loop stall per structured-output turn",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const repeats = ctx.quick ? 2 : 8;
    const llm = await loadLlm(modelConfig(ctx.model), createLogger("bench", "error"), 1);
    const generator = new SequenceGenerator(llm.context.getSequence());
    const grammars = grammarCacheFor(llm.llama);
    let run = 0;
    /** The schema with a description no turn had: the cache has not built its grammar. */
    const fresh = (schema: Schema): Schema => ({ ...normalizeJsonSchema(schema), description: `run ${run++}` });
    const turn = (params: GenerationParams) =>
      generator.generate({
        messages: [{ role: "user", content: "Once upon a time" }],
        params: { max_tokens: MAX_TOKENS, temperature: 0, ...params },
        defaultMaxTokens: MAX_TOKENS,
        onText: () => {},
      });
    const schemaTurn = (schema: Schema) => turn({ response_format: { type: "json_schema", json_schema: { name: "out", schema: fresh(schema) } } });

    interface Measured {
      label: string;
      rules: number;
      turnStallMs: number[];
      compileStallMs: number[];
      compileMs: number[];
    }
    const measure = async (label: string, schema: Schema | null): Promise<Measured> => {
      const rules = schema ? checkGrammarBounds([{ path: [], schema: normalizeJsonSchema(schema) }]).estimate.rules : 0;
      const m: Measured = { label, rules, turnStallMs: [], compileStallMs: [], compileMs: [] };
      for (let i = 0; i < repeats; i++) {
        m.turnStallMs.push((await stallOf(() => (schema ? schemaTurn(schema) : turn({})))).stallMs);
        if (schema) {
          const compiled = await stallOf(() => grammars.forSchema(fresh(schema)));
          m.compileStallMs.push(compiled.stallMs);
          m.compileMs.push(compiled.wallMs);
        }
      }
      ctx.log(`${label}: ~${rules} rules, turn stall max ${fmt(Math.max(...m.turnStallMs))} ms, compile ${fmt(median(m.compileMs))} ms`);
      return m;
    };

    let issue: { rules: number; checkMs: number; compileStallMs: number; compileMs: number };
    const measured: Measured[] = [];
    try {
      // Warm: the model's first evaluation and the JSON grammar machinery.
      await schemaTurn(PLAIN);
      measured.push(await measure("plain text turn", null));
      measured.push(await measure("ordinary schema", PLAIN));
      for (const { shape, schema } of hostileAccepted()) measured.push(await measure(`most hostile accepted: ${shape}`, schema));

      const normalized = normalizeJsonSchema(ISSUE_HOSTILE);
      const checkStarted = performance.now();
      const { estimate, problem } = checkGrammarBounds([{ path: [], schema: normalized }]);
      const checkMs = performance.now() - checkStarted;
      if (problem === null) throw new Error("the issue's hostile schema passed the grammar bounds");
      // As the worker compiled it before the bounds (it parses: every bound is under 2,000).
      const before = await stallOf(() => llm.llama.createGrammarForJsonSchema(normalized as never));
      issue = { rules: estimate.rules, checkMs, compileStallMs: before.stallMs, compileMs: before.wallMs };
      ctx.log(`issue's hostile schema: ~${estimate.rules} rules, refused in ${fmt(checkMs, 2)} ms; compiling it stalled ${fmt(before.stallMs)} ms`);
    } finally {
      generator.dispose();
      await llm.dispose();
    }

    // The baseline is the turn under an ordinary schema: a plain text turn builds no grammar.
    // A turn's stall is its event loop's longest delay; its median over the turns is
    // printed beside the max, which a busy machine's scheduling alone can raise.
    const maxOf = (m: Measured) => Math.max(...m.turnStallMs);
    const typical = (m: Measured) => median(m.turnStallMs);
    const ordinary = measured[1]!;
    const hostile = measured.slice(2);
    const worst = hostile.reduce((a, b) => (typical(b) > typical(a) ? b : a));
    const worstMax = hostile.reduce((a, b) => (maxOf(b) > maxOf(a) ? b : a));
    const rows: Row[] = measured.map((m) => ({
      figure: `event-loop stall per turn, max (median) over ${repeats} turns: ${m.label}${m.rules ? ` (~${m.rules} rules)` : ""}`,
      measured: `${ms(maxOf(m))} (${ms(typical(m))})`,
      compared:
        m === measured[0]
          ? "no grammar"
          : m === ordinary
            ? `baseline; compile ${ms(median(m.compileMs))}`
            : `median ${fmt(typical(m) / typical(ordinary), 1)}x the ordinary schema's; compile ${ms(median(m.compileMs))}`,
    }));
    rows.push({
      figure: `the issue's schema (2,000 properties, 1,000 distinct bounds; ~${issue.rules} rules): refused by the bounds check in`,
      measured: ms(issue.checkMs),
      compared: `compiling it, as before the bounds: ${ms(issue.compileStallMs)} stall`,
    });
    return {
      rows,
      targets: [
        {
          target: `a turn under the most hostile schema the bounds accept stalls the event loop <= ${TARGET_STALL_MS} ms (median over the turns)`,
          measured: `${ms(typical(worst))} (${worst.label}); the largest max ${ms(maxOf(worstMax))} (${worstMax.label}), a plain text turn's ${ms(maxOf(measured[0]!))}`,
          met: typical(worst) <= TARGET_STALL_MS,
          ...(typical(worst) <= TARGET_STALL_MS
            ? {}
            : { why: `lower MAX_GRAMMAR_RULES (${MAX_GRAMMAR_RULES}) in contracts/grammar-bounds.ts, or build grammars off the main thread` }),
        },
      ],
      notes: [
        `${describeLlama()}; stories260K, one sequence, turns of ${MAX_TOKENS} tokens at temperature 0; each turn and each compile with a schema the grammar cache had not seen. A turn's stall holds the grammar's build (node-llama-cpp's GBNF and llama.cpp's parse) and llama.cpp's second parse when the sequence's sampler is made; the compile figure is the build alone.`,
        `"Most hostile accepted" is the largest schema of its shape that passes contracts/grammar-bounds.ts (MAX_GRAMMAR_RULES ${MAX_GRAMMAR_RULES}, MAX_GRAMMAR_REPETITION, MAX_GRAMMAR_ENUM_VALUES, MAX_GRAMMAR_TEXT_CHARS), found by bisection on the estimate.`,
      ],
      raw: { repeats, maxTokens: MAX_TOKENS, measured, issue },
    };
  },
};
