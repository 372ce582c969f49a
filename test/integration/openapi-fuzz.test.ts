/**
 * Fuzzes the running gateway from its own OpenAPI document (GET /openapi.json) with
 * schemathesis, against a real broker and worker: every operation, valid and invalid
 * input, and stateful sequences that follow the document's links (open a conversation,
 * send a turn, follow its events, delete it). No answer may be a 5xx, and every answer
 * must match the document: its status, content type, headers and body (SSE messages too).
 *
 * A second pass fuzzes with large inputs: schemathesis draws small values, so the hooks of
 * test/helpers/schemathesis_large_inputs.py grow each of its cases towards and past the
 * gateway's bounds (the body limit, the longest content, the most messages, the largest
 * max_tokens, 16 KiB of headers, long path ids and query values). A grown case is judged
 * as schemathesis revalidates it (past a documented bound it is negative and must be
 * refused as the document says), and the hooks' check adds 413 for a body over the limit,
 * 431 for headers over 16 KiB, and a 400 that names the field grown past its bound.
 *
 * Bounded for CI on 2 cores: a fixed number of cases per operation (FUZZ_EXAMPLES;
 * FUZZ_LARGE_EXAMPLES for the large pass, its fuzzing phase only, unshrunk), a fixed seed
 * each (FUZZ_SEED and FUZZ_LARGE_SEED override them, to explore), one worker, and a timeout.
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
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { generationParamFields } from "../../contracts/generation-params.js";
import { MAX_APPEND_MESSAGES, MAX_CONTENT_CHARS, MAX_CONTEXT_MESSAGES, MAX_STOP_SEQUENCES, MAX_TOOLS } from "../../contracts/limits.js";
import { conversationIdSchema } from "../../contracts/records/fields.js";
import { assertNothingDeadLettered, statusSummary } from "../helpers/fuzz-outcome.js";
import { stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { pythonTool } from "../helpers/python-tools.js";
import { REPO_ROOT, type Service } from "../helpers/services.js";

const run = promisify(execFile);
const KEY = "openapi-fuzz-key-0001";
const EXAMPLES = Number(process.env.FUZZ_EXAMPLES ?? 30);
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const LARGE_EXAMPLES = Number(process.env.FUZZ_LARGE_EXAMPLES ?? 40);
const LARGE_SEED = Number(process.env.FUZZ_LARGE_SEED ?? 20261202);
const EXCLUDED = ["ensure_resource_availability", "positive_data_acceptance", "unsupported_method", "allow_header_conformance"];
/**
 * The longest answer the response-time check takes, in seconds: a write that waits to be
 * applied answers 202 at GATEWAY_APPLY_WAIT_MS (10 s here) when the worker is behind the
 * turns the fuzzer queued, as documented; anything slower than this bound is still caught.
 */
const MAX_RESPONSE_SECONDS = 20;
/** The stateful pass's chains: scenarios, and calls in each. */
const STATEFUL_EXAMPLES = Number(process.env.FUZZ_STATEFUL_EXAMPLES ?? 10);
const STATEFUL_STEPS = 6;
/**
 * The large pass's limit: schemathesis grows each generated case in Python before sending
 * it, which is most of the pass. It takes 17-30 s here; one CI run, slow throughout (2,222 s
 * against 1,774 s), hit the earlier 180 s limit, and what held the pass there is not known.
 */
const LARGE_PASS_TIMEOUT_MS = 300_000;
/** GATEWAY_BODY_LIMIT_BYTES (its default, said here so the large pass knows it). */
const BODY_LIMIT_BYTES = 256 * 1024;
/**
 * The bounds the large pass grows inputs to and past, from where the gateway takes them:
 * contracts/limits.ts and the record schemas, Node's header limit, the router's longest
 * path parameter (gateway/app.ts), and the lists a chat message's text parts may hold (64).
 */
const LARGE_LIMITS = {
  body_bytes: BODY_LIMIT_BYTES,
  content_chars: MAX_CONTENT_CHARS,
  header_bytes: http.maxHeaderSize,
  array_items: [MAX_STOP_SEQUENCES, 64, MAX_APPEND_MESSAGES, MAX_TOOLS, MAX_CONTEXT_MESSAGES + 1],
  max_tokens: generationParamFields.max_tokens.maxValue,
  id_chars: conversationIdSchema.maxLength,
  param_chars: 256,
};
const HOOKS = path.join(REPO_ROOT, "test", "helpers", "schemathesis_large_inputs.py");

/**
 * A schemathesis run's exit code and output, and the output with lines over 300 characters
 * cut (a generated body of thousands would push the failure itself out of the message).
 */
async function schemathesis(
  args: string[],
  cwd: string,
  timeoutMs: number,
  env: Record<string, string> = {},
): Promise<{ code: number; output: string; readable: string }> {
  // Run in the report dir: schemathesis keeps a cache (.schemathesis/) in its working directory.
  const result = await run(pythonTool("schemathesis"), args, {
    cwd,
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, SCHEMATHESIS_TELEMETRY: "false", ...env },
  }).then(
    (out) => ({ code: 0, ...out }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" }),
  );
  const output = `${result.stdout}\n${result.stderr}`;
  const readable = output
    .split("\n")
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)}… (${l.length} characters)` : l))
    .join("\n");
  return { code: result.code, output, readable };
}

/** How many answers had each status, from schemathesis's ndjson report. */
async function statusesOf(report: string): Promise<Map<number, number>> {
  const events = await readFile(report, "utf8");
  const statuses = new Map<number, number>();
  for (const match of events.matchAll(/"status_code":(\d{3})/g)) statuses.set(Number(match[1]), (statuses.get(Number(match[1])) ?? 0) + 1);
  return statuses;
}

/** Every operation the document has was tested (schemathesis leaves out the one serving the document, loaded from its URL). */
function assertEveryOperationTested(output: string, operations: number): void {
  const selected = Number(/Selected: (\d+)\/\d+/.exec(output)?.[1]);
  const tested = Number(/Tested: (\d+)/.exec(output)?.[1]);
  assert.ok(selected >= operations - 1 && tested === selected, `every operation was tested (${tested} of ${selected} selected, ${operations} documented)`);
}

describe("the gateway, fuzzed from its OpenAPI document", { timeout: 1_080_000 }, () => {
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
    // A DELETE answers 200 once applied, 202 while still queued behind the conversation's
    // turns; the stateful phase takes any 2xx DELETE as done and fails a GET that still
    // finds it (ST301). 10 s covers a queued turn on a loaded 2-core machine (2 s did not).
    gateway = await startGateway(common, {
      GATEWAY_API_KEYS: `fuzz:${KEY}`,
      UNKNOWN_REQUEST_WAIT_MS: "20",
      GATEWAY_APPLY_WAIT_MS: "10000",
      GATEWAY_BODY_LIMIT_BYTES: String(BODY_LIMIT_BYTES),
    });
    worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "4", WORKER_SLOTS: "4" });
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
    if (reports) await rm(reports, { recursive: true, force: true });
  });

  /** schemathesis's arguments for one pass against the gateway's document, with every check but EXCLUDED. */
  function runArgs(pass: { config: string; examples: number; seed: number; report: string; extra?: string[] }): string[] {
    return [
      ...["--config-file", pass.config, "run", `${gateway.baseUrl}/openapi.json`],
      ...["--header", `Authorization: Bearer ${KEY}`, "--checks", "all", "--exclude-checks", EXCLUDED.join(",")],
      ...(pass.extra ?? []),
      ...["--max-examples", String(pass.examples), "--seed", String(pass.seed), "--workers", "1", "--request-timeout", "60"],
      ...["--max-response-time", String(MAX_RESPONSE_SECONDS)],
      ...["--generation-database", "none", "--no-color", "--report", "ndjson", "--report-ndjson-path", pass.report],
    ];
  }

  /** The operations the gateway's document lists. */
  async function operationCount(): Promise<number> {
    const document = (await (await fetch(`${gateway.baseUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    return Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  }

  /** After a pass: no 5xx, the gateway still up with nothing escaped, and nothing it queued dead-lettered. */
  async function assertGatewayUnharmed(statuses: Map<number, number>, summary: string): Promise<void> {
    assert.ok(
      [...statuses.keys()].every((s) => s < 500),
      `no 5xx: ${summary}`,
    );
    assert.equal(gateway.proc.exitCode, null, "the gateway is still running");
    assert.doesNotMatch(gateway.output(), /unhandled error/, "no error escaped to the catch-all handler");
    await assertNothingDeadLettered(kafka, prefix, "everything the gateway queued was readable by the worker");
  }

  it("answers no 5xx, and every answer matches the document", async (t) => {
    const operations = await operationCount();
    // A body over GATEWAY_BODY_LIMIT_BYTES is refused as too large (413) before its schema
    // is looked at: a rejection too, which schemathesis's default list leaves out.
    const config = path.join(reports, "schemathesis.toml");
    await writeFile(config, "[checks.negative_data_rejection]\nexpected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]\n");
    // The stateful phase is a pass of its own (below), with its chains bounded.
    const args = runArgs({
      config,
      examples: EXAMPLES,
      seed: SEED,
      report: path.join(reports, "events.ndjson"),
      extra: ["--phases", "examples,coverage,fuzzing"],
    });
    const { code, output, readable } = await schemathesis(args, reports, 480_000);
    assert.equal(code, 0, `schemathesis found problems (seed ${SEED}):\n${readable.slice(-20_000)}`);
    assertEveryOperationTested(output, operations);

    // What the gateway answered: valid requests got through, invalid ones were refused.
    const statuses = await statusesOf(path.join(reports, "events.ndjson"));
    const summary = statusSummary(statuses);
    t.diagnostic(`statuses: ${summary}`);
    assert.ok(
      [200, 201, 202, 400, 404].every((s) => (statuses.get(s) ?? 0) > 0),
      `accepted and refused requests were both reached: ${summary}`,
    );
    await assertGatewayUnharmed(statuses, summary);
  });

  it("follows the document's links (open, turn, read, continue, delete) and answers no 5xx", async (t) => {
    // Each scenario is a chain of linked calls: a response continued by previous_response_id,
    // a conversation's turns, reads and deletion. Every generation in a chain queues behind
    // the one before on its conversation, so the chains are bounded (STATEFUL_EXAMPLES
    // scenarios of at most STATEFUL_STEPS calls) to what one worker runs within the pass.
    const config = path.join(reports, "schemathesis-stateful.toml");
    await writeFile(
      config,
      [
        "[checks.negative_data_rejection]",
        "expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]",
        "[phases.stateful]",
        `max-steps = ${STATEFUL_STEPS}`,
        "[phases.stateful.generation]",
        `max-examples = ${STATEFUL_EXAMPLES}`,
        "",
      ].join("\n"),
    );
    const report = path.join(reports, "events-stateful.ndjson");
    const args = runArgs({ config, examples: EXAMPLES, seed: SEED, report, extra: ["--phases", "stateful"] });
    const started = Date.now();
    const { code, readable } = await schemathesis(args, reports, 240_000);
    t.diagnostic(`stateful pass: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(code, 0, `schemathesis found problems following links (seed ${SEED}):\n${readable.slice(-20_000)}`);
    const statuses = await statusesOf(report);
    const summary = statusSummary(statuses);
    t.diagnostic(`statuses: ${summary}`);
    assert.ok(
      [200, 201].some((s) => (statuses.get(s) ?? 0) > 0),
      `linked calls reached the routes: ${summary}`,
    );
    await assertGatewayUnharmed(statuses, summary);
  });

  it("refuses large inputs as the document says, and answers no 5xx", async (t) => {
    const operations = await operationCount();
    // Headers over Node's limit are refused by its parser (431) before any route runs.
    const config = path.join(reports, "schemathesis-large.toml");
    await writeFile(config, "[checks.negative_data_rejection]\nexpected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, 431]\n");
    const report = path.join(reports, "events-large.ndjson");
    // Generated cases only, each grown by the hooks; a failure is reported as it was sent,
    // unshrunk, with what was grown in the check's message.
    const args = runArgs({ config, examples: LARGE_EXAMPLES, seed: LARGE_SEED, report, extra: ["--phases", "fuzzing", "--no-shrink"] });
    const started = Date.now();
    const { code, output, readable } = await schemathesis(args, reports, LARGE_PASS_TIMEOUT_MS, {
      SCHEMATHESIS_HOOKS: HOOKS,
      FUZZ_LIMITS: JSON.stringify(LARGE_LIMITS),
    });
    t.diagnostic(`large pass: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(code, 0, `schemathesis found problems with large inputs (seed ${LARGE_SEED}):\n${readable.slice(-20_000)}`);
    assertEveryOperationTested(output, operations);

    // The large inputs reached each bound: bodies over the limit, headers over 16 KiB, fields past their bounds.
    const statuses = await statusesOf(report);
    const summary = statusSummary(statuses);
    t.diagnostic(`statuses: ${summary}`);
    assert.ok(
      [400, 413, 431].every((s) => (statuses.get(s) ?? 0) > 0) && [201, 202].some((s) => (statuses.get(s) ?? 0) > 0),
      `large inputs were refused at each bound, and some within them accepted: ${summary}`,
    );
    await assertGatewayUnharmed(statuses, summary);
  });
});
