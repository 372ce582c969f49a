/**
 * The JSON Schemas a worker can turn into a grammar (node-llama-cpp's GbnfJsonSchema), for
 * structured outputs and tool parameters. Clients send ordinary JSON Schema (OpenAI's
 * strict subset, what zod's toJSONSchema and zod-to-json-schema emit), so this normalizes
 * what only annotates or spells the same thing differently, and refuses, naming the keyword
 * and where it is, what the grammar cannot express. Pure: the gateway and the worker both run it,
 * through the record schema, so a schema is judged once, the same way on both sides.
 *
 * Normalized: annotations dropped ($schema, $id, $comment, title, default, examples,
 * readOnly, writeOnly, deprecated); `anyOf` becomes `oneOf` (the grammar emits exactly one
 * branch, which satisfies both); `definitions` becomes `$defs` and its refs follow; the
 * safe-integer bounds zod 4 gives every integer dropped (see SAFE_INTEGER_BOUNDS).
 */

/** A schema part the grammar cannot express: where (JSON path segments) and why. */
export class SchemaProblem extends Error {
  constructor(
    readonly path: ReadonlyArray<string | number>,
    message: string,
  ) {
    super(message);
    this.name = "SchemaProblem";
  }
}

const ANNOTATIONS = new Set(["$schema", "$id", "$comment", "title", "default", "examples", "readOnly", "writeOnly", "deprecated"]);
const PRIMITIVE_TYPES = new Set(["string", "number", "integer", "boolean", "null"]);
const STRING_FORMATS = new Set(["date-time", "time", "date"]);
const MAX_DEPTH = 32;

/**
 * zod 4 writes every integer (z.number().int(), z.int()) with JavaScript's safe range as
 * bounds, so a client's zod schema (openai's zodResponseFormat, LangChain's
 * withStructuredOutput) has them on each integer. The grammar cannot bound numbers; these
 * bounds only rule out integers of 16 digits and more, so they are dropped, and any other
 * bound is refused.
 */
const SAFE_INTEGER_BOUNDS: Readonly<Record<string, number>> = { minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };

function isSafeIntegerBound(schema: Record<string, unknown>, key: string): boolean {
  return schema.type === "integer" && Object.hasOwn(SAFE_INTEGER_BOUNDS, key) && schema[key] === SAFE_INTEGER_BOUNDS[key];
}

/** Keywords allowed beside each kind of schema (besides description and $defs). */
const KEYWORDS: Record<string, ReadonlySet<string>> = {
  object: new Set(["type", "properties", "required", "additionalProperties", "minProperties", "maxProperties"]),
  array: new Set(["type", "items", "prefixItems", "minItems", "maxItems"]),
  string: new Set(["type", "minLength", "maxLength", "format"]),
  primitive: new Set(["type"]),
  const: new Set(["const"]),
  enum: new Set(["enum"]),
  oneOf: new Set(["oneOf", "anyOf"]),
  $ref: new Set(["$ref"]),
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = Array<string | number>;

/**
 * The grammar-ready form of `schema`, or a SchemaProblem thrown for the first part the
 * grammar cannot express. Idempotent: a normalized schema comes back equal.
 */
export function normalizeJsonSchema(schema: unknown): Record<string, Json> {
  const normalized = normalize(schema, [], 0);
  checkRefs(normalized, [], new Set());
  return normalized;
}

/** Every $ref names a definition of its own schema or of one around it. */
function checkRefs(schema: Json, path: Path, defined: ReadonlySet<string>): void {
  if (Array.isArray(schema)) return schema.forEach((s, i) => checkRefs(s, [...path, i], defined));
  if (typeof schema !== "object" || schema === null) return;
  const defs = schema.$defs;
  const inScope = defs && typeof defs === "object" && !Array.isArray(defs) ? new Set([...defined, ...Object.keys(defs)]) : defined;
  const ref = schema.$ref;
  if (typeof ref === "string" && !inScope.has(ref.slice("#/$defs/".length))) {
    throw new SchemaProblem([...path, "$ref"], `names ${JSON.stringify(ref)}, which no $defs around it defines`);
  }
  for (const [key, value] of Object.entries(schema)) {
    // Enum and const values are data, not schemas.
    if (key !== "enum" && key !== "const") checkRefs(value, [...path, key], inScope);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function normalize(schema: unknown, path: Path, depth: number): Record<string, Json> {
  if (depth > MAX_DEPTH) throw new SchemaProblem(path, `nests deeper than ${MAX_DEPTH} levels`);
  if (!isObject(schema)) throw new SchemaProblem(path, "must be a JSON Schema object");
  const out: Record<string, Json> = {};
  const given = Object.keys(schema).filter((k) => !ANNOTATIONS.has(k) && schema[k] !== undefined && !isSafeIntegerBound(schema, k));

  if (schema.description !== undefined) {
    if (typeof schema.description !== "string") throw new SchemaProblem([...path, "description"], "must be a string");
    out.description = schema.description;
  }
  const defs = schema.$defs ?? schema.definitions;
  if (defs !== undefined) {
    const key = schema.$defs !== undefined ? "$defs" : "definitions";
    if (schema.$defs !== undefined && schema.definitions !== undefined) throw new SchemaProblem([...path, "definitions"], "use $defs or definitions, not both");
    if (!isObject(defs)) throw new SchemaProblem([...path, key], "must be an object of schemas");
    out.$defs = Object.fromEntries(Object.entries(defs).map(([name, d]) => [name, normalize(d, [...path, key, name], depth + 1)]));
  }
  const kind = kindOf(schema, path);
  // Beside enum, const or a union, `type` says nothing the values or branches do not.
  const redundantType = kind === "const" || kind === "enum" || kind === "oneOf";
  const rest = given.filter((k) => k !== "description" && k !== "$defs" && k !== "definitions" && !(redundantType && k === "type"));
  const allowed = KEYWORDS[kind]!;
  const unknown = rest.find((k) => !allowed.has(k));
  if (unknown !== undefined) throw new SchemaProblem([...path, unknown], unsupported(unknown, kind));

  switch (kind) {
    case "const":
      out.const = primitive(schema.const, [...path, "const"]);
      break;
    case "enum": {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0) throw new SchemaProblem([...path, "enum"], "must be a non-empty array");
      out.enum = schema.enum.map((v, i) => primitive(v, [...path, "enum", i]));
      break;
    }
    case "oneOf": {
      const key = schema.oneOf !== undefined ? "oneOf" : "anyOf";
      const branches = schema[key];
      if (!Array.isArray(branches) || branches.length === 0) throw new SchemaProblem([...path, key], "must be a non-empty array of schemas");
      out.oneOf = branches.map((b, i) => normalize(b, [...path, key, i], depth + 1));
      break;
    }
    case "$ref": {
      const ref = typeof schema.$ref === "string" ? schema.$ref.replace(/^#\/definitions\//, "#/$defs/") : null;
      if (ref === null || !/^#\/\$defs\/[^/]+$/.test(ref))
        throw new SchemaProblem([...path, "$ref"], 'only local references like "#/$defs/Name" are supported');
      out.$ref = ref;
      break;
    }
    case "object":
      Object.assign(out, objectSchema(schema, path, depth));
      break;
    case "array":
      Object.assign(out, arraySchema(schema, path, depth));
      break;
    case "string":
      out.type = "string";
      for (const k of ["minLength", "maxLength"] as const) if (schema[k] !== undefined) out[k] = count(schema[k], [...path, k]);
      ordered(out, "minLength", "maxLength", path);
      if (schema.format !== undefined) {
        if (typeof schema.format !== "string" || !STRING_FORMATS.has(schema.format)) {
          throw new SchemaProblem(
            [...path, "format"],
            `format ${JSON.stringify(schema.format)} cannot be expressed by the grammar (supported: date-time, time, date)`,
          );
        }
        if (out.minLength !== undefined || out.maxLength !== undefined)
          throw new SchemaProblem([...path, "format"], "format cannot be combined with minLength or maxLength");
        out.format = schema.format;
      }
      break;
    case "primitive":
      out.type = schema.type as Json;
      break;
  }
  return out;
}

/** Which kind of schema this is; a type list may only hold primitive types. */
function kindOf(schema: Record<string, unknown>, path: Path): string {
  if (schema.const !== undefined) return "const";
  if (schema.enum !== undefined) return "enum";
  if (schema.oneOf !== undefined || schema.anyOf !== undefined) {
    if (schema.oneOf !== undefined && schema.anyOf !== undefined) throw new SchemaProblem([...path, "anyOf"], "use anyOf or oneOf, not both");
    return "oneOf";
  }
  if (schema.$ref !== undefined) return "$ref";
  if (schema.allOf !== undefined) throw new SchemaProblem([...path, "allOf"], unsupported("allOf", "schema"));
  if (schema.not !== undefined) throw new SchemaProblem([...path, "not"], unsupported("not", "schema"));
  const type = schema.type;
  if (type === undefined)
    throw new SchemaProblem(path, "needs a type, const, enum, anyOf/oneOf or $ref (a schema that allows anything cannot be expressed by the grammar)");
  if (Array.isArray(type)) {
    if (type.length === 0 || !type.every((t) => typeof t === "string" && PRIMITIVE_TYPES.has(t))) {
      throw new SchemaProblem([...path, "type"], "a list of types may hold only string, number, integer, boolean and null (use anyOf for objects and arrays)");
    }
    return "primitive";
  }
  if (type === "object" || type === "array" || type === "string") return type;
  if (typeof type === "string" && PRIMITIVE_TYPES.has(type)) return "primitive";
  throw new SchemaProblem([...path, "type"], `unknown type ${JSON.stringify(type)}`);
}

function unsupported(keyword: string, kind: string): string {
  const where = kind === "primitive" ? "this type" : kind === "schema" ? "a schema" : `${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind} schema`;
  return `${JSON.stringify(keyword)} on ${where} cannot be expressed by the grammar; remove it (the worker's grammar supports type, properties, required, additionalProperties, items, prefixItems, min/max items, properties and length, enum, const, anyOf/oneOf, $defs/$ref, date and time formats)`;
}

function objectSchema(schema: Record<string, unknown>, path: Path, depth: number): Record<string, Json> {
  const out: Record<string, Json> = { type: "object" };
  if (schema.properties !== undefined) {
    if (!isObject(schema.properties)) throw new SchemaProblem([...path, "properties"], "must be an object of schemas");
    out.properties = Object.fromEntries(Object.entries(schema.properties).map(([name, p]) => [name, normalize(p, [...path, "properties", name], depth + 1)]));
  }
  if (schema.required !== undefined) {
    if (!Array.isArray(schema.required) || !schema.required.every((r) => typeof r === "string")) {
      throw new SchemaProblem([...path, "required"], "must be an array of property names");
    }
    const props = isObject(schema.properties) ? schema.properties : {};
    const missing = schema.required.find((r) => !Object.hasOwn(props, r));
    if (missing !== undefined) throw new SchemaProblem([...path, "required"], `names ${JSON.stringify(missing)}, which is not in properties`);
    out.required = schema.required;
  }
  const extra = schema.additionalProperties;
  if (extra !== undefined) {
    out.additionalProperties = typeof extra === "boolean" ? extra : normalize(extra, [...path, "additionalProperties"], depth + 1);
  }
  for (const k of ["minProperties", "maxProperties"] as const) if (schema[k] !== undefined) out[k] = count(schema[k], [...path, k]);
  ordered(out, "minProperties", "maxProperties", path);
  return out;
}

function arraySchema(schema: Record<string, unknown>, path: Path, depth: number): Record<string, Json> {
  const out: Record<string, Json> = { type: "array" };
  if (schema.items !== undefined) out.items = normalize(schema.items, [...path, "items"], depth + 1);
  if (schema.prefixItems !== undefined) {
    if (!Array.isArray(schema.prefixItems)) throw new SchemaProblem([...path, "prefixItems"], "must be an array of schemas");
    out.prefixItems = schema.prefixItems.map((s, i) => normalize(s, [...path, "prefixItems", i], depth + 1));
  }
  for (const k of ["minItems", "maxItems"] as const) if (schema[k] !== undefined) out[k] = count(schema[k], [...path, k]);
  ordered(out, "minItems", "maxItems", path);
  return out;
}

function primitive(value: unknown, path: Path): Json {
  if (value === null || ["string", "number", "boolean"].includes(typeof value)) return value as Json;
  throw new SchemaProblem(path, "only strings, numbers, booleans and null can be expressed by the grammar here");
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

/** min ≤ max, or no value satisfies the schema and the grammar admits nothing. */
function ordered(out: Record<string, Json>, min: string, max: string, path: Path): void {
  if (typeof out[min] === "number" && typeof out[max] === "number" && (out[min] as number) > (out[max] as number)) {
    throw new SchemaProblem([...path, min], `must not exceed ${max}`);
  }
}
