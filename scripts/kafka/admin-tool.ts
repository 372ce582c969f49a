/**
 * Kafka admin calls that librdkafka's Node binding lacks (creating and describing ACLs,
 * describing topic configs: confluentinc/confluent-kafka-javascript#444), made by
 * AdminTool.java beside this file with Kafka's own Java AdminClient from the broker's jars
 * (kafka/jars.ts). It is compiled once per source and Kafka version into
 * .cache/kafka/admin-tool/<hash> (javac takes a few seconds on a fresh machine), and each
 * call is one `java -cp` run that reads its request as JSON on stdin and answers one line of
 * JSON: a JVM start and a login, about a second. For the local and test brokers, the bench
 * and the deploy checks; the services never need it.
 */
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { DEFAULT_CACHE_DIR, defaultVersion, ensureKafkaJars, tailLines } from "./jars.js";

const SOURCE = fileURLToPath(new URL("./AdminTool.java", import.meta.url));
const JAVA_BIN = process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, "bin") : "";
const JAVA = path.join(JAVA_BIN, "java");
const JAVAC = path.join(JAVA_BIN, "javac");
/** The JVM of a one-call tool: small, quick to start, logging nothing below errors. */
const JVM_OPTS = ["-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true", "-Dorg.apache.logging.log4j.level=ERROR"];

/** One ACL, in Kafka's enum names (what AdminTool.java reads and answers). */
export interface AclBinding {
  readonly resourceType: "TOPIC" | "GROUP" | "CLUSTER" | "TRANSACTIONAL_ID" | "DELEGATION_TOKEN" | "USER";
  readonly resourceName: string;
  readonly patternType: "LITERAL" | "PREFIXED";
  /** `User:<name>`. */
  readonly principal: string;
  readonly host: string;
  /** READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS, … */
  readonly operation: string;
  readonly permission: "ALLOW" | "DENY";
}

/** A refusal or failure the tool reported: `name` is the Java exception's (e.g. ClusterAuthorizationException). */
export class AdminToolError extends Error {
  readonly kafkaError: string;
  constructor(command: string, name: string, message: string) {
    super(`kafka admin tool ${command}: ${name}: ${message}`);
    this.name = "AdminToolError";
    this.kafkaError = name;
  }
}

export interface AdminToolOptions {
  /** Kafka release whose jars the tool runs on; default KAFKA_VERSION or 4.1.1. */
  readonly version?: string;
  readonly cacheDir?: string;
}

const compiled = new Map<string, Promise<string>>();

/** The directory holding AdminTool.class for this source and Kafka version, compiling it the first time. */
export function ensureAdminTool(options: AdminToolOptions = {}): Promise<{ classes: string; lib: string }> {
  const version = options.version ?? defaultVersion();
  const cacheDir = options.cacheDir ?? DEFAULT_CACHE_DIR;
  return ensureKafkaJars(version, cacheDir).then(async (lib) => {
    const key = `${cacheDir}\0${version}`;
    if (!compiled.has(key)) compiled.set(key, compile(version, cacheDir, lib));
    try {
      return { classes: await compiled.get(key)!, lib };
    } catch (err) {
      compiled.delete(key);
      throw err;
    }
  });
}

async function compile(version: string, cacheDir: string, lib: string): Promise<string> {
  const source = await fsp.readFile(SOURCE);
  const hash = createHash("sha256").update(source).update(`\0${version}`).digest("hex").slice(0, 16);
  const root = path.join(cacheDir, "admin-tool");
  const dir = path.join(root, hash);
  if (fs.existsSync(path.join(dir, "AdminTool.class"))) return dir;
  await fsp.mkdir(root, { recursive: true });
  // Compiled in a private staging dir and published with one rename: a concurrent caller
  // never sees a half-written class, and the loser of a race throws its copy away.
  const staging = path.join(root, `.staging-${process.pid}-${randomBytes(4).toString("hex")}`);
  await fsp.mkdir(staging);
  try {
    await new Promise<void>((resolve, reject) =>
      execFile(JAVAC, ["-nowarn", "-encoding", "UTF-8", "-cp", path.join(lib, "*"), "-d", staging, SOURCE], { timeout: 120_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`javac ${SOURCE} failed (Kafka ${version}): ${err.message}\n${tailLines(`${stdout}${stderr}`, 30)}`)) : resolve(),
      ),
    );
    try {
      await fsp.rename(staging, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "ENOTEMPTY" && code !== "EEXIST") || !fs.existsSync(path.join(dir, "AdminTool.class"))) throw err;
    }
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
  return dir;
}

/** A login of a KafkaConfig as the tool's request has it. */
function connection(config: KafkaConfig): Record<string, unknown> {
  const tls = config.tls;
  if (tls && !tls.rejectUnauthorized && !tls.ca) {
    // Java has no "trust anything" switch; the broker's CA is what the tool can be given.
    throw new Error("the kafka admin tool verifies the broker's certificate: give it the CA (KAFKA_TLS_CA_FILE)");
  }
  return {
    bootstrap: config.brokers.join(","),
    clientId: `${config.clientId}-admin-tool`,
    sasl: config.sasl && { mechanism: config.sasl.mechanism.toUpperCase(), username: config.sasl.username, password: config.sasl.password },
    tls: tls && { ca: tls.ca ?? null, cert: tls.cert ?? null, key: tls.key ?? null, verifyHostname: tls.rejectUnauthorized },
  };
}

async function run<T>(command: string, config: KafkaConfig, request: Record<string, unknown>, options: AdminToolOptions): Promise<T> {
  const { classes, lib } = await ensureAdminTool(options);
  const input = JSON.stringify({ ...connection(config), ...request });
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(JAVA, [...JVM_OPTS, "-cp", `${classes}${path.delimiter}${path.join(lib, "*")}`, "AdminTool", command], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    // The client's log, for a failure's message only.
    child.stderr.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-32 * 1024)));
    child.once("error", reject);
    child.once("close", (exit) => resolve({ code: exit, stdout: out, stderr: err }));
    child.stdin.end(input);
  });
  let answer: { error?: { name: string; message: string } } & T;
  try {
    answer = JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as typeof answer;
  } catch {
    throw new Error(`kafka admin tool ${command} answered no JSON (exit ${code}):\n${tailLines(`${stdout}\n${stderr}`, 30)}`);
  }
  if (answer.error) throw new AdminToolError(command, answer.error.name, answer.error.message);
  if (code !== 0) throw new Error(`kafka admin tool ${command} exited with ${code}:\n${tailLines(stderr, 30)}`);
  return answer;
}

/** Creates ACLs (an existing one is no error: Kafka keeps one of each). */
export async function createAcls(config: KafkaConfig, bindings: readonly AclBinding[], options: AdminToolOptions = {}): Promise<void> {
  if (bindings.length === 0) return;
  await run<{ created: number }>("create-acls", config, { bindings }, options);
}

/** Every ACL the broker holds, or those of one principal (and host). */
export async function describeAcls(
  config: KafkaConfig,
  filter: { principal?: string; host?: string } = {},
  options: AdminToolOptions = {},
): Promise<AclBinding[]> {
  return (await run<{ bindings: AclBinding[] }>("describe-acls", config, { filter }, options)).bindings;
}

/** Each topic's configs (only `names` when given), as the broker has them: topic → name → value (null when not readable). */
export async function describeTopicConfigs(
  config: KafkaConfig,
  topics: readonly string[],
  names?: readonly string[],
  options: AdminToolOptions = {},
): Promise<Map<string, Record<string, string | null>>> {
  const answer = await run<{ resources: Array<{ name: string; configs: Record<string, string | null> }> }>(
    "describe-configs",
    config,
    { resources: topics.map((name) => ({ type: "TOPIC", name, ...(names && { configs: names }) })) },
    options,
  );
  return new Map(answer.resources.map((r) => [r.name, r.configs]));
}
