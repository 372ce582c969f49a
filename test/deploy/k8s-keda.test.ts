/**
 * KEDA's operator decides scale from zero. On a control plane (lib/control-plane.ts),
 * the chart with ci/keda-values.yaml (minReplicas 0) renders a ScaledObject whose
 * Prometheus trigger points at a real Prometheus scraping a local broker and gateway
 * (no worker). KEDA's operator (built by scripts/deploy/k8s/build.sh) scales the worker Deployment to 0 while nothing waits; the
 * first waiting request makes it activate the Deployment (0 → 1) while the request's event
 * stream says it waits for a worker; a worker started then answers it, and after the
 * cooldown KEDA scales back to 0.
 *
 * KEDA's metrics server (1 → N through the HPA KEDA creates) is not run here: the HPA
 * controller's side is k8s-autoscaling.test.ts's.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { QueuedNotice } from "../../gateway/kafka/queue-watch.js";
import { apiClient, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { freePort, type Service } from "../helpers/services.js";
import { parseSse } from "../helpers/sse.js";
import { bin, crdFiles, makeServingCert, startControlPlane, type ControlPlane } from "./lib/control-plane.js";
import { helmOk } from "./lib/helm-cluster.js";
import { startPrometheus, type Prometheus } from "./lib/prometheus.js";

const NAMESPACE = "kafka-llm";
const RELEASE = "llm";
const KEY = "keda-key-0123456789";
const COOLDOWN_S = 10;

describe("KEDA scales the workers from zero on the waiting requests", { timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let kafka: TestKafka;
  let common: Record<string, string>;
  let gateway: Service;
  let worker: Service | undefined;
  let prom: Prometheus;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "k8s-keda-"));
  const t0 = Date.now();

  before(async () => {
    cp = await startControlPlane({ hpaSyncPeriod: "3s" });
    const keda = cp.parts.keda;
    if (!keda) throw new Error("KEDA is not built: run bash scripts/deploy/k8s/build.sh (without KAFKA_LLM_SKIP_KEDA=1)");
    kafka = await useKafka();
    common = stackEnv(kafka.brokers, uniquePrefix("k8s-keda"), 2);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}`, LAG_REFRESH_MS: "1000", QUEUE_NOTICE_MS: "1000" });
    const labels = { namespace: NAMESPACE, app_kubernetes_io_instance: RELEASE, app_kubernetes_io_component: "gateway" };
    prom = await startPrometheus([{ job: "kafka-llm-gateway", address: new URL(gateway.baseUrl).host, labels }]);

    // KEDA's CRDs, and the Prometheus Operator's for the PodMonitors ci/keda-values.yaml asks for.
    for (const f of [...crdFiles(cp.parts["keda-crds"]), ...crdFiles(cp.parts["prometheus-operator-crds"])]) cp.kc(["apply", "--server-side", "-f", f]);
    cp.kc(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
    cp.kc(["create", "namespace", "keda"]);
    // The operator's gRPC metrics service wants a certificate (its metrics server would
    // be the client); from the control plane's CA.
    const certs = path.join(tmp, "certs");
    mkdirSync(certs);
    makeServingCert(cp, certs);
    cp.startExtra(
      "keda-operator",
      bin(keda, "keda-operator"),
      [
        "--leader-elect=false",
        `--metrics-bind-address=127.0.0.1:${await freePort()}`,
        `--health-probe-bind-address=127.0.0.1:${await freePort()}`,
        `--metrics-service-bind-address=127.0.0.1:${await freePort()}`,
        `--cert-dir=${certs}`,
        "--enable-cert-rotation=false",
        "--enable-webhook-patching=false",
        "--enable-apiservice-patching=false",
        "--zap-log-level=info",
      ],
      { KUBECONFIG: cp.kubeconfig, WATCH_NAMESPACE: "", POD_NAMESPACE: "keda", KEDA_CLUSTER_OBJECT_NAMESPACE: "keda" },
    );
  });

  after(async () => {
    await cp?.stop();
    await prom?.stop();
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
    rmSync(tmp, { recursive: true, force: true });
    console.log(`# KEDA on a real control plane: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  });

  const replicas = () => cp.getJson<{ spec: { replicas?: number } }>(["-n", NAMESPACE, "get", "deployment", `${RELEASE}-kafka-llm-worker`]).spec.replicas ?? 1;

  it("with nothing waiting, KEDA scales the chart's worker Deployment to zero", async () => {
    cp.kc(["create", "namespace", NAMESPACE]);
    await helmOk(cp, [
      "install",
      RELEASE,
      ".",
      "-n",
      NAMESPACE,
      "-f",
      "ci/keda-values.yaml",
      "--set",
      `autoscaling.keda.prometheusAddress=${prom.url}`,
      "--set",
      "autoscaling.keda.pollingInterval=2",
      "--set",
      `autoscaling.keda.cooldownPeriod=${COOLDOWN_S}`,
      "--set",
      "topics.job.enabled=false",
      "--wait",
      "--timeout=5m",
    ]);
    await cp.waitFor("KEDA to scale the workers to 0", () => replicas() === 0, 120_000);
    const so = cp.getJson<{ status: { conditions?: Array<{ type: string; status: string }> } }>([
      "-n",
      NAMESPACE,
      "get",
      "scaledobject",
      `${RELEASE}-kafka-llm-worker`,
    ]);
    assert.ok(
      so.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      "the ScaledObject is Ready (its trigger reads Prometheus)",
    );
  });

  it("the first waiting request activates the Deployment, its stream says it waits, and a worker then answers it", async (t) => {
    const api = apiClient(gateway.baseUrl, KEY);
    const posted = await api("POST", "/v1/conversations/from-zero/messages", { content: "Hello!", max_tokens: 8 });
    assert.equal(posted.status, 202, posted.text);
    const started = Date.now();
    const abort = new AbortController();
    const stream = fetch(`${gateway.baseUrl}${posted.body.events_url}`, { headers: { authorization: `Bearer ${KEY}` }, signal: abort.signal }).then((r) =>
      r.text(),
    );
    stream.catch(() => {}); // awaited below; aborted if the test fails before
    t.after(() => abort.abort());
    await cp.waitFor("KEDA to activate the workers (0 → 1)", () => replicas() >= 1, 120_000);
    const activatedS = (Date.now() - started) / 1000;
    // The pod KEDA asked for is kwok's; the worker that does the work is a local process.
    await new Promise((r) => setTimeout(r, 1500));
    worker = await startWorker(common);
    const messages = parseSse(await stream);
    const types = messages.map((m) => m.event);
    console.log(`# scale from zero: KEDA activated the Deployment ${activatedS.toFixed(1)} s after the request; events: ${[...new Set(types)].join(", ")}`);
    const notices = messages.filter((m) => m.event === "queued").map((m) => JSON.parse(m.data) as QueuedNotice);
    assert.ok(notices.length > 0 && notices[0]!.worker_assigned === false, "the stream said no worker had the request");
    assert.equal(types.at(-1), "final", "answered once a worker ran");
  });

  it(`after the drain and the ${COOLDOWN_S} s cooldown, KEDA scales back to zero`, async () => {
    await worker?.stop();
    worker = undefined;
    await cp.waitFor("KEDA to scale the workers back to 0", () => replicas() === 0, 120_000);
  });
});
