/**
 * Fuzzes the running gateway from its own OpenAPI document (GET /openapi.json) with
 * schemathesis, against a real broker and worker: every operation, valid and invalid
 * input, and stateful sequences that follow the document's links (open a conversation,
 * send a turn, follow its events, delete it). No answer may be a 5xx, and every answer
 * must match the document: its status, content type, headers and body (SSE messages too).
 *
 * Bounded for CI on 2 cores: a fixed number of cases per operation (FUZZ_EXAMPLES), a
 * fixed seed (FUZZ_SEED overrides it, to explore), one worker, and a timeout.
 *
 * Checks left out, and why:
 * - ensure_resource_availability: POST /v1/conversations answers 201 when the open request
 *   is queued; the conversation is readable once a worker has applied it, an instant later.
 * - positive_data_acceptance: /v1/chat/completions has rules across fields that a schema
 *   does not express (the last message must be the user's and not empty; max_tokens and
 *   max_completion_tokens must agree); the document says so in words.
 * - unsupported_method, allow_header_conformance: an undocumented method is a 404 "no
 *   route", as any unknown URL, not a 405 with Allow.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { assertNothingDeadLettered, statusSummary } from "../helpers/fuzz-outcome.js";
import { stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { pythonTool } from "../helpers/python-tools.js";
import type { Service } from "../helpers/services.js";

const run = promisify(execFile);
const KEY = "openapi-fuzz-key-0001";
const EXAMPLES = Number(process.env.FUZZ_EXAMPLES ?? 30);
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const EXCLUDED = ["ensure_resource_availability", "positive_data_acceptance", "unsupported_method", "allow_header_conformance"];

describe("the gateway, fuzzed from its OpenAPI document", { timeout: 600_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let reports: string;
  const prefix = uniquePrefix("openapi-fuzz");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    reports = await mkdtemp(path.join(os.tmpdir(), "openapi-fuzz-"));
    // A short unknown-id wait so that lookups of random ids take milliseconds; short
    // replies so that the turns the fuzzer queues do not pile up behind each other.
    // A DELETE answers 204 once applied, 202 while still queued behind the conversation's
    // turns; the stateful phase takes any 2xx DELETE as done and fails a GET that still
    // finds it (ST301). 10 s covers a queued turn on a loaded 2-core machine (2 s did not).
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `fuzz:${KEY}`, UNKNOWN_REQUEST_WAIT_MS: "20", GATEWAY_APPLY_WAIT_MS: "10000" });
    worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "4", WORKER_SLOTS: "4" });
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
    if (reports) await rm(reports, { recursive: true, force: true });
  });

  it("answers no 5xx, and every answer matches the document", async (t) => {
    const document = (await (await fetch(`${gateway.baseUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    // A body over GATEWAY_BODY_LIMIT_BYTES is refused as too large (413) before its schema
    // is looked at: a rejection too, which schemathesis's default list leaves out.
    const config = path.join(reports, "schemathesis.toml");
    await writeFile(config, "[checks.negative_data_rejection]\nexpected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]\n");
    const args = [
      "--config-file",
      config,
      "run",
      `${gateway.baseUrl}/openapi.json`,
      "--header",
      `Authorization: Bearer ${KEY}`,
      "--checks",
      "all",
      "--exclude-checks",
      EXCLUDED.join(","),
      "--max-examples",
      String(EXAMPLES),
      "--seed",
      String(SEED),
      "--workers",
      "1",
      "--request-timeout",
      "60",
      "--generation-database",
      "none",
      "--no-color",
      "--report",
      "ndjson",
      "--report-ndjson-path",
      path.join(reports, "events.ndjson"),
    ];
    // Run in the report dir: schemathesis keeps a cache (.schemathesis/) in its working directory.
    const result = await run(pythonTool("schemathesis"), args, {
      cwd: reports,
      timeout: 480_000,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, SCHEMATHESIS_TELEMETRY: "false" },
    }).then(
      (out) => ({ code: 0, ...out }),
      (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" }),
    );
    const output = `${result.stdout}\n${result.stderr}`;
    // Long lines (a generated body of thousands of characters) would push the failure itself out of the message.
    const readable = output
      .split("\n")
      .map((l) => (l.length > 300 ? `${l.slice(0, 300)}… (${l.length} characters)` : l))
      .join("\n");
    assert.equal(result.code, 0, `schemathesis found problems (seed ${SEED}):\n${readable.slice(-20_000)}`);
    // Loaded from a URL, schemathesis leaves out the operation that serves the document itself.
    const selected = Number(/Selected: (\d+)\/\d+/.exec(output)?.[1]);
    const tested = Number(/Tested: (\d+)/.exec(output)?.[1]);
    assert.ok(selected >= operations - 1 && tested === selected, `every operation was tested (${tested} of ${selected} selected, ${operations} documented)`);

    // What the gateway answered: valid requests got through, invalid ones were refused.
    const events = await readFile(path.join(reports, "events.ndjson"), "utf8");
    const statuses = new Map<number, number>();
    for (const match of events.matchAll(/"status_code":(\d{3})/g)) statuses.set(Number(match[1]), (statuses.get(Number(match[1])) ?? 0) + 1);
    const summary = statusSummary(statuses);
    t.diagnostic(`statuses: ${summary}`);
    assert.ok(
      [200, 201, 202, 400, 404].every((s) => (statuses.get(s) ?? 0) > 0),
      `accepted and refused requests were both reached: ${summary}`,
    );
    assert.ok(
      [...statuses.keys()].every((s) => s < 500),
      `no 5xx: ${summary}`,
    );

    assert.equal(gateway.proc.exitCode, null, "the gateway is still running");
    assert.doesNotMatch(gateway.output(), /unhandled error/, "no error escaped to the catch-all handler");
    await assertNothingDeadLettered(kafka, prefix, "everything the gateway queued was readable by the worker");
  });
});
