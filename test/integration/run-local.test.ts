/**
 * scripts/run-local.ts, the supervisor behind `bash scripts/run-local.sh`, with a real
 * broker, gateway and two stories260K workers: a worker killed with SIGKILL is logged and
 * started again while chat turns are still answered; Ctrl-C (SIGINT) stops everything and
 * leaves no process behind; the gateway dying ends the run with a message, again leaving
 * nothing behind.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { ensureTestModel } from "../../scripts/models.js";
import { apiClient, eventually, readEvents } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { freePort, startService, type Service } from "../helpers/services.js";

interface Run {
  /** The supervisor, started through the shared helper (its output() holds the banner and its log lines). */
  service: Service;
  gatewayPort: number;
  workerPortBase: number;
  logDir: string;
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });

/** A base port whose next two ports (the workers') are free. */
async function workerPortBase(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p < 65_000 && (await portFree(p + 1))) return p - 1;
  }
}

/** Every process below `pid` (the supervisor's children and theirs), from ps. */
function descendants(pid: number): Array<{ pid: number; args: string }> {
  const ps = spawnSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" });
  const rows = ps.stdout
    .trim()
    .split("\n")
    .map((l) => {
      const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l)!;
      return { pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! };
    });
  const found: Array<{ pid: number; args: string }> = [];
  const walk = (parent: number) => {
    for (const r of rows.filter((row) => row.ppid === parent)) {
      found.push({ pid: r.pid, args: r.args });
      walk(r.pid);
    }
  };
  walk(pid);
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Every process of the run is gone. The services are gone when the supervisor exits; a
 * helper they started (tsx's esbuild service) ends when its parent's pipe closes, a moment
 * later, so this waits for that rather than sampling once.
 */
async function nothingLeft(processes: Array<{ pid: number; args: string }>): Promise<void> {
  const left = () => processes.filter((p) => alive(p.pid));
  for (let i = 0; i < 100 && left().length > 0; i++) await delay(100);
  assert.deepEqual(left(), [], "no process of the run is left");
}

describe("run-local supervisor", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let model: string;
  const runs: Run[] = [];

  before(async () => {
    kafka = await useKafka();
    model = await ensureTestModel();
  });
  after(async () => {
    for (const r of runs) if (!r.service.exited()) await r.service.stop("SIGKILL");
    for (const r of runs) rmSync(r.logDir, { recursive: true, force: true });
    await kafka?.stop();
  });

  async function startRun(): Promise<Run> {
    const prefix = uniquePrefix("run-local");
    const gatewayPort = await freePort();
    const base = await workerPortBase();
    const logDir = mkdtempSync(path.join(os.tmpdir(), "run-local-"));
    const service = await startService({
      name: "run-local",
      entry: "scripts/run-local.ts",
      env: {
        MODEL: model,
        WORKERS: "2",
        GATEWAY_PORT: String(gatewayPort),
        WORKER_PORT_BASE: String(base),
        LOG_DIR: logDir,
        KAFKA_BROKERS: kafka.brokers,
        ...(kafka.credentialsFile && { KAFKA_CREDENTIALS_FILE: kafka.credentialsFile }),
        KAFKA_TOPIC_PREFIX: prefix,
        KAFKA_REQUEST_PARTITIONS: "2",
        KAFKA_REPLICATION_FACTOR: "1",
        WORKER_GROUP_ID: `${prefix}workers`,
        DEFAULT_MAX_TOKENS: "32",
      },
      // Ready once the last worker is; the banner follows the readiness of all of them.
      port: base + 2,
      readyPath: "/readyz",
      timeoutMs: 180_000,
    });
    const run: Run = { service, gatewayPort, workerPortBase: base, logDir };
    runs.push(run);
    await eventually(async () => (service.output().includes("kafka-llm is running") ? true : undefined), 180_000, "run-local's banner");
    return run;
  }

  async function chatTurn(run: Run, conversation: string): Promise<string> {
    const api = apiClient(`http://127.0.0.1:${run.gatewayPort}`);
    const posted = await api("POST", `/v1/conversations/${conversation}/messages`, { content: "Hello" });
    assert.equal(posted.status, 202, JSON.stringify(posted.body));
    const events = await readEvents(`http://127.0.0.1:${run.gatewayPort}${posted.body.events_url}`, undefined);
    const final = events.find((e) => e.event === "final");
    assert.ok(final, `a final event: ${JSON.stringify(events.map((e) => e.event))}`);
    return final.data;
  }

  it("restarts a worker killed with SIGKILL, keeps answering, and Ctrl-C leaves nothing running", async () => {
    const run = await startRun();
    await chatTurn(run, "before-kill");

    const pidFile = path.join(run.logDir, "worker-1.pid");
    const firstPid = Number(readFileSync(pidFile, "utf8"));
    const processes = descendants(run.service.pid);
    assert.ok(
      processes.some((p) => p.pid === firstPid),
      "the pid file names a process of the run",
    );
    assert.equal(processes.filter((p) => /worker\/main\.ts/.test(p.args)).length, 2);
    assert.equal(processes.filter((p) => /gateway\/main\.ts/.test(p.args)).length, 1);

    process.kill(firstPid, "SIGKILL");
    await eventually(
      async () => (/worker-1 exited \(signal SIGKILL\).*starting it again in 1 s/.test(run.service.output()) ? true : undefined),
      30_000,
      "the death is logged",
    );
    // The other worker keeps serving: turns are answered while worker-1 is away or back.
    await chatTurn(run, "after-kill-a");
    await chatTurn(run, "after-kill-b");
    await eventually(async () => (/worker-1 started again \(pid \d+\)/.test(run.service.output()) ? true : undefined), 30_000, "worker-1 restarted");
    const secondPid = Number(readFileSync(pidFile, "utf8"));
    assert.notEqual(secondPid, firstPid);
    await eventually(
      async () => ((await fetch(`http://127.0.0.1:${run.workerPortBase + 1}/readyz`).catch(() => null))?.ok ? true : undefined),
      120_000,
      "worker-1 ready again",
    );
    assert.ok(alive(run.service.pid), "one worker's death does not end the run");

    const all = descendants(run.service.pid);
    assert.equal(await run.service.stop("SIGINT"), 130);
    assert.match(run.service.output(), /stopped; nothing left running/);
    await nothingLeft(all);
  });

  it("ends the run with a message when the gateway dies, leaving nothing running", async () => {
    const run = await startRun();
    const all = descendants(run.service.pid);
    const gateway = all.find((p) => /gateway\/main\.ts/.test(p.args));
    assert.ok(gateway);
    process.kill(gateway.pid, "SIGKILL");
    await eventually(async () => (run.service.exited() ? true : undefined), 60_000, "the run ended");
    assert.equal(run.service.proc.exitCode, 1);
    assert.match(run.service.output(), /gateway exited \(signal SIGKILL\) after [\d.]+ s; see .*gateway\.log: the run cannot go on without it/);
    await nothingLeft(all);
  });
});
