/**
 * How a service turns its environment into configuration: every variable parsed through a
 * zod schema once, at start, every problem reported at once with the variable's name (never
 * a secret's value), then the result frozen. The services' own modules (./shared.ts,
 * ./worker.ts, ./gateway.ts) declare their variables with these builders. Durations are
 * milliseconds; an empty value counts as unset.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { KafkaLlmError } from "../errors.js";

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends KafkaLlmError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super("config_invalid", `invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

// Field builders. Env values are strings; an empty string counts as unset.
export const str = (def: string) => z.string().default(def);
export const int = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number({ error: "must be an integer" }).int("must be an integer").min(min, `must be >= ${min}`).max(max, `must be <= ${max}`).default(def);
export const bool = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"], { error: "must be true or false" })
    .transform((v) => v === "true" || v === "1" || v === "yes")
    .default(def);
/** The protocol of a consumer group a service joins. */
export const groupProtocol = () =>
  z.enum(["consumer", "classic"], { error: 'must be "consumer" (KIP-848, Kafka 4.0+) or "classic" (older clusters)' }).default("consumer");

/** Variables whose values never appear in an error message or a log line. */
const SECRET = /PASSWORD|API_KEYS|SECRET|TOKEN/;

/** The variables of `shape` read from `env`; throws ConfigError naming every problem. */
export function parseEnv<S extends z.core.$ZodShape>(shape: S, env: Env): z.infer<z.ZodObject<S>> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") input[key] = value.trim();
  }
  const parsed = z.object(shape).safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? "(env)");
      const value = input[name];
      const shown = value === undefined || SECRET.test(name) ? "" : ` (got ${JSON.stringify(value)})`;
      return `${name}: ${i.message}${shown}`;
    });
    throw new ConfigError(problems);
  }
  return parsed.data;
}

/** Reads a secret or certificate file named by `variable`; a problem is reported by name. */
export function readConfigFile(variable: string, path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    problems.push(`${variable}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    return undefined;
  }
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
