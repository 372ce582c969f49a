/**
 * The metrics the chart scales on and the dashboards it ships, against a real Prometheus
 * (Debian's package) scraping a real local run: a Kafka broker, the gateway and two
 * workers with stories260K, configured from the chart's own rendered ConfigMaps and
 * Secret (only addresses, ports, the model file and one CPU thread each are local). The
 * broker is secured (SASL/SCRAM, deny by default): the chart renders kafka.sasl with each
 * component's user and password, the install's topics and ACLs are made first as an
 * operator would (scripts/kafka/provision.ts), and the gateway and workers log in with
 * what the chart mounts (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE).
 * Series get the labels the chart's ServiceMonitor/PodMonitor give them in a cluster
 * (namespace, app_kubernetes_io_instance, app_kubernetes_io_component). Tracing is on, as
 * the chart sets it (tracing.enabled, its endpoint a real Jaeger), and Prometheus keeps
 * exemplars: the latency buckets' trace ids are read back and found in Jaeger.
 *
 * Under a burst of requests:
 * - the helm test's chat-turn script completes a turn with the release's API key;
 * - the HPA's metric query (the prometheus-adapter rule, expanded as the adapter expands
 *   it for the rendered HPA's selector) and KEDA's query return data, and the adapter rule
 *   is the chart's query (also for a model pool's HPA, whose selector adds its pool: checked
 *   first, without the run);
 * - every query of every dashboard panel, and every dashboard variable, returns data;
 * - the time-to-first-token and turn-duration buckets (ours and the GenAI ones) carry
 *   exemplars whose trace_id is a trace of the run in Jaeger.
 * A metric the services do not export fails the check, by name. What the HPA controller
 * does with the metric is k8s-autoscaling.test.ts's: the real controller decides there.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { loadKafkaConfig } from "../../contracts/config/shared.js";
import { topicNames } from "../../contracts/topics.js";
import { provisionInstall } from "../../scripts/kafka/provision.js";
import { ensureTestModel } from "../../scripts/models.js";
import { startJaeger, type Jaeger } from "../helpers/jaeger.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { freePort, REPO_ROOT, startService, type Service } from "../helpers/services.js";
import { envWithMountedSecrets, find, render, VARIANTS, type K8sObject, type PodSpec } from "./lib/chart.js";
import { saslValues } from "./lib/kafka-login.js";
import { metricNames, startPrometheus, type Prometheus } from "./lib/prometheus.js";

const NAMESPACE = "kafka-llm";
const RELEASE = "llm";
/** The label matchers prometheus-adapter builds for the HPA: its namespace, then its selector. */
const ADAPTER_MATCHERS = `namespace="${NAMESPACE}",app_kubernetes_io_instance="${RELEASE}"`;
const BURST = 500;
/** Grafana's $__rate_interval at a 1 s scrape interval is 4 s; a little more smooths it. */
const RATE_INTERVAL = "10s";

interface Sample {
  t: number;
  lag: number | null;
  backlog: number | null;
  keda: number | null;
}

const pod = (o: K8sObject): PodSpec => (o.kind === "Pod" ? (o.spec as PodSpec) : (o.spec as { template: { spec: PodSpec } }).template.spec);

const adapterRules = (
  parseYaml(readFileSync(path.join(REPO_ROOT, "deploy/prometheus-adapter/values.yaml"), "utf8")) as {
    rules: { external: Array<{ seriesQuery: string; name: { as: string }; metricsQuery: string }> };
  }
).rules.external;

/**
 * The adapter's query for an External metric name, expanded the way the adapter does it:
 * <<.LabelMatchers>> is the HPA's namespace, then its selector's labels (sorted by name, as
 * Kubernetes' label selectors keep them).
 */
function adapterQuery(metric: string, matchers = ADAPTER_MATCHERS): string {
  const rule = adapterRules.find((r) => r.name.as === metric);
  assert.ok(rule, `deploy/prometheus-adapter has a rule for ${metric}`);
  const series = /^([a-z_:][a-z0-9_:]*)\{/.exec(rule.seriesQuery)![1]!;
  return rule.metricsQuery.replaceAll("<<.Series>>", series).replaceAll("<<.LabelMatchers>>", matchers);
}

type ExternalMetric = { name: string; selector: { matchLabels: Record<string, string> } };
const hpaMetricOf = (hpa: K8sObject) => (hpa.spec as { metrics: Array<{ external: { metric: ExternalMetric } }> }).metrics[0]!.external.metric;
const hpaMetric = (objs: K8sObject[]) => hpaMetricOf(find(objs, "HorizontalPodAutoscaler")).name;
/** The label matchers prometheus-adapter builds for an HPA's metric: its namespace, then its selector. */
const matchersOf = (metric: ExternalMetric) =>
  [
    `namespace="${NAMESPACE}"`,
    ...Object.entries(metric.selector.matchLabels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}="${v}"`),
  ].join(",");
const kedaQueryOf = (so: K8sObject) => (so.spec as { triggers: Array<{ metadata: { query: string } }> }).triggers[0]!.metadata.query;

describe("the prometheus-adapter rules are the chart's queries (as KEDA runs them, with the adapter's constants)", () => {
  it("for the release's workers (pools: [])", () => {
    const lagObjects = render({ release: RELEASE, namespace: NAMESPACE, set: { "autoscaling.signal": "lag" } });
    const backlogObjects = render({ release: RELEASE, namespace: NAMESPACE });
    for (const [signal, objs] of [
      ["lag", lagObjects],
      ["backlogSeconds", backlogObjects],
    ] as const) {
      const metric = hpaMetricOf(find(objs, "HorizontalPodAutoscaler"));
      assert.equal(matchersOf(metric), ADAPTER_MATCHERS);
      const keda = render({
        release: RELEASE,
        namespace: NAMESPACE,
        valuesFiles: VARIANTS.keda,
        set: { "autoscaling.keda.trigger": "prometheus", "autoscaling.signal": signal, "worker.slots": 1, "autoscaling.backlog.minTurnSeconds": 1 },
      });
      assert.equal(adapterQuery(metric.name), kedaQueryOf(find(keda, "ScaledObject")), signal);
    }
  });

  it("for each model pool: its HPA's selector adds its pool, and the adapter's query is its ScaledObject's", () => {
    for (const signal of ["lag", "backlogSeconds"]) {
      const set = { "autoscaling.signal": signal, "worker.slots": 1, "autoscaling.backlog.minTurnSeconds": 1 };
      // Both pools take the release's signal and slots (the CI file gives small its own).
      const pools = [
        { name: "small", model: { name: "small-model" } },
        { name: "large", model: { name: "large-model" } },
      ];
      const hpa = render({ release: RELEASE, namespace: NAMESPACE, set: { ...set, pools } });
      const keda = render({
        release: RELEASE,
        namespace: NAMESPACE,
        valuesFiles: VARIANTS.keda,
        set: { ...set, pools, "autoscaling.keda.trigger": "prometheus" },
      });
      for (const pool of ["small", "large"]) {
        const metric = hpaMetricOf(find(hpa, "HorizontalPodAutoscaler", `-worker-${pool}`));
        assert.equal(matchersOf(metric), `${ADAPTER_MATCHERS},pool="${pool}"`);
        assert.equal(adapterQuery(metric.name, matchersOf(metric)), kedaQueryOf(find(keda, "ScaledObject", `-worker-${pool}`)), `${pool}: ${signal}`);
      }
    }
  });
});

describe("autoscaling signals and dashboards: a real Prometheus scraping a local run", { timeout: 360_000 }, () => {
  const secrets = mkdtempSync(path.join(os.tmpdir(), "metrics-secrets-"));
  /** The release the services run from: rendered once the broker's principals are known. */
  let objects: K8sObject[];
  // KEDA's Prometheus trigger (ci/keda-values.yaml has its Kafka trigger, which reads the broker).
  const kedaObjects = render({
    release: RELEASE,
    namespace: NAMESPACE,
    valuesFiles: VARIANTS.keda,
    set: { "autoscaling.keda.trigger": "prometheus", "autoscaling.signal": "backlogSeconds" },
  });
  let kafka: TestKafka;
  let jaeger: Jaeger;
  let gateway: Service;
  const workers: Service[] = [];
  let prom: Prometheus;
  let apiKeysFile: string;
  let started = 0;
  const samples: Sample[] = [];

  const lagObjects = render({ release: RELEASE, namespace: NAMESPACE, set: { "autoscaling.signal": "lag" } });
  const lagQuery = () => adapterQuery(hpaMetric(lagObjects));
  const backlogQuery = () => adapterQuery(hpaMetric(objects));
  const kedaQuery = () => (find(kedaObjects, "ScaledObject").spec as { triggers: Array<{ metadata: { query: string } }> }).triggers[0]!.metadata.query;

  async function value(expr: string): Promise<number | null> {
    const r = await prom.query(expr);
    return r.length > 0 && Number.isFinite(r[0]!.value) ? r[0]!.value : null;
  }

  before(async () => {
    kafka = await useKafka();
    jaeger = await startJaeger();
    // Each component logs in as its own principal, from the chart's Secret; both export
    // their spans where the chart's tracing values say.
    objects = render({
      release: RELEASE,
      namespace: NAMESPACE,
      set: { ...saslValues(kafka.credentials, ["gateway", "worker", "topics"]), "tracing.enabled": true, "tracing.otlpEndpoint": jaeger.otlpHttpEndpoint },
    });
    const prefix = uniquePrefix("metrics");
    const model = await ensureTestModel();
    // The services get the chart's settings; only what is local differs.
    const gw = find(objects, "Deployment", "-gateway");
    const wk = find(objects, "Deployment", "-worker");
    const local = {
      KAFKA_BROKERS: kafka.brokers,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_REPLICATION_FACTOR: "1",
    };
    const gatewayEnv = envWithMountedSecrets(objects, pod(gw), pod(gw).containers[0]!, path.join(secrets, "gateway"));
    const workerEnv = envWithMountedSecrets(objects, pod(wk), pod(wk).containers[0]!, path.join(secrets, "worker"));
    apiKeysFile = gatewayEnv.GATEWAY_API_KEYS_FILE!;
    for (const env of [gatewayEnv, workerEnv]) assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, jaeger.otlpHttpEndpoint, "tracing on, from the chart");
    // Not in a cluster: no downward API (the worker advertises the address it listens on).
    for (const name of ["POD_NAME", "POD_NAMESPACE", "POD_IP"]) {
      assert.match(workerEnv[name] ?? "", /^<from .*fieldRef/, `${name} comes from the downward API`);
      delete workerEnv[name];
    }
    workerEnv.LLAMA_GPU = "false"; // the chart's default is CUDA; this machine runs the worker on its CPU
    const groupId = `${prefix}${workerEnv.WORKER_GROUP_ID}`;
    // The chart names the gateways' group too: prefixed here like the workers' group.
    const gatewayGroupId = `${prefix}${gatewayEnv.GATEWAY_EVENTS_GROUP_ID}`;
    if (kafka.credentials) {
      for (const [component, env] of [
        ["gateway", gatewayEnv],
        ["worker", workerEnv],
      ] as const) {
        assert.equal(env.KAFKA_SASL_MECHANISM, "scram-sha-512", component);
        assert.equal(env.KAFKA_SASL_USERNAME, kafka.credentials.users[component].username, `${component}: its own principal`);
        assert.equal(readFileSync(env.KAFKA_SASL_PASSWORD_FILE!, "utf8"), kafka.credentials.users[component].password, `${component}: its password, mounted`);
      }
      // The install's ACLs and topics (with the chart's settings), as an operator makes them
      // before the services start: the services may not create topics.
      await provisionInstall({
        brokers: kafka.brokers,
        credentials: kafka.credentials,
        names: { topics: topicNames(prefix), workerGroup: groupId, gatewayGroup: gatewayGroupId },
        settings: loadKafkaConfig({ ...gatewayEnv, ...local }),
      });
    }
    const gatewayPort = await freePort();
    gateway = await startService({
      name: "gateway",
      entry: "gateway/main.ts",
      port: gatewayPort,
      readyPath: "/readyz",
      timeoutMs: 90_000,
      env: {
        ...gatewayEnv,
        ...local,
        WORKER_GROUP_ID: groupId,
        GATEWAY_EVENTS_GROUP_ID: gatewayGroupId,
        GATEWAY_HOST: "127.0.0.1",
        GATEWAY_PORT: String(gatewayPort),
        // Read the lag every second (the chart: every 5 s), so a short burst shows.
        LAG_REFRESH_MS: "1000",
      },
    });
    // Prometheus first, so it sees the workers start: their partition assignment and
    // memory restore are on the dashboards too.
    const workerPorts = [await freePort(), await freePort()];
    const labels = (component: string) => ({ namespace: NAMESPACE, app_kubernetes_io_instance: RELEASE, app_kubernetes_io_component: component });
    prom = await startPrometheus([
      { job: "kafka-llm-gateway", address: `127.0.0.1:${gatewayPort}`, labels: labels("gateway") },
      ...workerPorts.map((p) => ({ job: "kafka-llm-worker", address: `127.0.0.1:${p}`, labels: labels("worker") })),
    ]);
    started = Date.now() / 1000;
    for (const [i, port] of workerPorts.entries()) {
      const id = `worker-${i + 1}`;
      workers.push(
        await startService({
          name: id,
          entry: "worker/main.ts",
          port,
          readyPath: "/readyz",
          timeoutMs: 90_000,
          env: {
            ...workerEnv,
            ...local,
            WORKER_GROUP_ID: groupId,
            WORKER_ID: id,
            WORKER_HTTP_HOST: "127.0.0.1",
            WORKER_HTTP_PORT: String(port),
            MODEL: model,
            MODEL_DIR: path.join(secrets, "models"),
            // Each pod's own volume in a cluster (worker.stateStore): a directory each here.
            WORKER_STATE_DIR: path.join(secrets, "state", id),
            // Two cores: llama.cpp's spinning threads must not outnumber them.
            LLAMA_THREADS: "1",
            // Short replies: the burst must drain within the check's few minutes.
            DEFAULT_MAX_TOKENS: "64",
          },
        }),
      );
    }
  });

  after(async () => {
    await prom?.stop();
    await gateway?.stop();
    await Promise.all(workers.map((w) => w.stop()));
    await kafka?.stop();
    await jaeger?.stop();
    rmSync(secrets, { recursive: true, force: true });
  });

  it("the helm test's script runs one chat turn with the release's API key", () => {
    const testPod = find(objects, "Pod", "-test-chat-turn");
    const c = pod(testPod).containers[0]!;
    assert.deepEqual(c.args, ["dist/scripts/deploy/chat-turn.js"]);
    const env = envWithMountedSecrets(objects, pod(testPod), c, path.join(secrets, "test"));
    const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/deploy/chat-turn.ts"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, ...env, GATEWAY_URL: gateway.baseUrl, CHAT_TURN_TIMEOUT_MS: "90000" },
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const result = JSON.parse(r.stdout.trim()) as { result: string; reply_chars: number };
    assert.equal(result.result, "final");
    assert.ok(result.reply_chars > 0);
    assert.equal(readFileSync(env.GATEWAY_API_KEYS_FILE!, "utf8"), readFileSync(apiKeysFile, "utf8"), "the test pod mounts the gateway's keys");
  });

  it(`a burst of ${BURST} requests builds lag that the HPA's and KEDA's queries see, and it drains`, async () => {
    const key = readFileSync(apiKeysFile, "utf8").trim().split(":").slice(1).join(":");
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [lag, backlog, keda] = await Promise.all([value(lagQuery()), value(backlogQuery()), value(kedaQuery())]);
        samples.push({ t: Date.now() / 1000, lag, backlog, keda });
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    // Wait for a sample with the quiet state first.
    while (samples.length < 2) await new Promise((r) => setTimeout(r, 200));

    let next = 0;
    const post = async () => {
      for (let i = next++; i < BURST; i = next++) {
        const res = await fetch(`${gateway.baseUrl}/v1/conversations/burst-${i}/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
          body: JSON.stringify({ content: `Tell me story number ${i}.` }),
        });
        assert.equal(res.status, 202, await res.text());
      }
    };
    await Promise.all(Array.from({ length: 16 }, post));

    // Drained: the lag went up and is back to zero for three samples in a row.
    const deadline = Date.now() + 180_000;
    for (;;) {
      const last = samples.slice(-3);
      const peaked = samples.some((s) => (s.lag ?? 0) > 0);
      if (peaked && last.length === 3 && last.every((s) => s.lag === 0)) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    sampling = false;
    await sampler;

    const missing = samples.every((s) => s.lag === null) ? await missingMetrics(lagQuery()) : [];
    assert.deepEqual(missing, [], `the HPA's lag query has no data; metrics not exported: ${missing.join(", ")}`);
    const peak = Math.max(...samples.map((s) => s.lag ?? 0));
    const peakBacklog = Math.max(...samples.map((s) => s.backlog ?? 0));
    const peakKeda = Math.max(...samples.map((s) => s.keda ?? 0));
    console.log(
      `# burst: ${BURST} requests; peak lag ${peak}, peak backlog ${peakBacklog.toFixed(2)} s (HPA query), ` +
        `peak KEDA backlog ${peakKeda.toFixed(2)} s; ${samples.length} samples over ${(samples.at(-1)!.t - samples[0]!.t).toFixed(0)} s`,
    );
    assert.ok(peak > 0, "the lag query saw the burst");
    assert.ok(
      samples.some((s) => (s.backlog ?? 0) > 0),
      "the backlog query saw the burst",
    );
    assert.ok(
      samples.some((s) => (s.keda ?? 0) > 0),
      "KEDA's query saw the burst",
    );
    assert.equal(samples.at(-1)!.lag, 0, `the burst drained within 3 minutes (lag ${samples.at(-1)!.lag})`);
    assert.equal(samples.at(-1)!.backlog, 0);
  });

  it("the backlog query is lag × the recent mean turn time ÷ slots, from the services' own gauges", async () => {
    // At one instant, from the raw series (the drained state gives 0 = 0; use the peak's time).
    const peakSample = samples.reduce((a, b) => ((b.lag ?? 0) > (a.lag ?? 0) ? b : a));
    const at = peakSample.t;
    const m = `{${ADAPTER_MATCHERS}}`;
    const [lag, turn, slots, backlog] = await Promise.all([
      prom.query(`max(kafka_llm_consumer_group_total_lag${m})`, at),
      prom.query(`max(kafka_llm_recent_turn_duration_seconds${m})`, at),
      prom.query(`max(kafka_llm_worker_slots${m})`, at),
      prom.query(backlogQuery(), at),
    ]);
    assert.ok(lag[0] && turn[0] && slots[0] && backlog[0], "all four have data at the peak");
    const expected = (lag[0].value * Math.max(turn[0].value, 1)) / slots[0].value;
    assert.ok(Math.abs(backlog[0].value - expected) < 1e-9, `${backlog[0].value} vs ${expected}`);
    assert.equal(slots[0].value, Number((find(objects, "ConfigMap", "-worker").data as Record<string, string>).WORKER_SLOTS));
    console.log(
      `# at the peak: lag ${lag[0].value}, mean turn ${turn[0].value.toFixed(3)} s, slots ${slots[0].value}, backlog ${backlog[0].value.toFixed(2)} s`,
    );
  });

  it("latency buckets carry exemplars: the trace ids of turns, each a trace in Jaeger", async () => {
    const end = Date.now() / 1000;
    const m = `{${ADAPTER_MATCHERS}}`;
    for (const metric of [
      "kafka_llm_time_to_first_token_seconds_bucket",
      "kafka_llm_turn_duration_seconds_bucket",
      "gen_ai_server_time_to_first_token_seconds_bucket",
      "gen_ai_server_request_duration_seconds_bucket",
    ]) {
      const series = await prom.queryExemplars(`${metric}${m}`, started, end);
      const exemplars = series.flatMap((s) => s.exemplars);
      assert.ok(exemplars.length > 0, `${metric}: no exemplars (the worker serves OpenMetrics, Prometheus stores exemplars)`);
      for (const e of exemplars) assert.match(e.labels.trace_id ?? "", /^[0-9a-f]{32}$/, `${metric}: an exemplar's trace_id`);
      // The newest exemplar of the metric names a trace the worker exported: its run of the request.
      const newest = exemplars.reduce((a, b) => (b.timestamp > a.timestamp ? b : a));
      const spans = await jaeger.waitForTrace(newest.labels.trace_id!, (s) => s.some((x) => x.service === "kafka-llm-worker"), 30_000);
      assert.ok(spans.length > 0);
      console.log(`# ${metric}: ${exemplars.length} exemplars; trace ${newest.labels.trace_id} has ${spans.length} spans in Jaeger`);
    }
  });

  it("every dashboard panel's query returns data", async () => {
    // A scale-in, as the HPA makes one: the other worker restores the partitions it gains.
    // A steady group on the consumer protocol restores nothing, so without an event the
    // restore panels would have no rate to show.
    assert.equal(await workers[1]!.stop("SIGTERM"), 0, "the leaving worker drains and exits cleanly");
    await new Promise((r) => setTimeout(r, 12_000));
    const end = Date.now() / 1000;
    const failures: string[] = [];
    let count = 0;
    for (const file of dashboardFiles()) {
      const dash = JSON.parse(readFileSync(file, "utf8")) as Dashboard;
      for (const panel of dash.panels.filter((p) => p.type !== "row")) {
        for (const target of panel.targets ?? []) {
          count++;
          const expr = substitute(target.expr);
          const series = await prom.queryRange(expr, started, end, 1);
          const finite = series.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v))));
          if (!finite) {
            const missing = await missingMetrics(expr);
            failures.push(
              `${path.basename(file)} "${panel.title}" ${target.legendFormat}: no data${missing.length ? `; not exported: ${missing.join(", ")}` : ""}\n    ${expr}`,
            );
          }
        }
      }
    }
    console.log(`# ${count} panel queries checked`);
    assert.ok(count >= 20);
    assert.deepEqual(failures, []);
  });

  it("every dashboard variable resolves to this release", async () => {
    for (const file of dashboardFiles()) {
      const dash = JSON.parse(readFileSync(file, "utf8")) as Dashboard;
      const found: Record<string, string> = {};
      for (const v of dash.templating.list.filter((x) => x.type === "query")) {
        const m = /^label_values\((.+),\s*(\w+)\)$/.exec(v.definition ?? "");
        assert.ok(m, `${v.name}: label_values(...)`);
        const values = await prom.labelValues(m[2]!, substitute(m[1]!, found));
        found[v.name] = values[0] ?? "";
        assert.ok(values.length > 0, `${path.basename(file)} $${v.name} has values`);
      }
      assert.deepEqual(found, { namespace: NAMESPACE, release: RELEASE });
    }
  });

  async function missingMetrics(expr: string): Promise<string[]> {
    const missing: string[] = [];
    for (const name of metricNames(expr)) {
      if ((await prom.query(`count({__name__="${name}"})`)).length === 0) missing.push(name);
    }
    return missing;
  }
});

interface Dashboard {
  panels: Array<{ type: string; title: string; targets?: Array<{ expr: string; legendFormat: string }> }>;
  templating: { list: Array<{ name: string; type: string; definition?: string }> };
}

function dashboardFiles(): string[] {
  const dir = path.join(REPO_ROOT, "deploy/grafana");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => path.join(dir, f));
}

function substitute(expr: string, vars: Record<string, string> = { namespace: NAMESPACE, release: RELEASE }): string {
  return expr.replaceAll("$__rate_interval", RATE_INTERVAL).replace(/\$(\w+)/g, (whole, name: string) => vars[name] ?? whole);
}
