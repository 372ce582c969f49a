/**
 * A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) for local runs
 * and integration tests, built from the jars on Maven Central: no Docker, no tarball download.
 * By default it is secured as production should be (kafka/security.ts): SASL/SCRAM logins,
 * one principal per component, and the StandardAuthorizer denying what no ACL allows; the
 * ACLs of an install come from kafka/provision.ts.
 *
 * As a module:  ensureKafkaJars(), startBroker()
 * Parts:        kafka/jars.ts (the jars from Maven Central), kafka/server-properties.ts,
 *               kafka/process-groups.ts (brokers killed when this process goes away)
 * As a CLI:     npx tsx scripts/kafka-broker.ts fetch
 *               npx tsx scripts/kafka-broker.ts start [--port N] [--data-dir D] [--security scram|none]
 *
 * KAFKA_VERSION picks the Kafka release (default 4.1.1); 3.x works too (without KIP-848 groups).
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { KafkaConfig } from "../contracts/config/shared.js";
import { librdkafkaConnection } from "../platform/kafka/connection.js";
import { call, rdkafka, type NativeMetadata } from "../platform/kafka/native.js";
import { DEFAULT_CACHE_DIR, DEFAULT_VERSION, defaultVersion, ensureKafkaJars, tailLines } from "./kafka/jars.js";
import { signalGroup, track, untrack } from "./kafka/process-groups.js";
import { LOG4J2_PROPERTIES, LOG4J_PROPERTIES, protocolOnPort, serverProperties, toPropertiesFile } from "./kafka/server-properties.js";
import { CREDENTIALS_FILE, credentialsIn, scramFormatArgs, securedServerProperties, type BrokerCredentials, type BrokerTls } from "./kafka/security.js";

export { ensureKafkaJars } from "./kafka/jars.js";
export type { BrokerCredentials } from "./kafka/security.js";

export interface BrokerOptions {
  /** Kafka release; default process.env.KAFKA_VERSION ?? "4.1.1". */
  version?: string;
  /** The client listener's port on 127.0.0.1; default: a free port. */
  port?: number;
  /** The controller listener's port; default: a free port. A broker restarted on its data dir needs the same one. */
  controllerPort?: number;
  /** Where server.properties, logs and the log dirs live; default: a fresh temp dir, removed on stop. */
  dataDir?: string;
  /** Jar cache; default <repo root>/.cache/kafka. */
  cacheDir?: string;
  /** Broker stdout/stderr; default <dataDir>/broker.log. */
  logFile?: string;
  /**
   * Extra or overriding server.properties entries (e.g. SASL listeners). In values, ${port} and
   * ${controllerPort} stand for the two listener ports, so `listeners` can be rewritten.
   */
  serverProperties?: Record<string, string>;
  /** How long to wait for the broker to answer; default 60000. */
  startTimeoutMs?: number;
  /**
   * Extra arguments for the storage format, e.g. ["--add-scram", "SCRAM-SHA-512=[name=u,password=p]"]
   * to create SCRAM users (KRaft keeps them in its metadata log).
   */
  formatArgs?: string[];
  /**
   * "scram" (the default): SASL/SCRAM logins for every principal of kafka/security.ts and the
   * StandardAuthorizer, deny by default. "none": one PLAINTEXT listener, no authorization
   * (for tests of other listeners, which bring their own serverProperties).
   */
  security?: "scram" | "none";
  /** With security "scram": the client listener is SASL_SSL with these PEM files (kafka/certificates.ts). */
  tls?: BrokerTls;
}

export interface RunningBroker {
  /** "127.0.0.1:PORT", ready for KAFKA_BROKERS. */
  brokers: string;
  port: number;
  pid: number;
  dataDir: string;
  /** The principals and passwords (security "scram"); null on a plaintext broker. */
  credentials: BrokerCredentials | null;
  /** Where they are kept (<dataDir>/credentials.json, mode 0600); null on a plaintext broker. */
  credentialsFile: string | null;
  /** SIGTERM (controlled shutdown), SIGKILL after ~15 s; resolves once the JVM is gone. Idempotent. */
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 15_000;
const JAVA = process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, "bin", "java") : "java";
/** Small footprint: this broker serves tests and a laptop, not production traffic. */
const JVM_OPTS = ["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true"];

// ---------------------------------------------------------------------------------------------
// Broker

async function freePorts(count: number): Promise<number[]> {
  // Hold all sockets open until every port is known, so the ports are distinct.
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = net.createServer();
      return new Promise<net.Server>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server));
      });
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** What this start wrote to the log (a caller's log file may hold earlier runs too). */
async function readLogSince(file: string, offset: number): Promise<string> {
  try {
    return (await fsp.readFile(file)).subarray(offset).toString("utf8");
  } catch {
    return "(no log)";
  }
}

/**
 * The end of the broker log, preceded by its first ERROR/FATAL lines: after a failed start the
 * tail is mostly shutdown chatter and the cause (e.g. "Unable to start acceptor") is earlier.
 */
function logExcerpt(text: string): string {
  const errors = text
    .split("\n")
    .filter((l) => / (ERROR|FATAL) /.test(l))
    .slice(0, 5);
  const tail = tailLines(text, 25);
  return errors.length > 0 ? `${errors.join("\n")}\n...\n${tail}` : tail;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True once the broker answers a metadata request and lists itself as a live broker. */
async function answers(brokers: string, nodeId: number, sasl: KafkaConfig["sasl"]): Promise<boolean> {
  const probe: KafkaConfig = {
    brokers: [brokers],
    clientId: "kafka-broker-probe",
    topicPrefix: "",
    requestPartitions: 1,
    eventPartitions: 1,
    replicationFactor: -1,
    minInsyncReplicas: 0,
    ensureTopics: false,
    conversationTtlMs: 0,
    history: { retentionMs: 0, partitions: 1, replicationFactor: -1 },
    sasl,
    tls: null,
  };
  // A producer that sends nothing: its connect asks for the cluster's metadata. Without
  // event_cb librdkafka keeps its connection errors to itself.
  const producer = new (rdkafka().Producer)({ ...librdkafkaConnection(probe), "socket.connection.setup.timeout.ms": 1000 });
  try {
    await call((cb) => producer.connect({ timeout: 2000 }, cb));
    const metadata = await call<NativeMetadata | undefined>((cb) => producer.getMetadata({ timeout: 2000 }, cb));
    return metadata?.brokers.some((b) => b.id === nodeId) ?? false;
  } catch {
    return false;
  } finally {
    await call((cb) => producer.disconnect(cb)).catch(() => undefined);
  }
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The broker could not bind a listener port: someone took a port between our probe and its bind. */
class PortClashError extends Error {}

type Launched = { broker: RunningBroker; exited: Promise<ExitInfo> };

/** startBroker plus the broker's exit, which the CLI watches. */
async function launchBroker(opts: BrokerOptions = {}): Promise<Launched> {
  const version = opts.version ?? defaultVersion();
  const libDir = await ensureKafkaJars(version, opts.cacheDir ?? DEFAULT_CACHE_DIR);
  // Free ports are probed, then released, then bound by the JVM seconds later; with other test
  // runs on the machine doing the same, another process can win in between. Retry with new ports
  // (only when we chose them: a caller's busy port will stay busy).
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchOnce(opts, version, libDir);
    } catch (err) {
      if (!(err instanceof PortClashError) || opts.port !== undefined || opts.controllerPort !== undefined || attempt === 3) throw err;
    }
  }
}

async function launchOnce(opts: BrokerOptions, version: string, libDir: string): Promise<Launched> {
  const classpath = path.join(libDir, "*");

  const ownsDataDir = opts.dataDir === undefined;
  const dataDir = path.resolve(opts.dataDir ?? (await fsp.mkdtemp(path.join(os.tmpdir(), "kafka-broker-"))));
  const removeOwnedDataDir = async () => {
    if (ownsDataDir) await fsp.rm(dataDir, { recursive: true, force: true });
  };

  let child: ChildProcess;
  let port: number;
  let exited: Promise<ExitInfo>;
  let logStart: number;
  let props: Record<string, string>;
  let credentials: BrokerCredentials | null = null;
  const logFile = path.resolve(opts.logFile ?? path.join(dataDir, "broker.log"));
  try {
    await fsp.mkdir(dataDir, { recursive: true });
    const [freeA, freeB] = await freePorts(2);
    port = opts.port ?? freeA!;
    const controllerPort = opts.controllerPort ?? (freeB === port ? freeA! : freeB!);

    // A secured broker's principals: new ones for a new data dir, the same again on a restart.
    if ((opts.security ?? "scram") === "scram") credentials = credentialsIn(dataDir);
    if (opts.tls && !credentials) throw new Error("startBroker: tls needs security scram (its listener is SASL_SSL)");
    const security = credentials ? securedServerProperties(credentials, opts.tls) : {};
    props = serverProperties(version, port, controllerPort, path.join(dataDir, "kafka-logs"), { ...security, ...opts.serverProperties });
    const configFile = path.join(dataDir, "server.properties");
    // Passwords are in it: readable by this user only.
    await fsp.writeFile(configFile, toPropertiesFile(props), { mode: 0o600 });
    await fsp.writeFile(path.join(dataDir, "log4j.properties"), LOG4J_PROPERTIES);
    await fsp.writeFile(path.join(dataDir, "log4j2.properties"), LOG4J2_PROPERTIES);
    const jvmOpts = [
      ...JVM_OPTS,
      `-Dlog4j.configuration=${pathToFileURL(path.join(dataDir, "log4j.properties")).href}`,
      `-Dlog4j2.configurationFile=${path.join(dataDir, "log4j2.properties")}`,
      `-Dkafka.logs.dir=${dataDir}`,
    ];

    // KRaft needs its log dirs formatted with a cluster id first. A caller's data dir may already
    // be formatted by an earlier run: keep its cluster id (4.x refuses a different one even with
    // --ignore-formatted) and skip the extra JVM start when every log dir is done.
    const logDirs = (props["log.dirs"] ?? props["log.dir"] ?? "")
      .split(",")
      .map((d) => d.trim())
      .filter(Boolean);
    const clusterIds = logDirs.map(readClusterId);
    if (clusterIds.some((id) => id === undefined)) {
      const clusterId = clusterIds.find((id) => id !== undefined) ?? newClusterId();
      await formatStorage(jvmOpts, classpath, clusterId, configFile, dataDir, [
        ...(credentials ? scramFormatArgs(credentials) : []),
        ...(opts.formatArgs ?? []),
      ]);
    }

    await fsp.mkdir(path.dirname(logFile), { recursive: true });
    const logFd = fs.openSync(logFile, "a");
    logStart = fs.fstatSync(logFd).size;
    try {
      // detached: own process group, so stop() can signal the whole group and a terminal's
      // Ctrl-C goes to us first (the CLI then stops the broker cleanly).
      child = spawn(JAVA, [...jvmOpts, "-cp", classpath, "kafka.Kafka", configFile], {
        cwd: dataDir,
        detached: true,
        stdio: ["ignore", logFd, logFd],
      });
    } finally {
      fs.closeSync(logFd); // the child has its own copy
    }
    exited = new Promise<ExitInfo>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      child.once("error", (error) => resolve({ code: null, signal: null, error }));
    });
    // Tests and scripts must be able to end with a broker still running; the exit hook kills it.
    child.unref();
  } catch (err) {
    await removeOwnedDataDir();
    throw err;
  }

  const pid = child.pid;
  if (pid === undefined) {
    const info = await exited;
    await removeOwnedDataDir();
    throw new Error(`could not start java (${JAVA}): ${info.error?.message ?? "no pid"}`);
  }
  track(pid, ownsDataDir ? dataDir : undefined);

  let gone = false;
  void exited.then(() => {
    gone = true;
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!gone) {
        signalGroup(pid, "SIGTERM");
        // Controlled shutdown takes about a second; past the grace period, stop waiting.
        const killer = setTimeout(() => signalGroup(pid, "SIGKILL"), STOP_GRACE_MS);
        await exited;
        clearTimeout(killer); // a pending timer would keep node alive for the whole grace period
      }
      untrack(pid);
      await removeOwnedDataDir();
    })();
    return stopping;
  };

  const brokers = `127.0.0.1:${port}`;
  const credentialsFile = credentials ? path.join(dataDir, CREDENTIALS_FILE) : null;
  const broker: RunningBroker = { brokers, port, pid, dataDir, credentials, credentialsFile, stop };
  const nodeId = Number(props["node.id"]);
  // The probe (librdkafka) speaks PLAINTEXT, or SASL_PLAINTEXT as the administrator of a
  // secured broker. On a listener a caller configured itself (SSL, its own SASL users) the
  // broker's own "started" line (logged once the listeners accept, after the broker is
  // unfenced) is the signal instead.
  const protocol = protocolOnPort(props, port);
  const probe: { sasl: KafkaConfig["sasl"] } | null =
    protocol === "PLAINTEXT"
      ? { sasl: null }
      : credentials && protocol === "SASL_PLAINTEXT" && !opts.serverProperties?.listeners
        ? { sasl: { mechanism: credentials.mechanism, ...credentials.users.admin } }
        : null;
  const ready = async () => (probe ? answers(brokers, nodeId, probe.sasl) : (await readLogSince(logFile, logStart)).includes("Kafka Server started"));
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  for (;;) {
    if (gone) {
      const info = await exited;
      const log = await readLogSince(logFile, logStart);
      await stop();
      const ErrorType = /BindException|Address already in use/.test(log) ? PortClashError : Error;
      throw new ErrorType(`Kafka ${version} broker exited during startup (code ${info.code}, signal ${info.signal}); log ${logFile}:\n${logExcerpt(log)}`);
    }
    if (await ready()) return { broker, exited };
    if (Date.now() > deadline) {
      const log = await readLogSince(logFile, logStart);
      await stop();
      throw new Error(`Kafka ${version} broker did not answer on ${brokers} within ${opts.startTimeoutMs ?? 60_000} ms; log ${logFile}:\n${logExcerpt(log)}`);
    }
    await delay(250);
  }
}

export async function startBroker(opts: BrokerOptions = {}): Promise<RunningBroker> {
  return (await launchBroker(opts)).broker;
}

/**
 * A random KRaft cluster id (16 bytes, base64url). One that starts with '-' would be read
 * as an option by the storage tool's argument parser, so those are drawn again.
 */
function newClusterId(): string {
  for (;;) {
    const id = Buffer.from(randomUUID().replaceAll("-", ""), "hex").toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/** cluster.id from a formatted log dir's meta.properties, if it has one. */
function readClusterId(logDir: string): string | undefined {
  try {
    return /^cluster\.id=(.+)$/m.exec(fs.readFileSync(path.join(logDir, "meta.properties"), "utf8"))?.[1]?.trim();
  } catch {
    return undefined;
  }
}

function formatStorage(jvmOpts: string[], classpath: string, clusterId: string, configFile: string, cwd: string, extra: string[]): Promise<void> {
  const args = [...jvmOpts, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", configFile, "--ignore-formatted", ...extra];
  return new Promise((resolve, reject) => {
    execFile(JAVA, args, { cwd, timeout: 120_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`kafka.tools.StorageTool format failed: ${err.message}\n${tailLines(stderr.trim() ? stderr : stdout, 30)}`));
      } else {
        resolve();
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// CLI

function usage(): never {
  process.stderr.write(
    "usage: tsx scripts/kafka-broker.ts fetch\n" +
      "       tsx scripts/kafka-broker.ts start [--port N] [--data-dir D] [--security scram|none]\n" +
      "env:   KAFKA_VERSION (default " +
      DEFAULT_VERSION +
      ")\n",
  );
  process.exit(2);
}

async function cli(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === "fetch") {
    process.stdout.write(`${await ensureKafkaJars()}\n`);
    return;
  }
  if (command !== "start") usage();

  const opts: BrokerOptions = {};
  let values: { port?: string; "data-dir"?: string; security?: string };
  try {
    ({ values } = parseArgs({ args: rest, options: { port: { type: "string" }, "data-dir": { type: "string" }, security: { type: "string" } }, strict: true }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    usage();
  }
  if (values.port !== undefined) {
    if (!/^\d{1,5}$/.test(values.port)) usage();
    opts.port = Number(values.port);
  }
  if (values["data-dir"] !== undefined) opts.dataDir = values["data-dir"];
  if (values.security !== undefined) {
    if (values.security !== "scram" && values.security !== "none") usage();
    opts.security = values.security;
  }

  const { broker, exited } = await launchBroker(opts);
  process.stderr.write(`kafka ${opts.version ?? defaultVersion()} running: pid ${broker.pid}, data dir ${broker.dataDir}\n`);
  process.stdout.write(`KAFKA_BROKERS=${broker.brokers}\n`);
  // The principals' passwords, for the scripts that start services and tests (never printed).
  if (broker.credentialsFile) process.stdout.write(`KAFKA_CREDENTIALS_FILE=${broker.credentialsFile}\n`);

  // Signal handlers do not keep node alive; the broker child is unref'd. Hold the loop open.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return; // a second Ctrl-C must not abort the controlled shutdown
    stopping = true;
    process.stderr.write(`${signal}: stopping kafka\n`);
    broker.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);

  const info = await exited;
  if (!stopping) {
    clearInterval(keepAlive);
    process.stderr.write(`kafka exited on its own (code ${info.code}, signal ${info.signal})\n`);
    await broker.stop();
    process.exit(1);
  }
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(fs.realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
