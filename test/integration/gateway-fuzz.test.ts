/**
 * Property-based fuzz of request bodies, ids, queries and headers over real HTTP against a
 * real gateway, broker and worker (fast-check): whatever a client sends, the answer is
 * never a 5xx, the gateway does not crash or log an unhandled error, and everything it
 * accepts is a request the worker can read (nothing reaches the dead-letter topic).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { assertNothingDeadLettered, statusSummary } from "../helpers/fuzz-outcome.js";
import { stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "fuzz-key-0000000001";
const RUNS = 300;

interface FuzzRequest {
  method: string;
  path: string;
  body?: string;
  headers: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: mostly near-valid input (so the validators deep inside are reached), plus junk.

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 });
const weirdString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom("", " ", "\u0000", "💥", "__proto__", "constructor", "../..", "%00", "a".repeat(40_000), "\ud800"),
);
const scalar = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, 1, -1, 1.5, 2, 8192, 8193, 1e308, -0, null, true, false),
  weirdString,
);
const value = fc.oneof({ weight: 4, arbitrary: scalar }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) });
const extraKeys = fc.dictionary(fc.oneof(printable, fc.constantFrom("__proto__", "constructor", "prototype", "tools", "n", "stop")), value, { maxKeys: 2 });

/** Mostly a valid value, sometimes anything: valid bodies are common enough to reach the queue. */
const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: value });
const unit = fc.double({ min: 0.01, max: 1, noNaN: true });

const messageBody = fc
  .tuple(
    fc.record(
      {
        content: mostly(fc.constantFrom("Hi", "Tell me a story.", "ü 💥 \u0000 <script>")),
        system: mostly(fc.string({ maxLength: 20 })),
        max_tokens: mostly(fc.integer({ min: 1, max: 6 })),
        temperature: mostly(unit),
        top_p: mostly(unit),
        top_k: mostly(fc.integer({ min: 0, max: 100 })),
        repeat_penalty: mostly(unit),
      },
      { requiredKeys: [] },
    ),
    fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: extraKeys }),
  )
  .map(([body, extra]) => ({ ...extra, ...body }));

const chatMessage = fc.record(
  {
    role: mostly(fc.constantFrom("user", "system", "developer", "assistant", "user", "user")),
    content: mostly(
      fc.oneof(
        fc.constantFrom("Hi", "Once upon a time"),
        fc.array(fc.record({ type: fc.constantFrom("text", "text", "image_url"), text: mostly(fc.string({ maxLength: 10 })) }), { maxLength: 3 }),
      ),
    ),
    name: mostly(fc.string({ maxLength: 10 })),
  },
  { requiredKeys: ["role", "content"] },
);
const completionBody = fc
  .tuple(
    fc.record(
      {
        model: mostly(fc.constant("kafka-llm")),
        messages: mostly(fc.array(chatMessage, { minLength: 1, maxLength: 4 }).map((m) => [...m, { role: "user", content: "Go on." }])),
        stream: mostly(fc.boolean()),
        stream_options: mostly(fc.record({ include_usage: mostly(fc.boolean()) }, { requiredKeys: [] })),
        max_tokens: mostly(fc.integer({ min: 1, max: 6 })),
        max_completion_tokens: value,
        temperature: mostly(unit),
        n: mostly(fc.constant(1)),
        response_format: mostly(fc.constant({ type: "text" })),
      },
      { requiredKeys: ["model", "messages"] },
    ),
    fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: extraKeys }),
  )
  .map(([body, extra]) => ({ ...extra, ...body }));

const id = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("conv-1", "conv-2", "fuzz.a:b_c-d") },
  fc.uuid().map(String),
  fc.constantFrom("conv-1", "a:b", ".", "..", "x".repeat(129), "x".repeat(300)),
  // Lone surrogates cannot be %-encoded: a UTF-8 round trip replaces them.
  weirdString.map((s) => encodeURIComponent(Buffer.from(s, "utf8").toString("utf8"))),
);
const query = fc.oneof(
  { weight: 4, arbitrary: fc.constant("") },
  fc.dictionary(fc.constantFrom("from", "limit", "greeting", "last_event_id", "x"), weirdString, { maxKeys: 3 }).map((q) => `?${new URLSearchParams(q)}`),
);
const bodyText = (structured: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 12, arbitrary: structured.map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 50 }) },
    { weight: 1, arbitrary: fc.constantFrom("", "{", '{"content": "x"', '{"__proto__": {"polluted": 1}, "content": "hi"}', "null", "[]", "{}".repeat(3)) },
  );
const headers = fc.record(
  {
    "content-type": fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom("application/json", "application/json; charset=utf-8") },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          "text/plain",
          "application/x-www-form-urlencoded",
          "application/json; charset=latin1",
          "multipart/form-data; boundary=x",
          "*/*",
        ),
      },
    ),
    authorization: fc.oneof({ weight: 8, arbitrary: fc.constant(`Bearer ${KEY}`) }, { weight: 1, arbitrary: printable.map((k) => `Bearer ${k}`) }),
    "x-conversation-id": fc.oneof(fc.constantFrom("conv-1", "fuzz-mem"), printable),
    "last-event-id": printable,
  },
  { requiredKeys: ["authorization", "content-type"] },
);

const request: fc.Arbitrary<FuzzRequest> = fc.oneof(
  fc.record({
    method: fc.constant("POST"),
    path: fc.tuple(id, query).map(([i, q]) => `/v1/conversations/${i}/messages${q}`),
    body: bodyText(messageBody),
    headers,
  }),
  fc.record({
    method: fc.constant("POST"),
    path: query.map((q) => `/v1/conversations${q}`),
    body: bodyText(fc.record({ greeting: mostly(fc.boolean()), system: mostly(fc.string({ maxLength: 10 })) }, { requiredKeys: [] })),
    headers,
  }),
  fc.record({ method: fc.constant("POST"), path: fc.constant("/v1/chat/completions"), body: bodyText(completionBody), headers }),
  fc.record({
    method: fc.constant("POST"),
    path: id.map((i) => `/v1/requests/${i}/cancel`),
    body: bodyText(fc.record({ reason: mostly(fc.string({ maxLength: 10 })) }, { requiredKeys: [] })),
    headers,
  }),
  fc.record({
    method: fc.constantFrom("GET", "DELETE", "HEAD", "PUT", "PATCH"),
    path: fc
      .tuple(fc.constantFrom("/v1/conversations/", "/v1/requests/", "/v1/models/", "/"), id, fc.constantFrom("", "/messages", "/events"), query)
      .map((p) => p.join("")),
    headers,
  }),
);

describe("gateway fuzz", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  const prefix = uniquePrefix("gw-fuzz");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    // Small limits so that the limits themselves are hit often; a short unknown-id wait so
    // that 300 lookups of random UUIDs take seconds, not minutes.
    gateway = await startGateway(common, {
      GATEWAY_API_KEYS: `fuzz:${KEY}`,
      GATEWAY_BODY_LIMIT_BYTES: "8192",
      GATEWAY_MAX_CONTENT_CHARS: "2000",
      UNKNOWN_REQUEST_WAIT_MS: "20",
      GATEWAY_APPLY_WAIT_MS: "2000",
    });
    worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "4", WORKER_SLOTS: "4" });
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it(`answers ${RUNS} generated requests without a 5xx or a crash, and queues only valid records`, async (t) => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        const init: RequestInit = { method: req.method, headers: req.headers, signal: AbortSignal.timeout(60_000) };
        if (req.body !== undefined && req.method !== "GET" && req.method !== "HEAD") init.body = req.body;
        const res = await fetch(gateway.baseUrl + req.path, init);
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        assert.ok(res.status < 500, `${req.method} ${req.path} ${req.body?.slice(0, 200)} → ${res.status} ${text.slice(0, 300)}`);
        if (res.status >= 400 && req.method !== "HEAD") {
          const error = (JSON.parse(text) as { error: { message?: string } }).error;
          assert.ok(error.message && error.message.length > 0, "every error says what is wrong");
          if (process.env.FUZZ_DEBUG && res.status === 400) console.error("400", req.method, req.path.slice(0, 60), error.message?.slice(0, 160));
        }
      }),
      { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), verbose: 1 },
    );
    const summary = statusSummary(statuses);
    t.diagnostic(`statuses: ${summary}`);
    assert.ok((statuses.get(202) ?? 0) + (statuses.get(201) ?? 0) + (statuses.get(200) ?? 0) > 0, `some requests were valid: ${summary}`);
    assert.ok(
      [400, 401, 404].every((s) => (statuses.get(s) ?? 0) > 0),
      `the errors were reached: ${summary}`,
    );

    assert.equal(gateway.proc.exitCode, null, "the gateway is still running");
    assert.equal((await fetch(`${gateway.baseUrl}/healthz`)).status, 200);
    assert.doesNotMatch(gateway.output(), /unhandled error/, "no error escaped to the catch-all handler");
    await assertNothingDeadLettered(kafka, prefix, "nothing was dead-lettered");
  });
});
