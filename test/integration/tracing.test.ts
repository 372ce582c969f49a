/**
 * One trace per request, from the HTTP call to the commit and back, in a real Jaeger
 * (built from Go modules, scripts/deploy/jaeger.sh) that the gateway and two workers export
 * to over OTLP/HTTP, configured by the standard OTEL_* variables only:
 * - a chat completion continues the caller's traceparent; its tree is asserted span by span
 *   (the produce, the worker's queue wait, run and phases, the GenAI span's attributes, the
 *   gateway's read of the events), and no span holds the prompt's or the reply's text;
 * - a streamed OpenAI call ends in the gateway's `write sse`;
 * - a background response whose worker is SIGKILLed mid-generation: the survivor's run
 *   joins the same trace, and so do the client's polls.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { apiClient, untilResponseEnds, untilStreaming, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { startJaeger, type Jaeger, type JaegerSpan } from "../helpers/jaeger.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { parseResponseId } from "../../gateway/openai/response-id.js";

const KEY = "tracing-key-42";
const MODEL = "stories-260k";
/** The worker names its model after the GGUF file. */
const WORKER_MODEL = "stories260K";
const PROMPT = "Tell me about the purple lighthouse keeper";

/** A caller's trace context: a new trace id and the caller's span id. */
function callerContext() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

const named = (spans: readonly JaegerSpan[], name: string) => spans.filter((s) => s.name === name);
function one(spans: readonly JaegerSpan[], name: string): JaegerSpan {
  const found = named(spans, name);
  assert.equal(found.length, 1, `one span "${name}" (found ${found.length}; spans: ${spans.map((s) => s.name).join(", ")})`);
  return found[0]!;
}
function childrenOf(spans: readonly JaegerSpan[], parent: JaegerSpan): string[] {
  return spans
    .filter((s) => s.parentSpanId === parent.spanId)
    .map((s) => s.name)
    .sort();
}

describe("traces across Kafka, in a real Jaeger", { timeout: 300_000 }, () => {
  let jaeger: Jaeger;
  let kafka: TestKafka;
  let gateway: Service;
  const workers = new Map<string, Service>();
  const prefix = uniquePrefix("tracing");

  before(async () => {
    jaeger = await startJaeger();
    kafka = await useKafka();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpEndpoint, OTEL_BSP_SCHEDULE_DELAY: "100" };
    const common = stackEnv(kafka, prefix);
    gateway = await startGateway({ ...common, ...otel, GATEWAY_API_KEYS: `a:${KEY}`, MODEL_NAME: MODEL });
    const env = { ...otel, SESSION_TIMEOUT_MS: "6000", HEARTBEAT_INTERVAL_MS: "1000", DELTA_FLUSH_MS: "10" };
    for (const name of ["worker-a", "worker-b"]) workers.set(name, await startWorker(common, env, name));
  });

  after(async () => {
    await gateway?.stop();
    for (const w of workers.values()) await w.stop();
    await kafka?.stop();
    await jaeger?.stop();
  });

  it("follows a chat completion from the caller's traceparent through Kafka and the worker's phases back to the gateway", async () => {
    const caller = callerContext();
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
    const completion = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: "user", content: PROMPT }], max_tokens: 12, temperature: 0 },
      { headers: { traceparent: caller.traceparent } },
    );
    const reply = completion.choices[0]!.message.content!;
    const spans = await jaeger.waitForTrace(caller.traceId, (s) => s.some((x) => x.name === "commit") && s.some((x) => x.name.startsWith("receive ")), 30_000);

    const call = one(spans, "POST /v1/chat/completions");
    assert.equal(call.parentSpanId, caller.spanId, "the call continues the caller's trace");
    assert.equal(call.service, "kafka-llm-gateway");
    assert.equal(call.kind, "server");
    assert.equal(call.attributes["http.route"], "/v1/chat/completions");
    assert.equal(call.attributes["http.response.status_code"], 200);
    assert.equal(call.attributes["kafka_llm.tenant"], "a");

    const send = one(spans, `send ${prefix}chat.requests`);
    assert.equal(send.parentSpanId, call.spanId);
    assert.equal(send.kind, "producer");
    assert.equal(send.attributes["messaging.system"], "kafka");

    // The worker's spans hang off the produce, through the record's traceparent header.
    const run = one(spans, `process ${prefix}chat.requests`);
    assert.equal(run.parentSpanId, send.spanId);
    assert.equal(run.kind, "consumer");
    assert.equal(run.service, "kafka-llm-worker");
    assert.equal(run.attributes["kafka_llm.outcome"], "completed");
    assert.equal(run.attributes["messaging.consumer.group.name"], `${prefix}workers`);
    assert.equal(one(spans, "queue wait").parentSpanId, send.spanId);
    const chat = one(spans, `chat ${WORKER_MODEL}`);
    assert.deepEqual(childrenOf(spans, run), ["commit", `chat ${WORKER_MODEL}`, "load conversation", "write events"].sort());
    assert.deepEqual(childrenOf(spans, chat), ["generate", "prompt evaluation", "slot wait"]);

    // The GenAI conventions on the model's span.
    assert.equal(chat.attributes["gen_ai.operation.name"], "chat");
    assert.equal(chat.attributes["gen_ai.request.model"], WORKER_MODEL);
    assert.equal(chat.attributes["gen_ai.conversation.id"], run.attributes["gen_ai.conversation.id"]);
    assert.equal(chat.attributes["gen_ai.usage.input_tokens"], completion.usage!.prompt_tokens);
    assert.equal(chat.attributes["gen_ai.usage.output_tokens"], completion.usage!.completion_tokens);
    assert.equal(typeof chat.attributes["gen_ai.server.time_to_first_token"], "number");
    assert.equal(chat.attributes["gen_ai.request.temperature"], 0);

    // Back at the gateway: its read of chat.events, linked to the run that wrote the final.
    const read = one(spans, `receive ${prefix}chat.events`);
    assert.equal(read.parentSpanId, call.spanId);
    assert.ok(
      read.links.some((l) => l.spanId === run.spanId),
      "the read links to the worker's run",
    );
    assert.ok(Number(read.attributes["kafka_llm.events"]) >= 2);

    // The phases are in order, inside the run.
    const at = (name: string) => one(spans, name);
    assert.ok(at("load conversation").endUs <= at("slot wait").startUs + 1);
    assert.ok(at("prompt evaluation").endUs <= at("generate").startUs + 1);
    assert.ok(at("generate").endUs <= at("commit").startUs + 1);
    assert.ok(run.startUs >= send.startUs);

    // Neither the prompt nor the reply is in any span unless an operator opts in.
    const text = JSON.stringify(spans);
    assert.ok(!text.includes("purple lighthouse"), "the prompt is not in the trace");
    if (reply.trim().length >= 8) assert.ok(!text.includes(reply.trim()), "the reply is not in the trace");
  });

  it("ends a streamed OpenAI call's trace with the gateway's SSE writes", async () => {
    const caller = callerContext();
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 16, stream: true },
      { headers: { traceparent: caller.traceparent } },
    );
    let chunks = 0;
    for await (const chunk of stream) if (chunk.choices[0]?.delta.content) chunks++;
    assert.ok(chunks > 0);
    const spans = await jaeger.waitForTrace(caller.traceId, (s) => s.some((x) => x.name === "write sse") && s.some((x) => x.name === "commit"), 30_000);
    const call = one(spans, "POST /v1/chat/completions");
    const sse = one(spans, "write sse");
    assert.equal(sse.parentSpanId, call.spanId);
    assert.ok(Number(sse.attributes["kafka_llm.sse.frames"]) >= chunks, "every chunk went through the traced writer");
    assert.equal(sse.attributes["kafka_llm.sse.openai"], true);
    assert.ok(sse.events.some((e) => e.name === "first frame"));
    assert.ok(one(spans, `chat ${WORKER_MODEL}`).attributes["gen_ai.usage.output_tokens"]);
  });

  it("puts a takeover's new run and a background response's polls in the request's trace", async () => {
    const caller = callerContext();
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
    const api = apiClient(gateway.baseUrl, KEY);
    const long = await client.responses.create(
      { model: MODEL, input: "A long story, please.", max_output_tokens: 1500, temperature: 0, background: true },
      { headers: { traceparent: caller.traceparent } },
    );
    const ref = parseResponseId(long.id)!;
    const running = await untilStreaming(api, ref.requestId);
    const victim = running.worker_id as string;
    // The victim's finished phases (to its first token) are exported within the batch delay.
    await jaeger.waitForTrace(caller.traceId, (s) => s.some((x) => x.name === "prompt evaluation" && x.instance === victim), 15_000);
    await workers.get(victim)!.stop("SIGKILL");
    workers.delete(victim);
    const survivor = [...workers.keys()][0]!;

    const done = await untilResponseEnds(() => client.responses.retrieve(long.id));
    assert.ok(done.status === "completed" || done.status === "incomplete", done.status);

    const spans = await jaeger.waitForTrace(
      caller.traceId,
      (s) =>
        s.some((x) => x.name === "commit" && x.instance === survivor) &&
        s.some((x) => x.name === "poll response" && x.attributes["kafka_llm.response.status"] === done.status),
      30_000,
    );
    const send = one(spans, `send ${prefix}chat.requests`);
    // Both runs of the one record: the victim's (its process span never ended, its finished
    // phases are there) and the survivor's, whole.
    const victims = spans.filter((s) => s.instance === victim);
    assert.ok(
      victims.some((s) => s.name === "prompt evaluation"),
      `the victim's phases are in the trace (${victims.map((s) => s.name).join(", ")})`,
    );
    assert.ok(!victims.some((s) => s.name === "commit"), "the victim never committed");
    const runs = named(spans, `process ${prefix}chat.requests`);
    const rerun = runs.find((s) => s.instance === survivor);
    assert.ok(rerun, "the survivor's run joined the trace");
    assert.equal(rerun.parentSpanId, send.spanId, "the new attempt hangs off the same produce");
    assert.equal(rerun.attributes["kafka_llm.outcome"], "completed");
    assert.ok(
      spans.some((s) => s.name === "queue wait" && s.instance === survivor),
      "the survivor's wait for the record",
    );

    // The client's polls: spans of this trace, linked to each poll's own call.
    const polls = named(spans, "poll response");
    assert.ok(polls.length >= 1);
    assert.ok(polls.every((p) => p.links.length === 1 && p.links[0]!.traceId !== caller.traceId));
  });
});
