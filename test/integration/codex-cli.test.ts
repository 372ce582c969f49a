/**
 * Codex CLI (`codex exec`, from @openai/codex) gets its answer from the gateway: a custom
 * model provider whose base_url is the gateway, against a real broker and a worker on
 * Gemma 3 270M with a context that holds Codex's ~40 KB request (its instructions, nine
 * tools, a namespace of sub-agent functions and the hosted web_search). Codex runs as CI
 * runs it: no stdin, a private CODEX_HOME, every connection but the gateway's sent to a
 * closed proxy port, its update check and analytics off.
 *
 * One Codex call is ~8.3k prompt tokens: ~150 CPU seconds of Gemma on two cores (about 80 s
 * of wall time on a quiet machine, up to 7 minutes on a busy one): the suite's longest test.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureGemma270m } from "../../scripts/models.js";
import { REPO_ROOT } from "../../testkit/services.js";
import { stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "codex-cli-key-42";
const MODEL = "gemma-3-270m";
const CODEX = path.join(REPO_ROOT, "node_modules", ".bin", "codex");
/** One Codex call: ~8.3k prompt tokens on two cores, then up to DEFAULT_MAX_TOKENS of reply. */
const CODEX_TIMEOUT_MS = 540_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runCodex(args: string[], env: Record<string, string>, cwd: string): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const proc = spawn(CODEX, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], timeout: CODEX_TIMEOUT_MS, killSignal: "SIGKILL" });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    proc.on("error", reject);
    proc.on("close", (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}

describe("Codex CLI against the gateway", { timeout: 900_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let scratch: string;
  const prefix = uniquePrefix("codex-cli");

  before(async () => {
    kafka = await useKafka();
    gateway = await startGateway({ ...stackEnv(kafka, prefix), GATEWAY_API_KEYS: `codex:${KEY}`, MODEL_NAME: MODEL });
    worker = await startWorker(stackEnv(kafka, prefix), {
      MODEL: await ensureGemma270m(),
      // Codex's instructions and tools are ~8.3k of Gemma's tokens: they fit its 32k context.
      CONTEXT_SIZE: "32768",
      WORKER_SLOTS: "1",
      LLAMA_THREADS: "2",
      // Gemma 270M is a base model: it goes on past its answer. A reply cut at the token
      // budget is "incomplete", which Codex reports as an error; one line ends it completed.
      DEFAULT_MAX_TOKENS: "96",
      STOP_TRIGGERS: JSON.stringify(["\n"]),
    });
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), "codex-cli-"));
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
  });

  it("codex exec prints the gateway's answer and exits 0", async () => {
    const home = path.join(scratch, "codex-home");
    const work = path.join(scratch, "work");
    await fs.mkdir(home);
    await fs.mkdir(work);
    await fs.writeFile(
      path.join(home, "config.toml"),
      [
        `model = "${MODEL}"`,
        `model_provider = "kafka-llm"`,
        `check_for_update_on_startup = false`,
        ``,
        `[model_providers.kafka-llm]`,
        `name = "kafka-llm gateway"`,
        `base_url = "${gateway.baseUrl}/v1"`,
        `env_key = "KAFKA_LLM_API_KEY"`,
        `wire_api = "responses"`,
        `request_max_retries = 0`,
        `stream_max_retries = 0`,
        `stream_idle_timeout_ms = ${CODEX_TIMEOUT_MS}`,
        ``,
        `[analytics]`,
        `enabled = false`,
        ``,
        `[feedback]`,
        `enabled = false`,
        ``,
      ].join("\n"),
    );
    const dead = "http://127.0.0.1:9";
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: scratch,
      CODEX_HOME: home,
      CI: "true",
      KAFKA_LLM_API_KEY: KEY,
      // Anything but the gateway (loopback) goes to a closed port.
      HTTPS_PROXY: dead,
      HTTP_PROXY: dead,
      ALL_PROXY: dead,
      NO_PROXY: "127.0.0.1,localhost",
    };

    const cpuBefore = worker.cpuSeconds();
    const run = await runCodex(["exec", "--skip-git-repo-check", "--ephemeral", "--color", "never", "Say hello."], env, work);
    const told = `exit ${run.code} after ${Math.round(run.ms)} ms\nstdout:\n${run.stdout}\nstderr:\n${run.stderr.slice(-4000)}`;
    const calls = gateway.logs.filter((l) => l.record.msg === "hosted tools left out of the response's tools").length;
    process.stderr.write(
      `codex exec: ${Math.round(run.ms)} ms, ${calls} call(s) to the gateway, worker CPU ${(worker.cpuSeconds() - cpuBefore).toFixed(1)} s; answer: ${JSON.stringify(run.stdout.trim())}\n`,
    );
    assert.equal(run.code, 0, told);
    assert.ok(run.stdout.trim().length > 0, `an answer on stdout: ${told}`);
    assert.match(run.stderr, new RegExp(`provider: kafka-llm`), told);
    assert.doesNotMatch(run.stderr, /^ERROR/m, told);

    // The request reached the gateway, which left the hosted web search out and said so.
    const leftOut = gateway.logs.find((l) => l.record.msg === "hosted tools left out of the response's tools");
    assert.deepEqual(leftOut?.record.left_out, ["web_search"], "the gateway left web_search out of Codex's request");
  });
});
