/**
 * The README's picture of a turn's time: `npx tsx bench/trace-picture.ts [--out docs/images/trace-takeover.svg]`.
 *
 * Runs the real thing on this machine: a local broker (or KAFKA_BROKERS), Jaeger
 * (.cache/bin/jaeger, scripts/deploy/jaeger.sh), a gateway and two workers on stories260K,
 * all exporting spans over OTLP. It makes one ordinary response, then continues the
 * conversation with a background response whose worker is SIGKILLed mid-reply, so that the
 * other worker takes it over while the client polls. It reads both traces back from Jaeger
 * and writes them as one SVG (bench/lib/trace-svg.ts), and the spans it drew as JSON beside
 * it (same name, .json), from which `--rerender` draws the SVG again without a run.
 * Everything it starts is stopped at its end, on a failure and on Ctrl-C.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import OpenAI from "openai";
import { parseResponseId } from "../gateway/openai/response-id.js";
import { startJaeger, type Jaeger } from "../testkit/jaeger.js";
import { useKafka, uniquePrefix, type TestKafka } from "../testkit/kafka.js";
import { killAll, REPO_ROOT, type Service } from "../testkit/services.js";
import { stackEnv, startGateway, startWorker } from "../testkit/stack.js";
import { renderTraceSvg, type TracePicture } from "./lib/trace-svg.js";

const KEY = "trace-picture-key";
const MODEL = "stories-260k";
const WORKERS = ["worker-a", "worker-b"] as const;
const POLL_MS = 1000;

const log = (line: string) => process.stderr.write(`[trace-picture ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

const running: { jaeger: Jaeger | null; kafka: TestKafka | null } = { jaeger: null, kafka: null };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string", default: "docs/images/trace-takeover.svg" },
      rerender: { type: "boolean", default: false },
    },
  });
  const svgFile = path.resolve(REPO_ROOT, values.out!);
  const jsonFile = svgFile.replace(/\.svg$/, "") + ".json";
  if (values.rerender) {
    const picture = JSON.parse(readFileSync(jsonFile, "utf8")) as TracePicture;
    writeFileSync(svgFile, renderTraceSvg(picture.spans, picture.options));
    log(`drew ${path.relative(REPO_ROOT, svgFile)} from ${path.relative(REPO_ROOT, jsonFile)}`);
    return;
  }

  const picture = await run();
  mkdirSync(path.dirname(svgFile), { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify(picture, null, 1)}\n`);
  writeFileSync(svgFile, renderTraceSvg(picture.spans, picture.options));
  log(`wrote ${path.relative(REPO_ROOT, svgFile)} and ${path.relative(REPO_ROOT, jsonFile)} (${picture.spans.length} spans)`);
}

/** A caller's trace context: a new trace id and the caller's own span. */
function callerContext() {
  const traceId = randomBytes(16).toString("hex");
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` };
}

async function poll<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function run(): Promise<TracePicture> {
  log("starting Jaeger and Kafka");
  const jaeger = (running.jaeger = await startJaeger());
  const kafka = (running.kafka = await useKafka());
  // A broker of its own has no other topics: the span names read `send chat.requests`.
  const prefix = process.env.KAFKA_BROKERS?.trim() ? uniquePrefix("trace-picture") : "";
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpEndpoint, OTEL_BSP_SCHEDULE_DELAY: "100" };
  const common = stackEnv(kafka, prefix);
  const services: Service[] = [];
  try {
    log("starting a gateway and two workers");
    const gateway = await startGateway({ ...common, ...otel, GATEWAY_API_KEYS: `demo:${KEY}`, MODEL_NAME: MODEL });
    services.push(gateway);
    const workers = new Map<string, Service>();
    const workerEnv = { ...otel, SESSION_TIMEOUT_MS: "6000", HEARTBEAT_INTERVAL_MS: "1000", DELTA_FLUSH_MS: "10" };
    for (const name of WORKERS) {
      const worker = await startWorker(common, workerEnv, name);
      services.push(worker);
      workers.set(name, worker);
    }
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });

    log("turn 1: an ordinary response");
    const first = callerContext();
    const opening = await client.responses.create(
      { model: MODEL, input: "Once upon a time there was a lighthouse keeper.", max_output_tokens: 48, temperature: 0 },
      { headers: { traceparent: first.traceparent } },
    );
    const firstSpans = await jaeger.waitForTrace(
      first.traceId,
      (s) => s.some((x) => x.name === "commit") && s.some((x) => x.name.startsWith("receive ")),
      30_000,
    );

    log("turn 2: a background continuation, its worker killed mid-reply");
    const second = callerContext();
    const long = await client.responses.create(
      { model: MODEL, previous_response_id: opening.id, input: "A long story, please.", max_output_tokens: 1500, temperature: 0, background: true },
      { headers: { traceparent: second.traceparent } },
    );
    const requestId = parseResponseId(long.id)!.requestId;
    const victim = await poll(
      async () => {
        const res = await fetch(`${gateway.baseUrl}/v1/requests/${requestId}`, { headers: { authorization: `Bearer ${KEY}` } });
        const status = (await res.json()) as { status?: string; reply?: string; worker_id?: string };
        return status.status === "running" && (status.reply?.length ?? 0) > 0 ? status.worker_id : undefined;
      },
      60_000,
      "the continuation streaming",
      20,
    );
    // Its finished phases (to the first token) are exported within the batch delay.
    await jaeger.waitForTrace(second.traceId, (s) => s.some((x) => x.name === "prompt evaluation" && x.instance === victim), 15_000);
    const killedAtUs = Date.now() * 1000;
    await workers.get(victim!)!.stop("SIGKILL");
    workers.delete(victim!);
    const survivor = [...workers.keys()][0]!;
    log(`killed ${victim}; ${survivor} takes over`);

    const done = await poll(
      async () => {
        const r = await client.responses.retrieve(long.id);
        return r.status === "queued" || r.status === "in_progress" ? undefined : r;
      },
      120_000,
      "the continuation ending on the survivor",
      POLL_MS,
    );
    log(`the continuation ended ${done.status}`);
    const secondSpans = await jaeger.waitForTrace(
      second.traceId,
      (s) =>
        s.some((x) => x.name === "commit" && x.instance === survivor) &&
        s.some((x) => x.name.startsWith("receive ")) &&
        s.some((x) => x.name === "poll response" && x.attributes["kafka_llm.response.status"] === done.status),
      30_000,
    );
    return {
      spans: [...firstSpans, ...secondSpans],
      options: {
        title: "Two turns of one conversation, as Jaeger has them: an ordinary one, then one whose worker was killed mid-reply",
        traces: [
          { traceId: first.traceId, title: "Turn 1: POST /v1/responses (stored), answered by one worker" },
          { traceId: second.traceId, title: `Turn 2: a background continuation; ${victim} is SIGKILLed mid-reply and ${survivor} takes it over` },
        ],
        orphanLabels: { [victim!]: `${victim}'s run (killed, never ended)` },
        markers: [{ traceId: second.traceId, atUs: killedAtUs, label: `${victim} SIGKILLed` }],
      },
    };
  } finally {
    for (const s of services) await s.stop();
  }
}

async function stopAll(): Promise<void> {
  killAll();
  await running.jaeger?.stop();
  await running.kafka?.stop();
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping every process it started`);
    void stopAll().finally(() => process.exit(130));
  });
}

main().then(
  async () => {
    await stopAll();
    process.exit(0);
  },
  async (err: unknown) => {
    if (interrupted) return; // the signal's handler stops everything and exits
    log(`FAILED: ${(err as Error).stack ?? String(err)}`);
    await stopAll();
    process.exit(1);
  },
);
