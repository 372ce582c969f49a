/**
 * The whole system on this machine, as scripts/run-local.sh starts it (after building and
 * fetching the model): a Kafka broker (unless KAFKA_BROKERS names one), secured as a
 * production cluster is (SCRAM logins, the install's ACLs, each service its own principal),
 * the gateway and WORKERS workers, supervised like their Deployments
 * (scripts/local/supervisor.ts): a worker that dies is started again, the gateway or the
 * broker dying ends the run.
 * Ctrl-C stops everything (a second Ctrl-C kills what is left) and leaves nothing running.
 *
 *   MODEL (required), WORKERS=2, GATEWAY_PORT=8080, WORKER_PORT_BASE=9100 (worker i on
 *   base + i), KAFKA_PORT=9092, KAFKA_BROKERS, LOG_DIR
 *
 * The services run from the sources (node --import tsx), so nothing needs building first.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { loadKafkaConfig } from "../contracts/config/shared.js";
import { topicNames } from "../contracts/topics.js";
import { provisionInstall } from "./kafka/provision.js";
import { kafkaLoginEnv, readCredentials, type BrokerCredentials } from "./kafka/security.js";
import { Supervisor, type ProcessSpec } from "./local/supervisor.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const log = (line: string) => process.stderr.write(`[local] ${line}\n`);

function intEnv(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    log(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return n;
}

const model = process.env.MODEL?.trim();
if (!model) {
  log("MODEL is not set: run this through scripts/run-local.sh, which fetches the demo model");
  process.exit(2);
}
const workers = intEnv("WORKERS", 2, 1, 64);
const gatewayPort = intEnv("GATEWAY_PORT", 8080, 1, 65535);
const kafkaPort = intEnv("KAFKA_PORT", 9092, 1, 65535);
const workerPortBase = intEnv("WORKER_PORT_BASE", 9100, 1, 65535 - 64);
const logDir = path.resolve(ROOT, process.env.LOG_DIR ?? ".cache/local-logs");
mkdirSync(logDir, { recursive: true });
// llama.cpp threads spin: share the CPUs between the workers, at least one thread each.
const threads = Math.max(1, Math.floor(os.availableParallelism() / workers));
const workerPort = (i: number) => workerPortBase + i;

const supervisor = new Supervisor(log);
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    log("stopping (Ctrl-C again to kill at once)");
    const workerNames = Array.from({ length: workers }, (_, i) => `worker-${i + 1}`);
    await supervisor.stop([workerNames, ["gateway"], ["broker"]]);
    for (let i = 1; i <= workers; i++) rmSync(path.join(logDir, `worker-${i}.pid`), { force: true });
    log("stopped; nothing left running");
  }
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (stopping) {
      supervisor.killNow();
      process.exit(130);
    }
    void shutdown(130);
  });
}
void supervisor.ended.then((reason) => {
  log(`${reason}: the run cannot go on without it`);
  void shutdown(1);
});

const spec = (name: string, args: string[], env: Record<string, string>, extra: Partial<ProcessSpec> = {}): ProcessSpec => ({
  name,
  command: process.execPath,
  args,
  env,
  cwd: ROOT,
  logFile: path.join(logDir, `${name}.log`),
  replicated: false,
  stopGraceMs: 10_000,
  ...extra,
});

/** Waits until `check` is true, failing after `timeoutMs` or as soon as the run ends. */
async function waitFor(what: string, logFile: string, check: () => Promise<boolean> | boolean, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!stopping) {
    if (await check()) return;
    if (Date.now() > deadline) {
      log(`${what} did not become ready in ${timeoutMs / 1000} s; the end of ${logFile}:`);
      process.stderr.write(readFileSync(logFile, "utf8").split("\n").slice(-20).join("\n") + "\n");
      await shutdown(1);
    }
    await delay(500);
  }
  await forever(); // stopping: shutdown() exits
}

/** Never resolves; the interval keeps node alive while it waits (signal handlers do not). */
function forever(): Promise<never> {
  setInterval(() => undefined, 1 << 30);
  return new Promise<never>(() => {});
}

const answers = async (url: string) => {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
};

let brokers = process.env.KAFKA_BROKERS?.trim() ?? "";
/**
 * The broker's principals: the local broker's, or, with KAFKA_BROKERS, those of
 * KAFKA_CREDENTIALS_FILE (a broker this project's script started); without one the services
 * use the KAFKA_SASL_* you set.
 */
let credentials: BrokerCredentials | null = null;
if (brokers) {
  log(`using Kafka at ${brokers}`);
  const file = process.env.KAFKA_CREDENTIALS_FILE?.trim();
  if (file) credentials = readCredentials(file);
} else {
  const broker = spec(
    "broker",
    ["--import", "tsx", "scripts/kafka-broker.ts", "start", "--port", String(kafkaPort)],
    {},
    { termOnly: true, stopGraceMs: 30_000 },
  );
  rmSync(broker.logFile, { force: true });
  supervisor.start(broker);
  await waitFor("the Kafka broker", broker.logFile, () => {
    const text = existsSync(broker.logFile) ? readFileSync(broker.logFile, "utf8") : "";
    const found = /^KAFKA_BROKERS=(\S+)$/m.exec(text);
    const file = /^KAFKA_CREDENTIALS_FILE=(\S+)$/m.exec(text);
    if (!found || !file) return false;
    brokers = found[1]!;
    credentials = readCredentials(file[1]!);
    return true;
  });
  log(`Kafka broker up at ${brokers}`);
}
if (credentials) {
  // The install's topics and ACLs, as an operator makes them (scripts/kafka/provision.ts).
  const config = loadKafkaConfig({ ...process.env, KAFKA_BROKERS: brokers });
  const names = {
    topics: topicNames(config.topicPrefix),
    workerGroup: process.env.WORKER_GROUP_ID?.trim() || "kafka-llm-workers",
    gatewayGroup: process.env.GATEWAY_EVENTS_GROUP_ID?.trim() || `${config.topicPrefix}kafka-llm-gateways`,
  };
  await provisionInstall({ brokers, credentials, names, settings: config });
  log("Kafka: SCRAM logins, one principal per service, the install's ACLs");
}

const common = { KAFKA_BROKERS: brokers, LOG_LEVEL: process.env.LOG_LEVEL ?? "info" };
// Local runs listen on loopback only, without API keys unless asked (the gateway logs a warning).
const gateway = spec("gateway", ["--import", "tsx", "gateway/main.ts"], {
  ...common,
  ...kafkaLoginEnv(credentials, "gateway"),
  GATEWAY_AUTH: process.env.GATEWAY_AUTH ?? "none",
  GATEWAY_HOST: "127.0.0.1",
  GATEWAY_PORT: String(gatewayPort),
  // A libuv thread for each of the gateway's Kafka readers, as its image sets (Dockerfile.gateway).
  UV_THREADPOOL_SIZE: "16",
});
supervisor.start(gateway);
await waitFor("the gateway", gateway.logFile, () => answers(`http://127.0.0.1:${gatewayPort}/healthz`));

for (let i = 1; i <= workers; i++) {
  supervisor.start(
    spec(
      `worker-${i}`,
      ["--import", "tsx", "worker/main.ts"],
      {
        ...common,
        ...kafkaLoginEnv(credentials, "worker"),
        WORKER_ID: `worker-${i}`,
        WORKER_HTTP_HOST: "127.0.0.1",
        WORKER_HTTP_PORT: String(workerPort(i)),
        MODEL: model,
        LLAMA_THREADS: String(threads),
      },
      { replicated: true, pidFile: path.join(logDir, `worker-${i}.pid`), stopGraceMs: 35_000 },
    ),
  );
}
for (let i = 1; i <= workers; i++) {
  await waitFor(`worker-${i}`, path.join(logDir, `worker-${i}.log`), () => answers(`http://127.0.0.1:${workerPort(i)}/readyz`));
}

const base = `http://127.0.0.1:${gatewayPort}`;
const rel = path.relative(process.cwd(), logDir) || ".";
process.stdout.write(`
kafka-llm is running: Kafka at ${brokers}, gateway at ${base},
${workers} workers (${threads} llama.cpp thread(s) each), metrics at http://127.0.0.1:${workerPort(1)}/metrics ...
Logs: ${rel}/ (worker pids in ${rel}/worker-N.pid)

Send a message and stream the reply:

  rid=$(curl -s -X POST ${base}/v1/conversations/demo/messages \\
          -H 'content-type: application/json' -d '{"content":"Tell me about Kafka."}' \\
        | sed -E 's/.*"request_id":"([^"]+)".*/\\1/')
  curl -N ${base}/v1/requests/$rid/events

Or chat in a browser: ${base}/

Watch a takeover: start a long reply, then kill the worker named in its start event
("worker_id"), e.g. kill -9 $(cat ${rel}/worker-1.pid); the reply starts again on the
other worker (a second start event) and finishes there, and the killed one is restarted.

Press Ctrl-C to stop everything.
`);
await forever(); // runs until a signal or a fatal exit
