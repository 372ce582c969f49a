/**
 * The check of a finished reply against the client's schema: the grammar holds a reply to the
 * shape of its schema (contracts/grammar-schema.ts, grammarSchemaOf), and what the grammar
 * cannot hold (numeric bounds, multipleOf, pattern, most formats, allOf, not, ...) is checked
 * here, on the JSON of a json_schema reply or of each tool call's arguments, with ajv (JSON
 * Schema 2020-12, ajv-formats). A reply that fails ends the turn with generation_failed,
 * retryable (another sample may pass), naming the keyword, the schema's value and where.
 *
 * A pattern is the client's regular expression run on the model's text: one that backtracks
 * without end would stall the worker, so each check runs under a time limit (node:vm's
 * watchdog interrupts a running RegExp) and one that passes it fails the turn instead.
 */
import vm from "node:vm";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { KafkaLlmError } from "../contracts/errors.js";
import type { GenerationParams, ToolCall } from "../contracts/generation-params.js";

/** The longest one check may run, ms: a reply's check takes well under 1 ms. */
export const CHECK_TIMEOUT_MS = 100;
const MAX_CACHED = 64;

/** Validators by schema; least recently used dropped past 64, each with its own ajv (and its patterns). */
const validators = new Map<string, ValidateFunction>();

function validatorFor(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = validators.get(key);
  if (validate === undefined) {
    const ajv = new Ajv2020({ strict: false, logger: false, allErrors: false, verbose: true });
    addFormats.default(ajv);
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      throw new KafkaLlmError("invalid_request", `the schema cannot be checked: ${(err as Error).message}`);
    }
  } else {
    validators.delete(key);
  }
  validators.set(key, validate);
  while (validators.size > MAX_CACHED) validators.delete(validators.keys().next().value!);
  return validate;
}

const sandbox = vm.createContext({ validate: null as ValidateFunction | null, value: null as unknown });
const run = new vm.Script("validate(value)");

/**
 * The first way `value` fails `schema`, in words (the keyword, the schema's value for it and
 * where in `value`), or null when it satisfies it. Throws KafkaLlmError invalid_request for a
 * schema ajv cannot compile, generation_failed for a check over CHECK_TIMEOUT_MS.
 */
export function schemaViolation(schema: Record<string, unknown>, value: unknown): string | null {
  const validate = validatorFor(schema);
  Object.assign(sandbox, { validate, value });
  let valid: boolean;
  try {
    valid = run.runInContext(sandbox, { timeout: CHECK_TIMEOUT_MS }) as boolean;
  } catch (err) {
    if ((err as { code?: string }).code !== "ERR_SCRIPT_EXECUTION_TIMEOUT") throw err;
    throw new KafkaLlmError("generation_failed", `checking the reply against the schema took over ${CHECK_TIMEOUT_MS} ms (a pattern that backtracks?)`);
  } finally {
    Object.assign(sandbox, { validate: null, value: null });
  }
  return valid ? null : describe(validate.errors?.[0]);
}

function describe(error: ErrorObject | undefined): string {
  if (error === undefined) return "does not satisfy the schema";
  const where = error.instancePath === "" ? "the value" : error.instancePath;
  const limit = schemaValue(error);
  return `${where} ${error.message ?? "is invalid"} (${error.keyword}${limit === undefined ? "" : ` ${limit}`})`;
}

/** The schema's value for the failed keyword, when it is short enough to quote. */
function schemaValue(error: ErrorObject): string | undefined {
  const value: unknown = error.schema;
  if (value === undefined || typeof value === "object") return undefined;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length <= 200 ? text : undefined;
}

/**
 * Checks a finished reply against the request's schemas: each tool call's arguments against
 * its function's parameters, or a finished json_schema reply against its schema. Throws
 * KafkaLlmError generation_failed naming the tool or response_format, the keyword and where.
 * A reply cut short (stop reason other than "stop") is not checked: it is unfinished JSON.
 */
export function checkReply(params: GenerationParams, reply: { text: string; stopReason: string; toolCalls?: readonly ToolCall[] | undefined }): void {
  if (reply.toolCalls !== undefined) {
    for (const call of reply.toolCalls) {
      const schema = params.tools?.find((t) => t.function.name === call.function.name)?.function.parameters;
      if (schema === undefined) continue;
      const args = parse(call.function.arguments);
      if (args === undefined) continue;
      const problem = schemaViolation(schema, args.value);
      if (problem !== null) throw failed(`the arguments of ${call.function.name} do not satisfy its parameters: ${problem}`);
    }
    return;
  }
  const format = params.response_format;
  if (format?.type !== "json_schema" || format.json_schema.schema === undefined || reply.stopReason !== "stop") return;
  const parsed = parse(reply.text);
  if (parsed === undefined) return;
  const problem = schemaViolation(format.json_schema.schema, parsed.value);
  if (problem !== null) throw failed(`the reply does not satisfy response_format.json_schema: ${problem}`);
}

function failed(message: string): KafkaLlmError {
  return new KafkaLlmError(
    "generation_failed",
    `${message}; the grammar cannot hold this keyword, so it is checked after generation: try again or relax the schema`,
  );
}

function parse(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}
