/** What a result was measured on: machine, runtime, broker, model, commit. */
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import os from "node:os";
import { sha256File } from "../../scripts/models.js";
import { describeLlama } from "./llama-settings.js";

export interface Environment {
  at: string;
  commit: string;
  dirty: boolean;
  cpuModel: string;
  cpus: number;
  memoryGiB: number;
  loadAverage1m: number;
  node: string;
  platform: string;
  kafkaVersion: string;
  kafkaClient: string;
  model: { file: string; sha256: string };
  /** How models were loaded (CPU threads or GPU). */
  llama: string;
  quick: boolean;
}

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

function packageVersion(name: string): string {
  try {
    return (createRequire(import.meta.url)(`${name}/package.json`) as { version: string }).version;
  } catch {
    return "not installed";
  }
}

export async function describeEnvironment(modelPath: string, kafkaVersion: string, quick: boolean): Promise<Environment> {
  const librdkafkaClient = packageVersion("@confluentinc/kafka-javascript");
  return {
    at: new Date().toISOString(),
    commit: git(["rev-parse", "HEAD"]),
    dirty: git(["status", "--porcelain", "--untracked-files=no"]) !== "",
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    cpus: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    kafkaVersion,
    kafkaClient: `@confluentinc/kafka-javascript ${librdkafkaClient} (librdkafka: every client, platform/kafka/)`,
    model: { file: modelPath, sha256: await sha256File(modelPath) },
    llama: describeLlama(),
    quick,
  };
}
