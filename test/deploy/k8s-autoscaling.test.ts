/**
 * The real HPA controller decides. A control plane (lib/control-plane.ts) runs the chart's
 * HPA; prometheus-adapter, registered as the external metrics APIService with the rules
 * of deploy/prometheus-adapter/values.yaml, reads a real Prometheus scraping a local run
 * (broker, gateway, one worker on stories260K) with the labels the chart's monitors give.
 * Under a burst the HPA's metric, read through the API server, rises; kube-controller-
 * manager's HPA raises the worker Deployment's replicas, and once the burst has drained
 * and the (shortened) stabilization window passed, lowers them again, removing the pods
 * with the lowest deletion cost first.
 *
 * The Deployment's pods are kwok's (no containers): the local worker does the work, the
 * HPA's decisions move the Deployment. Nothing is sent to a pod IP.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { ensureTestModel } from "../../scripts/models.js";
import { apiClient, loggedIn, stackEnv, startGateway } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { freePort, REPO_ROOT, startService, type Service } from "../helpers/services.js";
import { bin, registerExternalMetrics, startControlPlane, type ControlPlane } from "./lib/control-plane.js";
import { helmOk, pods } from "./lib/helm-cluster.js";
import { POD_DELETION_COST_ANNOTATION } from "../../worker/pod-deletion-cost.js";
import { startPrometheus, type Prometheus } from "./lib/prometheus.js";

const NAMESPACE = "kafka-llm";
const RELEASE = "llm";
const KEY = "hpa-key-0123456789";
const BURST = 240;
/** The chart's scale-down window is 300 s; the test shortens it (the controller still decides). */
const DOWN_WINDOW_S = 20;
const WORKERS = "app.kubernetes.io/component=worker";

interface HpaStatus {
  desiredReplicas: number;
  currentReplicas: number;
  currentMetrics?: Array<{ external?: { current: { averageValue?: string; value?: string } } }>;
  conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
}

describe("the HPA controller scales the workers on the lag, through prometheus-adapter", { timeout: 900_000 }, () => {
  let cp: ControlPlane;
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let prom: Prometheus;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "k8s-hpa-"));
  const t0 = Date.now();
  const timeline: string[] = [];

  before(async () => {
    cp = await startControlPlane({ hpaSyncPeriod: "3s" });
    console.log(`# control plane up in ${cp.startSeconds.toFixed(1)} s`);

    kafka = await useKafka();
    const common = stackEnv(kafka, uniquePrefix("k8s-hpa"), 6);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}`, LAG_REFRESH_MS: "1000" });
    const workerPort = await freePort();
    const labels = (component: string) => ({ namespace: NAMESPACE, app_kubernetes_io_instance: RELEASE, app_kubernetes_io_component: component });
    prom = await startPrometheus([
      { job: "kafka-llm-gateway", address: new URL(gateway.baseUrl).host, labels: labels("gateway") },
      { job: "kafka-llm-worker", address: `127.0.0.1:${workerPort}`, labels: labels("worker") },
    ]);
    // On the port Prometheus scrapes (fixed before it started, so it sees the worker start),
    // logged in as the workers' principal (the gateway, as the gateway's: its lag exporter
    // describes the workers' group with it).
    worker = await startService({
      name: "worker",
      entry: "worker/main.ts",
      port: workerPort,
      readyPath: "/readyz",
      timeoutMs: 120_000,
      env: await loggedIn(
        {
          ...common,
          WORKER_GROUP_ID: `${common.KAFKA_TOPIC_PREFIX}workers`,
          WORKER_ID: "worker",
          WORKER_HTTP_HOST: "127.0.0.1",
          WORKER_HTTP_PORT: String(workerPort),
          MODEL: await ensureTestModel(),
          LLAMA_THREADS: "1",
          WORKER_SLOTS: "4",
          DEFAULT_MAX_TOKENS: "48",
        },
        "worker",
      ),
    });

    // prometheus-adapter with the project's rules, as the prometheus-adapter chart turns
    // its values' rules.external into the adapter's externalRules.
    const values = parseYaml(readFileSync(path.join(REPO_ROOT, "deploy/prometheus-adapter/values.yaml"), "utf8")) as { rules: { external: unknown[] } };
    const config = path.join(tmp, "adapter.yaml");
    writeFileSync(config, toYaml({ rules: [], externalRules: values.rules.external }));
    const adapterPort = await freePort();
    cp.startExtra("prometheus-adapter", bin(cp.parts["prometheus-adapter"], "prometheus-adapter"), [
      `--prometheus-url=${prom.url}`,
      `--config=${config}`,
      "--metrics-relist-interval=2s",
      `--lister-kubeconfig=${cp.kubeconfig}`,
      `--authentication-kubeconfig=${cp.kubeconfig}`,
      `--authorization-kubeconfig=${cp.kubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${adapterPort}`,
      `--cert-dir=${path.join(tmp, "adapter-certs")}`,
      "--v=1",
    ]);
    cp.kc(["create", "namespace", "monitoring"]);
    await registerExternalMetrics(cp, { name: "prometheus-adapter", namespace: "monitoring", port: adapterPort }, "the external metrics APIService Available");
  });

  after(async () => {
    await cp?.stop();
    await prom?.stop();
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
    rmSync(tmp, { recursive: true, force: true });
    console.log(`# HPA on a real control plane: ${((Date.now() - t0) / 1000).toFixed(0)} s; ${timeline.join("; ")}`);
  });

  const metricPath = `/apis/external.metrics.k8s.io/v1beta1/namespaces/${NAMESPACE}/kafka_llm_request_lag?labelSelector=app_kubernetes_io_instance%3D${RELEASE}`;
  const metric = () => {
    const r = cp.kubectl(["get", "--raw", metricPath]);
    if (r.status !== 0) return null;
    const items = (JSON.parse(r.stdout) as { items: Array<{ value: string }> }).items;
    return items.length > 0 ? Number(items[0]!.value) : null;
  };
  const hpa = () => cp.getJson<{ status: HpaStatus }>(["-n", NAMESPACE, "get", "hpa", `${RELEASE}-kafka-llm-worker`]).status;
  const replicas = () => cp.getJson<{ spec: { replicas: number } }>(["-n", NAMESPACE, "get", "deployment", `${RELEASE}-kafka-llm-worker`]).spec.replicas;

  it("the chart's HPA gets the lag from the API server (prometheus-adapter over a real Prometheus)", async () => {
    cp.kc(["create", "namespace", NAMESPACE]);
    await helmOk(cp, [
      "install",
      RELEASE,
      ".",
      "-n",
      NAMESPACE,
      "--set",
      "autoscaling.signal=lag",
      "--set",
      "topics.job.enabled=false",
      "--set-json",
      `autoscaling.behavior.scaleDown=${JSON.stringify({ stabilizationWindowSeconds: DOWN_WINDOW_S, selectPolicy: "Max", policies: [{ type: "Percent", value: 100, periodSeconds: 15 }] })}`,
      "--wait",
      "--timeout=5m",
    ]);
    const value = await cp.waitFor("the adapter to serve kafka_llm_request_lag", () => (metric() === 0 ? 0 : undefined), 120_000);
    assert.equal(value, 0, "nothing waits yet");
    const status = await cp.waitFor(
      "the HPA to read its metric",
      () => {
        const s = hpa();
        return s.conditions?.some((c) => c.type === "ScalingActive" && c.status === "True") ? s : undefined;
      },
      120_000,
    );
    assert.equal(status.desiredReplicas, 1, "an idle queue: minReplicas");
  });

  it(`under a burst of ${BURST} requests the controller raises the workers, and lowers them after the window`, async () => {
    const api = apiClient(gateway.baseUrl, KEY);
    const samples: Array<{ t: number; lag: number | null; desired: number; replicas: number }> = [];
    let sampling = true;
    const start = Date.now();
    const sampler = (async () => {
      while (sampling) {
        const s = hpa();
        samples.push({ t: (Date.now() - start) / 1000, lag: metric(), desired: s.desiredReplicas, replicas: replicas() });
        const last = samples.at(-1)!;
        const prev = samples.at(-2);
        if (!prev || prev.replicas !== last.replicas) timeline.push(`t=${last.t.toFixed(0)}s lag=${last.lag} → ${last.replicas} workers`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < BURST; i = next++) {
          const res = await api("POST", `/v1/conversations/hpa-${i}/messages`, { content: `Story ${i}.`, max_tokens: 48 });
          assert.equal(res.status, 202, res.text);
        }
      }),
    );
    try {
      const peak = await cp.waitFor(
        "the HPA to scale the workers up",
        () => {
          const top = Math.max(...samples.map((s) => s.replicas));
          return top > 1 ? top : undefined;
        },
        120_000,
      );
      assert.ok(peak > 1);
      // Deletion costs as the workers set them: one busy, the rest idle. When the HPA
      // scales down, the ReplicaSet must keep the busy one.
      const up = await cp.waitFor("the new worker pods", () => {
        const p = pods(cp, NAMESPACE, WORKERS);
        return p.length > 1 ? p : undefined;
      });
      const busy = up.at(-1)!.name;
      for (const p of up) cp.kc(["-n", NAMESPACE, "annotate", "pod", p.name, `${POD_DELETION_COST_ANNOTATION}=${p.name === busy ? 3 : 0}`, "--overwrite"]);
      await cp.waitFor("the burst to drain", () => samples.at(-1)?.lag === 0 && samples.some((s) => (s.lag ?? 0) > 0), 300_000);
      const drainedAt = samples.at(-1)!.t;
      const down = await cp.waitFor("the HPA to scale the workers back down", () => (samples.at(-1)!.replicas === 1 ? samples.at(-1)! : undefined), 180_000);
      const left = await cp.waitFor("the removed pods gone", () => {
        const p = pods(cp, NAMESPACE, WORKERS);
        return p.length === 1 ? p : undefined;
      });
      assert.equal(left[0]!.name, busy, "the scale-down removed the idle workers (lowest deletion cost) and kept the busy one");
      const peakLag = Math.max(...samples.map((s) => s.lag ?? 0));
      const peakReplicas = Math.max(...samples.map((s) => s.replicas));
      console.log(
        `# burst: peak lag ${peakLag} through the API server, peak ${peakReplicas} workers, drained at ${drainedAt.toFixed(0)} s, back to 1 at ${down.t.toFixed(0)} s`,
      );
      assert.ok(peakLag > 8, "the metric the HPA reads saw the burst");
      assert.ok(
        samples.every((s) => s.replicas >= 1 && s.replicas <= 6),
        "within the chart's minReplicas..maxReplicas",
      );
      // The window runs from the last recommendation above 1 (lag above the target of 8),
      // give or take the few seconds between a sample and the controller's own read.
      const lastHigh = samples.filter((s) => (s.lag ?? 0) > 8).at(-1)!.t;
      assert.ok(down.t - lastHigh >= DOWN_WINDOW_S - 5, `not before the stabilization window (${(down.t - lastHigh).toFixed(0)} s after the last high lag)`);
    } finally {
      sampling = false;
      await sampler;
    }
  });
});
