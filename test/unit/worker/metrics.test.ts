/**
 * The worker's metrics as Prometheus reads them: OpenMetrics text with trace ids as
 * exemplars, per-tenant token counters bounded by METRICS_MAX_TENANTS, the GenAI server
 * histograms, and engine gauges read from a real slot pool and turn scheduler at scrape time.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { ConfigError } from "../../../contracts/config/env.js";
import { DEFAULT_METRICS_MAX_TENANTS, loadWorkerConfig } from "../../../contracts/config/worker.js";
import { createLogger } from "../../../platform/logger.js";
import { createWorkerMetrics, OTHER_TENANT, observeWithTrace, type GenerationUsage } from "../../../worker/metrics.js";
import { SlotPool } from "../../../worker/slot-pool.js";
import { TurnScheduler, type RunVerdict } from "../../../worker/turn-scheduler.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const usage = (over: Partial<GenerationUsage> = {}): GenerationUsage => ({
  promptTokens: 30,
  cachedPromptTokens: 10,
  completionTokens: 5,
  timeToFirstTokenMs: 200,
  generationMs: 600,
  ...over,
});

/** The samples of `name` in an exposition: labels and value, exemplar text kept apart. */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number; exemplar: string | null }> {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)(?: # (.*))?$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    out.push({ labels, value: Number(m[3]), exemplar: m[4] ?? null });
  }
  return out;
}

describe("worker metrics", () => {
  it("are served as OpenMetrics, which Prometheus needs for exemplars", async () => {
    const { registry } = createWorkerMetrics("w1");
    assert.equal(registry.contentType, Registry.OPENMETRICS_CONTENT_TYPE);
    const text = await registry.metrics();
    assert.ok(text.endsWith("# EOF\n"));
    // OpenMetrics names a counter's family without _total; its samples keep the name dashboards query.
    assert.match(text, /^# TYPE kafka_llm_prompt_tokens counter$/m);
    assert.match(text, /^kafka_llm_prompt_tokens_total\{worker_id="w1",pool="default"\} 0$/m);
  });

  it("observeWithTrace puts a sampled trace id on the bucket as an exemplar, and nothing else", async () => {
    const metrics = createWorkerMetrics("w1");
    observeWithTrace(metrics.timeToFirstToken, 0.3, TRACE);
    observeWithTrace(metrics.turnDuration, 2, undefined);
    observeWithTrace(metrics.turnDuration, 7, "00000000000000000000000000000000");
    observeWithTrace(metrics.turnPhase, 0.1, TRACE, { phase: "load" }); // no exemplars there: a plain observation
    const text = await metrics.registry.metrics();
    const ttft = samples(text, "kafka_llm_time_to_first_token_seconds_bucket");
    const withExemplar = ttft.filter((s) => s.exemplar !== null);
    assert.equal(withExemplar.length, 1);
    assert.equal(withExemplar[0]!.labels.le, "0.5", "the bucket the observation fell in");
    assert.match(withExemplar[0]!.exemplar!, new RegExp(`^\\{trace_id="${TRACE}"\\} 0\\.3 \\d+(\\.\\d+)?$`));
    assert.equal(samples(text, "kafka_llm_turn_duration_seconds_count")[0]!.value, 2, "both observed");
    assert.equal(samples(text, "kafka_llm_turn_phase_seconds_count")[0]!.value, 1);
    assert.ok(
      samples(text, "kafka_llm_turn_duration_seconds_bucket").every((s) => s.exemplar === null),
      "no trace, or the invalid all-zero id: no exemplar",
    );
  });

  it("the exemplar histograms still take a plain observe(value), which prom-client's would throw on", async () => {
    const metrics = createWorkerMetrics("w1");
    metrics.timeToFirstToken.observe(0.02);
    metrics.genAiRequestDuration.observe({ gen_ai_operation_name: "chat" }, 1);
    const text = await metrics.registry.metrics();
    assert.equal(samples(text, "kafka_llm_time_to_first_token_seconds_count")[0]!.value, 1);
    assert.equal(samples(text, "gen_ai_server_request_duration_seconds_count")[0]!.value, 1);
  });

  it("generationDone counts tokens in total and per tenant, and observes the GenAI histograms", async () => {
    const metrics = createWorkerMetrics("w1", { model: "gemma-3-270m-it-Q8_0" });
    metrics.generationDone("acme", usage(), TRACE);
    // n = 2 choices: tokens summed, the first choice's time to first token, each choice's time per token.
    metrics.generationDone("acme", [usage({ completionTokens: 11, generationMs: 1200 }), usage({ completionTokens: 1 })], undefined);
    const text = await metrics.registry.metrics();
    const tokens = (type: string, cached?: string) =>
      samples(text, "kafka_llm_tenant_tokens_total").find(
        (s) => s.labels.tenant === "acme" && s.labels.gen_ai_token_type === type && s.labels.cached === cached,
      )?.value;
    assert.equal(tokens("input", "false"), 20 * 3, "evaluated: prompt less cached");
    assert.equal(tokens("input", "true"), 10 * 3);
    assert.equal(tokens("output"), 5 + 11 + 1);
    assert.equal(samples(text, "kafka_llm_prompt_tokens_total")[0]!.value, 60);
    assert.equal(samples(text, "kafka_llm_generated_tokens_total")[0]!.value, 17);

    const genAi = { gen_ai_operation_name: "chat", gen_ai_provider_name: "kafka-llm", gen_ai_request_model: "gemma-3-270m-it-Q8_0" };
    const ttft = samples(text, "gen_ai_server_time_to_first_token_seconds_count");
    assert.deepEqual(ttft[0]!.labels, { ...genAi, worker_id: "w1", pool: "default" });
    assert.equal(ttft[0]!.value, 2, "one per generationDone");
    assert.equal(samples(text, "kafka_llm_time_to_first_token_seconds_count")[0]!.value, 2);
    assert.ok(samples(text, "gen_ai_server_time_to_first_token_seconds_bucket").some((s) => s.exemplar?.includes(TRACE)));
    // Per token after the first: (600 - 200) / 4 = 0.1 s and (1200 - 200) / 10 = 0.1 s; a 1-token choice has none.
    assert.equal(samples(text, "gen_ai_server_time_per_output_token_seconds_count")[0]!.value, 2);
    assert.ok(Math.abs(samples(text, "gen_ai_server_time_per_output_token_seconds_sum")[0]!.value - 0.2) < 1e-9);
  });

  it("requestDone: every request's duration; a chat turn's also as gen_ai, with error_type unless it completed", async () => {
    const metrics = createWorkerMetrics("w1");
    metrics.requestDone(1.5, TRACE, "completed");
    metrics.requestDone(0.5, undefined, "cancelled");
    metrics.requestDone(0.1, undefined); // an open, an append: not a chat operation
    const text = await metrics.registry.metrics();
    assert.equal(samples(text, "kafka_llm_turn_duration_seconds_count")[0]!.value, 3);
    const genAi = samples(text, "gen_ai_server_request_duration_seconds_count");
    assert.deepEqual(
      genAi.map((s) => [s.labels.error_type ?? null, s.value]),
      [
        [null, 1],
        ["cancelled", 1],
      ],
    );
    assert.equal(genAi[0]!.labels.gen_ai_request_model, "unknown", "no model named: unknown");
  });

  it(`METRICS_MAX_TENANTS caps the tenant label's values: tenants past it count as ${OTHER_TENANT}, and no token is lost`, async () => {
    const metrics = createWorkerMetrics("w1", { maxTenants: 3 });
    // A flood of tenants, each several times, interleaved; the first three keep their names.
    for (let round = 0; round < 3; round++) for (let t = 0; t < 500; t++) metrics.generationDone(`tenant-${t}`, usage(), undefined);
    const text = await metrics.registry.metrics();
    const series = samples(text, "kafka_llm_tenant_tokens_total");
    const tenants = new Set(series.map((s) => s.labels.tenant));
    assert.deepEqual([...tenants].sort(), [OTHER_TENANT, "tenant-0", "tenant-1", "tenant-2"]);
    assert.equal(series.length, 4 * 3, "three series (input evaluated, input cached, output) per label value");
    const output = (tenant: string) => series.find((s) => s.labels.tenant === tenant && s.labels.gen_ai_token_type === "output")!.value;
    assert.equal(output("tenant-1"), 3 * 5);
    assert.equal(output(OTHER_TENANT), 497 * 3 * 5);
    const all = series.filter((s) => s.labels.gen_ai_token_type === "output").reduce((sum, s) => sum + s.value, 0);
    assert.equal(all, samples(text, "kafka_llm_generated_tokens_total")[0]!.value, "the per-tenant counts add up to the total");

    const none = createWorkerMetrics("w1", { maxTenants: 0 });
    none.generationDone("acme", usage(), undefined);
    assert.deepEqual(new Set(samples(await none.registry.metrics(), "kafka_llm_tenant_tokens_total").map((s) => s.labels.tenant)), new Set([OTHER_TENANT]));
  });

  it("METRICS_MAX_TENANTS is parsed with the worker's configuration", () => {
    const env = { MODEL: "m.gguf", WORKER_HTTP_HOST: "127.0.0.1" };
    assert.equal(loadWorkerConfig(env).metrics.maxTenants, DEFAULT_METRICS_MAX_TENANTS);
    assert.equal(loadWorkerConfig({ ...env, METRICS_MAX_TENANTS: "7" }).metrics.maxTenants, 7);
    assert.throws(
      () => loadWorkerConfig({ ...env, METRICS_MAX_TENANTS: "-1" }),
      (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith("METRICS_MAX_TENANTS:")),
    );
  });

  it("engine gauges read the slot pool and the scheduler at scrape time", async () => {
    const metrics = createWorkerMetrics("w1");
    const gauges = async () => {
      const text = await metrics.registry.metrics();
      const one = (name: string, labels: Record<string, string> = {}) =>
        samples(text, name).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))!.value;
      return {
        busy: one("kafka_llm_worker_slots_busy"),
        free: one("kafka_llm_worker_slots_free"),
        kv: one("kafka_llm_kv_cache_tokens"),
        capacity: one("kafka_llm_kv_cache_capacity_tokens"),
        queued: one("kafka_llm_scheduler_waiting_turns", { stage: "queued" }),
        slot: one("kafka_llm_scheduler_waiting_turns", { stage: "slot" }),
      };
    };
    assert.deepEqual(await gauges(), { busy: 0, free: 0, kv: 0, capacity: 0, queued: 0, slot: 0 }, "before the engine exists");

    // Two slots whose sequences hold tokens; a scheduler of one turn at a time.
    const held = [120, 7];
    const generators = held.map((_, i) => ({
      generate: async () => assert.fail(),
      clearCache: async () => {},
      kvCache: () => ({ tokens: held[i]!, capacity: 2048 }),
    }));
    const slots = new SlotPool(generators, { clear: async () => {} });
    const running: Array<() => void> = [];
    const scheduler = new TurnScheduler({
      concurrency: 1,
      logger: createLogger("test", "silent"),
      pause: () => {},
      resume: () => {},
      run: (_record, revoke, _first, commit) =>
        new Promise<RunVerdict>((resolve) => {
          revoke.addEventListener("abort", () => resolve("done"));
          running.push(() => {
            commit.settle(commit.next());
            resolve("done");
          });
        }),
    });
    metrics.watchEngine({ slots, scheduler });
    for (let offset = 0; offset < 4; offset++)
      scheduler.offer({ topic: "t", partition: 0, offset: String(offset), key: Buffer.from(`a/c${offset}`), value: null });
    const a = await slots.acquire({ key: "a/1", tenant: "a" });
    const b = await slots.acquire({ key: "a/2", tenant: "a" });
    const waiter = slots.acquire({ key: "a/3", tenant: "a" });
    assert.deepEqual(await gauges(), { busy: 2, free: 0, kv: 127, capacity: 4096, queued: 3, slot: 1 });

    slots.release(a);
    await waiter.then((c) => slots.release(c));
    slots.release(b);
    held[0] = 0; // a slot cleared
    running.shift()!();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(await gauges(), { busy: 0, free: 2, kv: 7, capacity: 4096, queued: 2, slot: 0 }, "read live, not kept");
    await scheduler.close(0);
  });
});
