/**
 * What a request's JSON schemas (response_format, tool parameters) may cost the worker as a
 * grammar. node-llama-cpp turns a schema into GBNF on the worker's main thread, and
 * llama.cpp parses that GBNF, synchronously too, when the grammar is made and again for each
 * sequence that samples with it: a schema that expands into a large grammar stalls every
 * other turn of the worker, and one llama.cpp refuses fails the turn after it was queued
 * (and llama.cpp prints the refused grammar, with the schema's values, to stderr).
 *
 * So the gateway refuses such a schema with a 400 naming the bound, and the worker checks
 * the same bounds before compiling (a record may come from an older gateway). Pure and cheap:
 * one walk of what the grammar holds of each schema (grammarSchemaOf, contracts/grammar-schema.ts:
 * a keyword checked after generation costs the grammar nothing), no grammar built. The
 * record schema keeps its own looser bounds, so a record queued before a bound changed
 * still decodes, and ends with an error event instead of being dead-lettered.
 */
import { grammarSchemaOf } from "./grammar-schema.js";

/**
 * The most any repetition keyword (minLength, maxLength, minItems, maxItems, minProperties,
 * maxProperties) may say. llama.cpp (src/llama-grammar.cpp, MAX_REPETITION_THRESHOLD 2000)
 * refuses `x{m,n}` when m > 2000, or when n times the rules of the repeated group reaches
 * 2000 (measured on node-llama-cpp 3.21: maxItems and maxProperties fail from 1999,
 * maxLength and minLength from 2000), and above 2000 it drops n silently, so a maxLength of
 * 5000 would not be held. Half the threshold leaves room for a repeated group of two rules;
 * test/unit/worker/grammar.test.ts compiles each keyword at the bound.
 */
export const MAX_GRAMMAR_REPETITION = 1000;

/**
 * Subschemas in one request's schemas together (every property, item, branch and
 * definition; all the tools' parameters count together, as "required" makes one grammar of
 * them). Each costs about 16 rules, so this is where the rule bound stops a schema of plain
 * properties, said in words a client can act on.
 */
export const MAX_GRAMMAR_SUBSCHEMAS = 1000;

/** Enum values in one request's schemas together: OpenAI's limit. */
export const MAX_GRAMMAR_ENUM_VALUES = 1000;

/**
 * Characters of property names, definition names, enum and const values in one request's
 * schemas together: OpenAI's limit. Each becomes grammar text llama.cpp parses.
 */
export const MAX_GRAMMAR_TEXT_CHARS = 120_000;

/**
 * The estimated size of the grammar, in rules after llama.cpp's expansion of repetitions
 * (see the weights below). Measured with `npm run bench -- --only grammar` (stories260K on
 * a 2-core machine): a turn under the most hostile schema of each shape this accepts stalls
 * the worker's event loop 7-21 ms (median of 8 turns), at most 21 ms with the machine's load
 * average at 4 and up to 95 ms at 6-8, against 4-5 ms for an ordinary schema; the hostile
 * schema of issue 24 (2,000 properties with 1,000 distinct bounds, about a million rules)
 * stalled it 0.4-1 s.
 */
export const MAX_GRAMMAR_RULES = 20_000;

/**
 * Weights of the estimate, in rules (node-llama-cpp 3.21 with stories260K, schemas the
 * grammar cache had not seen): each optional repetition (the n − m of `x{m,n}`) is a rule
 * llama.cpp builds twice, when the grammar is made and again when a sequence's sampler is
 * (about 1 µs each time); a required one is copied inline into its rule (about 1/20 of a
 * rule); each subschema brings its value, key, separator and whitespace rules (about 16
 * rules' cost, measured with 1,000 plain properties); grammar text costs about a rule per 4
 * characters.
 */
const RULES_PER_OPTIONAL_REPETITION = 2;
const RULES_PER_SUBSCHEMA = 16;
const RULES_PER_REQUIRED_REPETITION = 1 / 20;
const CHARS_PER_RULE = 4;

type Path = Array<string | number>;

/** A bound a request's schemas pass: where (path from the params) and what, without any value of the schema. */
export interface GrammarBoundProblem {
  readonly path: Path;
  /** Names the keyword or measure, its figure and the bound; no property name or value. */
  readonly message: string;
}

/** What one walk of a request's schemas counted. */
export interface GrammarEstimate {
  subschemas: number;
  enumValues: number;
  textChars: number;
  /** Estimated rules of the grammar after llama.cpp's expansion. */
  rules: number;
}

interface Walk extends GrammarEstimate {
  /** (min,max) of the string rules seen: node-llama-cpp makes one rule per distinct pair. */
  readonly strings: Set<string>;
  /** The current schema's definitions, by name: where, and the definitions it starts with. */
  readonly defs: Map<string, { path: Path; leading: Set<string> }>;
  problem: GrammarBoundProblem | null;
}

/** The schemas of a request that become grammars, with their paths from the params. */
export function requestSchemas(params: {
  response_format?: { type: string; json_schema?: { schema?: unknown } } | null | undefined;
  tools?: ReadonlyArray<{ function: { parameters?: unknown } }> | null | undefined;
}): Array<{ path: Path; schema: unknown }> {
  const schemas: Array<{ path: Path; schema: unknown }> = [];
  const format = params.response_format;
  if (format?.type === "json_schema" && format.json_schema?.schema !== undefined) {
    schemas.push({ path: ["response_format", "json_schema", "schema"], schema: format.json_schema.schema });
  }
  params.tools?.forEach((t, i) => {
    if (t.function.parameters !== undefined) schemas.push({ path: ["tools", i, "function", "parameters"], schema: t.function.parameters });
  });
  return schemas;
}

/**
 * Counts what a request's schemas (normalized, contracts/grammar-schema.ts) would cost as a
 * grammar (what grammarSchemaOf keeps of them), and the first bound they pass, or null. The
 * counts are over all the schemas together: tools in "required" mode become one grammar.
 */
export function checkGrammarBounds(schemas: ReadonlyArray<{ path: Path; schema: unknown }>): {
  estimate: GrammarEstimate;
  problem: GrammarBoundProblem | null;
} {
  const walk: Walk = { subschemas: 0, enumValues: 0, textChars: 0, rules: 0, strings: new Set(), defs: new Map(), problem: null };
  for (const { path, schema } of schemas) {
    walk.defs.clear();
    visit(isObject(schema) ? grammarSchemaOf(schema) : schema, path, walk);
    walk.problem ??= leftRecursion(walk.defs);
    if (walk.problem) break;
  }
  const estimate = {
    subschemas: walk.subschemas,
    enumValues: walk.enumValues,
    textChars: walk.textChars,
    rules: Math.ceil(walk.rules + walk.textChars / CHARS_PER_RULE),
  };
  if (walk.problem) return { estimate, problem: walk.problem };
  const where = schemas.length === 1 ? schemas[0]!.path : schemas.length > 0 ? [schemas[0]!.path[0]!] : [];
  const subject = schemas.length === 1 ? "the schema" : "the request's schemas together";
  const holds = schemas.length === 1 ? "holds" : "hold";
  const over = (figure: number, bound: number, what: string, name: string) =>
    figure > bound ? { path: where, message: `${subject} ${holds} ${figure} ${what}, over the bound of ${bound} (${name})` } : null;
  const problem =
    over(estimate.enumValues, MAX_GRAMMAR_ENUM_VALUES, "enum values", "MAX_GRAMMAR_ENUM_VALUES") ??
    over(estimate.textChars, MAX_GRAMMAR_TEXT_CHARS, "characters of names, enum and const values", "MAX_GRAMMAR_TEXT_CHARS") ??
    (estimate.rules > MAX_GRAMMAR_RULES
      ? {
          path: where,
          message: `${subject} would make a grammar of about ${estimate.rules} rules, over the bound of ${MAX_GRAMMAR_RULES} (MAX_GRAMMAR_RULES); lower maxLength, maxItems or maxProperties, or use fewer properties`,
        }
      : null) ??
    over(estimate.subschemas, MAX_GRAMMAR_SUBSCHEMAS, "subschemas", "MAX_GRAMMAR_SUBSCHEMAS");
  return { estimate, problem };
}

/**
 * The definitions a schema's grammar starts with: its $ref, or its branches' (a branch's
 * value starts the union's). An object, array, string or literal starts with a character.
 */
function leadingRefs(schema: unknown, into: Set<string>): void {
  if (!isObject(schema)) return;
  if (typeof schema.$ref === "string") into.add(schema.$ref.slice("#/$defs/".length));
  if (Array.isArray(schema.oneOf)) for (const branch of schema.oneOf) leadingRefs(branch, into);
}

/**
 * A definition that reaches itself before any character (A: {$ref: A}, or A: {oneOf: [{$ref:
 * A}, ...]}) is a left-recursive rule, which llama.cpp refuses. Definitions of one name in
 * different scopes are taken together: a cycle may be reported that the scopes would break.
 */
function leftRecursion(defs: ReadonlyMap<string, { path: Path; leading: Set<string> }>): GrammarBoundProblem | null {
  const done = new Set<string>();
  const onPath = new Set<string>();
  /** The definition that closes a cycle reached from `name`, or null. */
  const cycleFrom = (name: string): string | null => {
    if (onPath.has(name)) return name;
    if (done.has(name) || !defs.has(name)) return null;
    onPath.add(name);
    for (const next of defs.get(name)!.leading) {
      const closing = cycleFrom(next);
      if (closing !== null) return closing;
    }
    onPath.delete(name);
    done.add(name);
    return null;
  };
  for (const name of defs.keys()) {
    const closing = cycleFrom(name);
    if (closing !== null) {
      return {
        path: defs.get(closing)!.path,
        message: "refers back to itself through $ref and anyOf/oneOf before any value begins (left recursion), which llama.cpp's grammar refuses",
      };
    }
  }
  return null;
}

const REPETITIONS = [
  ["minLength", "maxLength"],
  ["minItems", "maxItems"],
  ["minProperties", "maxProperties"],
] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function textOf(value: unknown): number {
  return typeof value === "string" ? value.length : JSON.stringify(value ?? null).length;
}

function visit(schema: unknown, path: Path, walk: Walk): void {
  if (walk.problem || !isObject(schema)) return;
  walk.subschemas++;
  walk.rules += RULES_PER_SUBSCHEMA;

  for (const [minKey, maxKey] of REPETITIONS) {
    const min = schema[minKey];
    const max = schema[maxKey];
    for (const [key, value] of [
      [minKey, min],
      [maxKey, max],
    ] as const) {
      if (typeof value === "number" && value > MAX_GRAMMAR_REPETITION) {
        walk.problem = {
          path: [...path, key],
          message: `${key} is ${value}, over the bound of ${MAX_GRAMMAR_REPETITION} (MAX_GRAMMAR_REPETITION: llama.cpp's grammar refuses or ignores larger repetitions)`,
        };
        return;
      }
    }
    if (typeof min !== "number" && typeof max !== "number") continue;
    const lo = typeof min === "number" ? min : 0;
    if (minKey === "minLength") {
      // One rule per distinct (min, max): node-llama-cpp names string rules by their bounds.
      const key = `${lo},${typeof max === "number" ? max : ""}`;
      if (walk.strings.has(key)) continue;
      walk.strings.add(key);
    }
    walk.rules += lo * RULES_PER_REQUIRED_REPETITION + (typeof max === "number" ? max - lo : 1) * RULES_PER_OPTIONAL_REPETITION;
  }

  if (Array.isArray(schema.enum)) {
    walk.enumValues += schema.enum.length;
    for (const v of schema.enum) walk.textChars += textOf(v);
    walk.rules += schema.enum.length;
  }
  if (schema.const !== undefined) walk.textChars += textOf(schema.const);

  if (isObject(schema.$defs)) {
    for (const [name, def] of Object.entries(schema.$defs)) {
      walk.textChars += name.length;
      const leading = new Set(walk.defs.get(name)?.leading);
      leadingRefs(def, leading);
      walk.defs.set(name, { path: [...path, "$defs", name], leading });
      visit(def, [...path, "$defs", name], walk);
    }
  }
  if (isObject(schema.properties)) {
    for (const [name, property] of Object.entries(schema.properties)) {
      walk.textChars += name.length;
      visit(property, [...path, "properties", name], walk);
    }
  }
  if (isObject(schema.additionalProperties)) visit(schema.additionalProperties, [...path, "additionalProperties"], walk);
  if (isObject(schema.items)) visit(schema.items, [...path, "items"], walk);
  if (Array.isArray(schema.prefixItems)) schema.prefixItems.forEach((s, i) => visit(s, [...path, "prefixItems", i], walk));
  if (Array.isArray(schema.oneOf)) schema.oneOf.forEach((s, i) => visit(s, [...path, "oneOf", i], walk));
}

/**
 * For a zod superRefine of a body or params object: the first grammar bound its schemas
 * pass, as an issue at its path (a 400 naming the bound).
 */
export function addGrammarBoundIssue(
  params: Parameters<typeof requestSchemas>[0],
  ctx: { addIssue(issue: { code: "custom"; path: Path; message: string }): void },
): void {
  const { problem } = checkGrammarBounds(requestSchemas(params));
  if (problem !== null) ctx.addIssue({ code: "custom", path: problem.path, message: problem.message });
}
