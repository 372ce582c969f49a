/**
 * The JSON Schemas of structured outputs and tool parameters, as clients send them (OpenAI's
 * strict subset, Pydantic's and zod's output, or any schema a non-strict tool takes), and the
 * part of each the worker's grammar (node-llama-cpp's GbnfJsonSchema) can hold. Pure: the
 * gateway and the worker both run it, through the record schema, so a schema is judged once,
 * the same way on both sides.
 *
 * normalizeJsonSchema keeps every validation keyword, so the record carries what the reply
 * must satisfy: the worker checks the finished reply against it (worker/schema-check.ts).
 * grammarSchemaOf takes from it what the grammar can hold; the rest (numeric bounds,
 * multipleOf, pattern, the formats node-llama-cpp lacks, allOf, not, uniqueItems, ...) the
 * grammar lets through and the check catches. Refused, naming the keyword and where it is:
 * only what no reply could be checked against (a reference outside the schema, a pattern
 * that is not a regular expression, a malformed keyword).
 *
 * Normalized: annotations and unknown keywords dropped; `definitions` becomes `$defs` and its
 * refs follow; draft-07's tuple `items` becomes `prefixItems`, `dependencies` becomes
 * `dependentRequired`/`dependentSchemas`, draft-04's boolean exclusive bounds become numbers.
 */

/** A schema part no reply could be checked against: where (JSON path segments) and why. */
export class SchemaProblem extends Error {
  constructor(
    readonly path: ReadonlyArray<string | number>,
    message: string,
  ) {
    super(message);
    this.name = "SchemaProblem";
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = Array<string | number>;
type Schema = Record<string, Json>;

const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
/** The formats node-llama-cpp's grammar writes itself; any other is checked after generation. */
const GRAMMAR_FORMATS = new Set(["date-time", "time", "date"]);
const MAX_DEPTH = 32;

/** Keywords whose value is one schema (or a boolean schema). */
const SUBSCHEMA = ["additionalProperties", "items", "contains", "propertyNames", "not", "if", "then", "else", "unevaluatedItems", "unevaluatedProperties"];
/** Keywords whose value is a non-empty list of schemas. */
const SUBSCHEMA_LISTS = ["allOf", "anyOf", "oneOf", "prefixItems"];
/** Keywords whose value maps names to schemas. */
const SUBSCHEMA_MAPS = ["properties", "patternProperties", "dependentSchemas", "$defs"];
const COUNTS = ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains"];
const NUMBERS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];

/**
 * The normalized form of `schema`, or a SchemaProblem thrown for the first part no reply
 * could be checked against. Idempotent: a normalized schema comes back equal.
 */
export function normalizeJsonSchema(schema: unknown): Schema {
  if (!isObject(schema)) throw new SchemaProblem([], "must be a JSON Schema object");
  const normalized = normalize(schema, [], 0) as Schema;
  checkRefs(normalized, normalized, []);
  return normalized;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function normalize(schema: unknown, path: Path, depth: number): Json {
  if (depth > MAX_DEPTH) throw new SchemaProblem(path, `nests deeper than ${MAX_DEPTH} levels`);
  if (typeof schema === "boolean") return schema;
  if (!isObject(schema)) throw new SchemaProblem(path, "must be a JSON Schema object");
  const s: Record<string, unknown> = { ...schema };
  const at = (key: string) => [...path, key];

  // Older drafts' spellings, in their 2020-12 form.
  if (s.definitions !== undefined) {
    if (s.$defs !== undefined) throw new SchemaProblem(at("definitions"), "use $defs or definitions, not both");
    s.$defs = s.definitions;
  }
  if (Array.isArray(s.items)) {
    if (s.prefixItems !== undefined) throw new SchemaProblem(at("items"), "use prefixItems or a list of items, not both");
    s.prefixItems = s.items;
    s.items = s.additionalItems;
  }
  if (isObject(s.dependencies)) {
    for (const [name, dep] of Object.entries(s.dependencies)) {
      const key = Array.isArray(dep) ? "dependentRequired" : "dependentSchemas";
      s[key] = { ...(isObject(s[key]) ? s[key] : {}), [name]: dep };
    }
  }
  for (const [exclusive, bound] of [
    ["exclusiveMinimum", "minimum"],
    ["exclusiveMaximum", "maximum"],
  ] as const) {
    if (typeof s[exclusive] !== "boolean") continue;
    if (s[exclusive] === true && s[bound] !== undefined) [s[exclusive], s[bound]] = [s[bound], undefined];
    else s[exclusive] = undefined;
  }

  const out: Schema = {};
  if (s.description !== undefined) {
    if (typeof s.description !== "string") throw new SchemaProblem(at("description"), "must be a string");
    out.description = s.description;
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (types.length === 0 || !types.every((t) => typeof t === "string" && TYPES.has(t))) {
      throw new SchemaProblem(at("type"), `must be one of ${[...TYPES].join(", ")}, or a list of them`);
    }
    out.type = s.type as Json;
  }
  if (s.const !== undefined) out.const = s.const as Json;
  if (s.enum !== undefined) {
    if (!Array.isArray(s.enum) || s.enum.length === 0) throw new SchemaProblem(at("enum"), "must be a non-empty array");
    out.enum = s.enum as Json[];
  }
  for (const k of NUMBERS) {
    if (s[k] === undefined) continue;
    if (typeof s[k] !== "number" || !Number.isFinite(s[k])) throw new SchemaProblem(at(k), "must be a number");
    out[k] = s[k];
  }
  if (s.multipleOf !== undefined) {
    if (typeof s.multipleOf !== "number" || !(s.multipleOf > 0) || !Number.isFinite(s.multipleOf))
      throw new SchemaProblem(at("multipleOf"), "must be a number above 0");
    out.multipleOf = s.multipleOf;
  }
  for (const k of COUNTS) if (s[k] !== undefined) out[k] = count(s[k], at(k));
  for (const [min, max] of [
    ["minLength", "maxLength"],
    ["minItems", "maxItems"],
    ["minProperties", "maxProperties"],
    ["minContains", "maxContains"],
    ["minimum", "maximum"],
  ] as const) {
    if (typeof out[min] === "number" && typeof out[max] === "number" && out[min] > out[max]) throw new SchemaProblem(at(min), `must not exceed ${max}`);
  }
  if (s.pattern !== undefined) out.pattern = pattern(s.pattern, at("pattern"));
  if (s.format !== undefined) {
    if (typeof s.format !== "string") throw new SchemaProblem(at("format"), "must be a string");
    out.format = s.format;
  }
  if (s.uniqueItems !== undefined) {
    if (typeof s.uniqueItems !== "boolean") throw new SchemaProblem(at("uniqueItems"), "must be a boolean");
    out.uniqueItems = s.uniqueItems;
  }
  if (s.required !== undefined) {
    if (!Array.isArray(s.required) || !s.required.every((r) => typeof r === "string"))
      throw new SchemaProblem(at("required"), "must be an array of property names");
    // An object's grammar writes the properties it knows: a required name outside them, with no
    // additional properties, could never be written.
    const props = isObject(s.properties) ? s.properties : {};
    const closed = (s.type === "object" || isObject(s.properties)) && (s.additionalProperties === undefined || s.additionalProperties === false);
    const missing = closed ? s.required.find((r) => !Object.hasOwn(props, r)) : undefined;
    if (missing !== undefined) throw new SchemaProblem(at("required"), `names ${JSON.stringify(missing)}, which is not in properties`);
    out.required = s.required;
  }
  if (s.dependentRequired !== undefined) {
    const deps = s.dependentRequired;
    if (!isObject(deps) || !Object.values(deps).every((d) => Array.isArray(d) && d.every((n) => typeof n === "string"))) {
      throw new SchemaProblem(at("dependentRequired"), "must map property names to arrays of property names");
    }
    out.dependentRequired = deps as Json;
  }
  if (s.$ref !== undefined) {
    const ref = typeof s.$ref === "string" ? s.$ref.replace(/^#\/definitions\//, "#/$defs/") : null;
    if (ref === null || !(ref === "#" || ref.startsWith("#/"))) {
      throw new SchemaProblem(at("$ref"), 'only references inside the schema are supported ("#", "#/$defs/Name" or another JSON pointer from "#")');
    }
    out.$ref = ref;
  }
  for (const k of SUBSCHEMA) if (s[k] !== undefined) out[k] = normalize(s[k], at(k), depth + 1);
  for (const k of SUBSCHEMA_LISTS) {
    if (s[k] === undefined) continue;
    const list = s[k];
    if (!Array.isArray(list) || (list.length === 0 && k !== "prefixItems")) throw new SchemaProblem(at(k), "must be a non-empty array of schemas");
    out[k] = list.map((b, i) => normalize(b, [...at(k), i], depth + 1));
  }
  for (const k of SUBSCHEMA_MAPS) {
    if (s[k] === undefined) continue;
    const map = s[k];
    const key = k === "$defs" && schema.definitions !== undefined ? "definitions" : k;
    if (!isObject(map)) throw new SchemaProblem([...path, key], "must be an object of schemas");
    out[k] = Object.fromEntries(Object.entries(map).map(([name, d]) => [name, normalize(d, [...path, key, name], depth + 1)]));
  }
  if (out.patternProperties !== undefined) for (const name of Object.keys(out.patternProperties as Schema)) pattern(name, [...at("patternProperties"), name]);
  return out;
}

/** A pattern as a string: one JavaScript reads with the u flag, as ajv checks it. */
function pattern(value: unknown, path: Path): string {
  if (typeof value !== "string") throw new SchemaProblem(path, "must be a string");
  try {
    new RegExp(value, "u");
  } catch (err) {
    throw new SchemaProblem(path, `is not a regular expression: ${(err as Error).message}`);
  }
  return value;
}

/** Every $ref points at a schema of the document, as a validator resolves it from the root. */
function checkRefs(schema: Json, root: Schema, path: Path): void {
  if (Array.isArray(schema)) return schema.forEach((s, i) => checkRefs(s, root, [...path, i]));
  if (!isObject(schema)) return;
  if (typeof schema.$ref === "string" && resolvePointer(root, schema.$ref) === undefined) {
    throw new SchemaProblem([...path, "$ref"], `names ${JSON.stringify(schema.$ref)}, which is not a schema of this document`);
  }
  for (const [key, value] of Object.entries(schema)) {
    // Enum and const values are data, not schemas.
    if (key !== "enum" && key !== "const") checkRefs(value, root, [...path, key]);
  }
}

/** The schema a local reference ("#" or "#/a/b") names, or undefined. */
export function resolvePointer(root: Json, ref: string): Json | undefined {
  if (ref === "#") return root;
  let at: Json | undefined = root;
  for (const raw of ref.slice(2).split("/")) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    } catch {
      return undefined;
    }
    if (Array.isArray(at) && /^\d+$/.test(segment)) at = at[Number(segment)];
    else if (isObject(at) && Object.hasOwn(at, segment)) at = at[segment];
    else return undefined;
  }
  return typeof at === "boolean" || isObject(at) ? at : undefined;
}

/**
 * The record's bound on a count. Requests are held to the tighter MAX_GRAMMAR_REPETITION
 * (what llama.cpp accepts; contracts/grammar-bounds.ts) by the gateway and again by the
 * worker before it builds a grammar; this one stays, so a record queued before that bound
 * still decodes and ends with an error event rather than being dead-lettered.
 */
const MAX_COUNT = 32_000;

function count(value: unknown, path: Path): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new SchemaProblem(path, "must be a non-negative integer");
  if (value > MAX_COUNT) throw new SchemaProblem(path, `must be at most ${MAX_COUNT}`);
  return value;
}

/** Any JSON value, in the grammar's terms (an array without items and an open object take anything). */
const ANY: Schema = { oneOf: [{ type: ["string", "number", "boolean", "null"] }, { type: "array" }, { type: "object", additionalProperties: true }] };

/** Keywords left to the check after generation, shown to the model beside the description. */
const CHECKED_AFTER = ["minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf", "pattern", "format"];

/**
 * What the grammar holds of a normalized schema: a node-llama-cpp GbnfJsonSchema. Types,
 * properties, items, lengths and counts, enum, const, unions, $defs refs and the date and time
 * formats go in; a keyword the grammar cannot hold is left out (the reply is checked against
 * the whole schema after generation) and, when it bounds a value, named in the description,
 * which node-llama-cpp shows the model in a tool's documentation. A subschema the grammar
 * cannot shape at all (allOf of several, not, a reference to the root) admits any JSON value.
 * Idempotent.
 */
export function grammarSchemaOf(schema: unknown): Schema {
  if (!isObject(schema)) return ANY;
  const out = grammarOf(schema as Record<string, Json>);
  const defs = schema.$defs;
  if (!isObject(defs)) return out;
  const grammarDefs = Object.fromEntries(Object.entries(defs).map(([name, d]) => [name, grammarSchemaOf(d)]));
  // node-llama-cpp reads $defs beside objects, arrays, unions and refs only.
  if (out.type === "object" || out.type === "array" || out.oneOf !== undefined || out.$ref !== undefined) return { ...out, $defs: grammarDefs };
  return { oneOf: [out], $defs: grammarDefs };
}

function grammarOf(s: Record<string, Json>): Schema {
  const described = (node: Schema): Schema => {
    const checked = CHECKED_AFTER.filter((k) => s[k] !== undefined && !(k === "format" && node.format !== undefined));
    const note = checked.map((k) => `${k} ${typeof s[k] === "string" ? s[k] : JSON.stringify(s[k])}`).join(", ");
    const description = [typeof s.description === "string" ? s.description : "", note ? `(${note})` : ""].filter(Boolean).join(" ");
    return description && node !== ANY ? { ...node, description } : node;
  };
  if (s.const !== undefined) return described(isLiteral(s.const) ? { const: s.const } : ANY);
  if (s.enum !== undefined) return described(Array.isArray(s.enum) && s.enum.every(isLiteral) ? { enum: s.enum } : ANY);
  const branches = s.anyOf ?? s.oneOf;
  if (Array.isArray(branches)) return described({ oneOf: branches.map((b) => grammarSchemaOf(b)) });
  if (typeof s.$ref === "string") return described(/^#\/\$defs\/[^/]+$/.test(s.$ref) ? { $ref: s.$ref } : ANY);
  if (s.type === undefined) {
    // A single allOf branch is how Pydantic describes a reference; several are not merged.
    if (Array.isArray(s.allOf) && s.allOf.length === 1) return described(grammarSchemaOf(s.allOf[0]!));
    return ANY;
  }
  const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
  const nodes = types.map((t) => ofType(s, t));
  if (nodes.length === 1) return described(nodes[0]!);
  if (nodes.every((n) => Object.keys(n).length === 1)) return described({ type: types });
  return described({ oneOf: nodes });
}

function ofType(s: Record<string, Json>, type: string): Schema {
  const copy = (out: Schema, keys: readonly string[]) => {
    for (const k of keys) if (s[k] !== undefined) out[k] = s[k];
    return out;
  };
  switch (type) {
    case "object": {
      const out: Schema = { type: "object" };
      if (isObject(s.properties)) out.properties = Object.fromEntries(Object.entries(s.properties).map(([name, p]) => [name, grammarSchemaOf(p)]));
      const extra = s.additionalProperties;
      if (extra !== undefined) out.additionalProperties = typeof extra === "boolean" ? extra : grammarSchemaOf(extra);
      return copy(out, ["minProperties", "maxProperties"]);
    }
    case "array": {
      const out: Schema = { type: "array" };
      if (isObject(s.items)) out.items = grammarSchemaOf(s.items);
      if (Array.isArray(s.prefixItems)) out.prefixItems = s.prefixItems.map((p) => grammarSchemaOf(p));
      return copy(out, ["minItems", "maxItems"]);
    }
    case "string":
      // A grammar format is fixed in length; lengths beside it are checked after generation.
      if (typeof s.format === "string" && GRAMMAR_FORMATS.has(s.format)) return { type: "string", format: s.format };
      return copy({ type: "string" }, ["minLength", "maxLength"]);
    default:
      return { type };
  }
}

function isLiteral(value: Json | undefined): boolean {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}
