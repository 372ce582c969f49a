/** What every scenario gets and gives back; run.ts turns the results into JSON and Markdown. */
import type { Environment } from "./env.js";

export interface ScenarioContext {
  quick: boolean;
  brokers: string;
  /** The local broker's process, when the run started one (none with KAFKA_BROKERS). */
  brokerPid?: number;
  /** stories260K's path. */
  model: string;
  env: Environment;
  log(line: string): void;
}

/** One line of the summary table: a figure and what it is compared with. */
export interface Row {
  figure: string;
  measured: string;
  compared: string;
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
  /** For a miss: why, and what would fix it. */
  why?: string;
}

export interface ScenarioOutput {
  rows: Row[];
  targets: TargetCheck[];
  notes: string[];
  /** Raw numbers, written to bench/results/<id>.json. */
  raw: unknown;
  /** What the scenario found broken (not merely slow): reported, and the bench exits non-zero. */
  broken?: string[];
}

export interface Scenario {
  id: string;
  title: string;
  run(ctx: ScenarioContext): Promise<ScenarioOutput>;
}

export interface ScenarioResult extends ScenarioOutput {
  id: string;
  title: string;
  command: string;
  durationS: number;
  loadAverage: { before: number; after: number };
  environment: Environment;
}

export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return String(value);
  return value.toFixed(digits);
}

export function ms(value: number): string {
  return `${fmt(value, value < 10 ? 2 : 1)} ms`;
}

export function sleep(msec: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, msec));
}
