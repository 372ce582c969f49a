/**
 * What a chaos run does: how many conversations and turns, how long, which faults. Read
 * once from flags (`--conversations 20`) or env (`CHAOS_CONVERSATIONS=20`), flags winning;
 * every problem is listed at once.
 */
import { parseArgs } from "node:util";

export interface ChaosOptions {
  /** Concurrent clients, one conversation each. */
  readonly conversations: number;
  /** Turns per conversation, sent one after the other (the next once the last is answered). */
  readonly turns: number;
  /** Worker processes kept running (a killed one is restarted). */
  readonly workers: number;
  /** Partitions of chat.requests (and chat.memory, chat.events). */
  readonly partitions: number;
  /** WORKER_SLOTS of each worker. */
  readonly slots: number;
  /** Reply length limit (DEFAULT_MAX_TOKENS): short turns, many of them. */
  readonly maxTokens: number;
  /** The window, ms, over which clients spread their turns and faults are injected. */
  readonly durationMs: number;
  /** After the window, how long turns still unanswered may take before the run ends, ms. */
  readonly drainMs: number;
  /** A worker is killed (SIGKILL) every killMinMs..killMaxMs during the window. */
  readonly killMinMs: number;
  readonly killMaxMs: number;
  /** Most kills in a run (0 = no kills); unlimited when absent. */
  readonly maxKills: number;
  /** When the broker restarts, as a fraction of the window (0 = no broker restart). */
  readonly brokerRestartAt: number;
  /** When a worker is added (a scale-out), as a fraction of the window (0 = none). */
  readonly scaleOutAt: number;
  /** When a worker is sent SIGTERM and not replaced (a scale-in), as a fraction of the window (0 = none). */
  readonly scaleInAt: number;
  /** How long the broker stays down, ms. */
  readonly brokerDownMs: number;
  /** SIGTERM (controlled shutdown) or SIGKILL (crash) for the broker restart. */
  readonly brokerSignal: "SIGTERM" | "SIGKILL";
  /** Clients send an Idempotency-Key with each turn (off: retried POSTs may become second requests). */
  readonly idempotencyKeys: boolean;
  /** Chance that a client drops its event stream mid-reply and resumes with Last-Event-ID. */
  readonly sseDropRate: number;
  /** The workers write each turn in a Kafka transaction (WORKER_TRANSACTIONS) instead of behind the memory log's fence. */
  readonly transactions: boolean;
  /** Gateway replicas (GATEWAY_REPLICAS); clients are spread over them and move to another when theirs goes. */
  readonly gateways: number;
  /** A gateway replica is killed (SIGKILL, mid-stream) every gatewayKillMinMs..gatewayKillMaxMs and restarted; 0 kills none. */
  readonly gatewayKillMinMs: number;
  readonly gatewayKillMaxMs: number;
  /** Most gateway kills in a run (0 = none); unlimited when absent. */
  readonly maxGatewayKills: number;
  /** A second tenant's requests per minute (its keys-file quota); it sends as fast as that lets it (0 = no flooding tenant). */
  readonly floodRequestsPerMinute: number;
  /** Records that are no valid request written straight to chat.requests over the window (0 = none). */
  readonly poisonRecords: number;
  /** The workers' session timeout (how fast a killed worker's partitions move), ms: the broker's group.consumer.session.timeout.ms. */
  readonly sessionTimeoutMs: number;
  /** Where the JSON result goes. */
  readonly resultsDir: string;
  /** File name stem of the result. */
  readonly name: string;
  /** Seed of the run's random choices (which worker, when, which stream drops). */
  readonly seed: number;
  /** Print progress lines to stderr. */
  readonly verbose: boolean;
}

export const FULL_RUN: Omit<ChaosOptions, "seed"> = {
  conversations: 100,
  turns: 5,
  workers: 3,
  partitions: 6,
  slots: 2,
  maxTokens: 16,
  durationMs: 150_000,
  drainMs: 120_000,
  killMinMs: 4_000,
  killMaxMs: 8_000,
  maxKills: Number.POSITIVE_INFINITY,
  brokerRestartAt: 0.5,
  scaleOutAt: 0.3,
  scaleInAt: 0.7,
  brokerDownMs: 3_000,
  brokerSignal: "SIGTERM",
  idempotencyKeys: true,
  sseDropRate: 0.1,
  transactions: false,
  sessionTimeoutMs: 6_000,
  gateways: 2,
  gatewayKillMinMs: 10_000,
  gatewayKillMaxMs: 20_000,
  maxGatewayKills: Number.POSITIVE_INFINITY,
  floodRequestsPerMinute: 60,
  poisonRecords: 12,
  resultsDir: "chaos/results",
  name: "chaos",
  verbose: true,
};

type Kind = "int" | "number" | "signal" | "string" | "bool";
const FIELDS: Record<Exclude<keyof ChaosOptions, never>, Kind> = {
  conversations: "int",
  turns: "int",
  workers: "int",
  partitions: "int",
  slots: "int",
  maxTokens: "int",
  durationMs: "int",
  drainMs: "int",
  killMinMs: "int",
  killMaxMs: "int",
  maxKills: "int",
  brokerRestartAt: "number",
  scaleOutAt: "number",
  scaleInAt: "number",
  brokerDownMs: "int",
  brokerSignal: "signal",
  idempotencyKeys: "bool",
  sseDropRate: "number",
  transactions: "bool",
  sessionTimeoutMs: "int",
  gateways: "int",
  gatewayKillMinMs: "int",
  gatewayKillMaxMs: "int",
  maxGatewayKills: "int",
  floodRequestsPerMinute: "int",
  poisonRecords: "int",
  resultsDir: "string",
  name: "string",
  seed: "int",
  verbose: "bool",
};

const envName = (field: string) => `CHAOS_${field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
/** The flag's name without its dashes (parseArgs' option name): maxTokens → max-tokens. */
const flagName = (field: string) => field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export class ChaosOptionsError extends Error {}

/** The full run's options, overridden by CHAOS_* env and then by --flags. */
export function parseChaosOptions(argv: readonly string[], env: NodeJS.ProcessEnv): ChaosOptions {
  const raw = new Map<keyof ChaosOptions, string>();
  for (const field of Object.keys(FIELDS) as Array<keyof ChaosOptions>) {
    const value = env[envName(field)];
    if (value !== undefined && value !== "") raw.set(field, value);
  }
  const problems: string[] = [];
  // Every flag takes a value (`--verbose 1`), checked below with the env's; strict off so
  // that every unknown or value-less flag is listed, not only the first.
  const fields = Object.keys(FIELDS) as Array<keyof ChaosOptions>;
  const byFlag = new Map(fields.map((f) => [flagName(f), f]));
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(fields.map((f) => [flagName(f), { type: "string" as const }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  let afterUnknown = false;
  let flagProblems = 0;
  for (const token of tokens) {
    if (token.kind === "positional") {
      // The value of an unknown flag (parseArgs cannot know it takes one) is not a second problem.
      if (!afterUnknown) problems.push(`${token.value}: not a flag`);
      afterUnknown = false;
      continue;
    }
    if (token.kind !== "option") continue;
    const field = byFlag.get(token.name);
    afterUnknown = field === undefined;
    if (field === undefined || token.value === undefined) {
      problems.push(`${token.rawName}: ${field === undefined ? "unknown flag" : "missing value"}`);
      flagProblems++;
      continue;
    }
    raw.set(field, token.value);
  }
  if (flagProblems > 0) problems.push(`(flags: ${[...byFlag.keys()].map((f) => `--${f}`).join(" ")})`);
  const options: Record<string, unknown> = { ...FULL_RUN, seed: Math.floor(Math.random() * 2 ** 31) };
  for (const [field, value] of raw) {
    const kind = FIELDS[field];
    const where = `${envName(field)} / --${flagName(field)}`;
    if (kind === "int" || kind === "number") {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0 || (kind === "int" && !Number.isInteger(n)))
        problems.push(`${where}: "${value}" is not a non-negative ${kind === "int" ? "integer" : "number"}`);
      else options[field] = n;
    } else if (kind === "signal") {
      if (value !== "SIGTERM" && value !== "SIGKILL") problems.push(`${where}: must be SIGTERM or SIGKILL`);
      else options[field] = value;
    } else if (kind === "bool") {
      options[field] = value === "1" || value === "true";
    } else {
      options[field] = value;
    }
  }
  return validated(options as unknown as ChaosOptions, problems);
}

/** Checks a complete set of options (also used for options built in code, e.g. the CI form). */
export function validated(o: ChaosOptions, problems: string[] = []): ChaosOptions {
  if (o.conversations < 1 || o.turns < 1 || o.workers < 1) problems.push("conversations, turns and workers must be at least 1");
  if (o.killMinMs > o.killMaxMs) problems.push("killMinMs must not exceed killMaxMs");
  if (o.killMinMs < 500 && o.maxKills > 0) problems.push("killMinMs must be at least 500");
  if (o.gateways < 1) problems.push("gateways must be at least 1");
  if (o.gatewayKillMinMs > o.gatewayKillMaxMs) problems.push("gatewayKillMinMs must not exceed gatewayKillMaxMs");
  if (o.gatewayKillMinMs < 1000 && o.maxGatewayKills > 0 && o.gateways > 1) problems.push("gatewayKillMinMs must be at least 1000");
  if (o.brokerRestartAt > 1) problems.push("brokerRestartAt is a fraction of the window (0..1)");
  if (o.sseDropRate > 1) problems.push("sseDropRate is a probability (0..1)");
  if (o.sessionTimeoutMs < 3000) problems.push("sessionTimeoutMs must be at least 3000 (the heartbeat is 1000)");
  if (problems.length > 0) throw new ChaosOptionsError(`bad chaos options:\n  ${problems.join("\n  ")}`);
  return Object.freeze({ ...o });
}

/** A small seeded generator (mulberry32): the same seed makes the same choices. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
