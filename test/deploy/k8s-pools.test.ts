/**
 * Two model pools, each scaled alone (issue 27, item 4). On a control plane with KEDA
 * (lib/keda.ts), the chart installs two pools, `fast` and `big`, each its own worker
 * Deployment and ScaledObject on its own request topic and consumer group, both at
 * minReplicas 0. The topics Job's code (scripts/deploy/create-topics.ts, run here with the
 * environment the chart renders for it) creates the pools' topics and declares them on
 * chat.models, where a real gateway learns them.
 *
 * - Nothing waits: KEDA scales both Deployments to zero.
 * - A burst for `fast`: KEDA wakes `fast` and its HPA raises it to maxReplicas, while `big`
 *   stays at zero the whole time (its lag, through the API server, stays 0).
 * - One request for `big`, at zero: its stream says it waits for a worker, and KEDA wakes
 *   `big`.
 * - Local workers of each pool (kwok's pods run no containers) answer every request; each
 *   start event names the pool its model is in.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { QueuedNotice } from "../../gateway/kafka/queue-watch.js";
import { apiClient, eventually, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { REPO_ROOT, type Service } from "../helpers/services.js";
import { parseSse } from "../helpers/sse.js";
import { envWithMountedSecrets, find, render, type PodSpec } from "./lib/chart.js";
import { startControlPlane, type ControlPlane } from "./lib/control-plane.js";
import { helmOk } from "./lib/helm-cluster.js";
import { parseQuantity } from "./lib/hpa.js";
import { startKeda } from "./lib/keda.js";
import { saslValues, setArgs } from "./lib/kafka-login.js";

const NAMESPACE = "kafka-llm-pools";
const RELEASE = "llm";
const KEY = "pools-k8s-key-0123456789";
const PARTITIONS = 2;
const LAG_TARGET = 4;
/** BURST ÷ LAG_TARGET = 2 workers: the pool's maxReplicas. */
const BURST = 8;
const POOLS = [
  { name: "fast", model: { name: "fast-model" }, autoscaling: { minReplicas: 0, maxReplicas: PARTITIONS } },
  { name: "big", model: { name: "big-model" }, autoscaling: { minReplicas: 0, maxReplicas: PARTITIONS } },
];
const deployment = (pool: string) => `${RELEASE}-kafka-llm-worker-${pool}`;

describe("two model pools on a control plane: each scales alone, from zero, on its own lag", { timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let kafka: TestKafka;
  let common: Record<string, string>;
  let gateway: Service;
  const workers: Service[] = [];
  const tmp = mkdtempSync(path.join(os.tmpdir(), "k8s-pools-"));
  const prefix = uniquePrefix("k8s-pools");
  const group = `${prefix}workers`;
  const abort = new AbortController();
  const samples: Array<{ t: number; fast: number; big: number }> = [];
  let sampling: Promise<void> | undefined;
  let stopSampling = false;
  let streams: Array<Promise<string>> = [];
  let bigStream: Promise<string> | undefined;

  const values = () => ({
    "kafka.topicPrefix": prefix,
    "kafka.groupId": group,
    "kafka.requestPartitions": PARTITIONS,
    "autoscaling.maxReplicas": PARTITIONS,
    "autoscaling.target.lag": LAG_TARGET,
    "autoscaling.keda.pollingInterval": 1,
    "autoscaling.keda.cooldownPeriod": 10,
    pools: POOLS,
  });

  before(async () => {
    cp = await startControlPlane({ hpaSyncPeriod: "2s" });
    kafka = await useKafka();
    assert.ok(kafka.credentials, "a secured broker: KEDA logs in as the autoscaler principal");
    common = stackEnv(kafka, prefix, PARTITIONS);
    // The gateway's start provisions the install's ACLs and the default topics (testkit).
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}`, LAG_REFRESH_MS: "1000", QUEUE_NOTICE_MS: "1000" });
    // The topics Job, as the chart renders it for these pools: their topics, and chat.models.
    const objects = render({
      valuesFiles: ["ci/keda-values.yaml"],
      set: { ...values(), ...saslValues(kafka.credentials, ["gateway", "worker", "topics", "autoscaler"]) },
    });
    const spec = (find(objects, "Job", "-topics-1").spec as { template: { spec: PodSpec } }).template.spec;
    const env = envWithMountedSecrets(objects, spec, spec.containers[0]!, path.join(tmp, "secrets"));
    const job = spawnSync(process.execPath, ["--import", "tsx", "scripts/deploy/create-topics.ts"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 90_000,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, KAFKA_BROKERS: kafka.brokers },
    });
    assert.equal(job.status, 0, job.stdout + job.stderr);
    await startKeda(cp, tmp);
  });

  after(async () => {
    stopSampling = true;
    abort.abort();
    await sampling;
    await Promise.all(workers.map((w) => w.stop()));
    await gateway?.stop();
    await cp?.stop();
    await kafka?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const replicas = (pool: string) => cp.getJson<{ spec: { replicas?: number } }>(["-n", NAMESPACE, "get", "deployment", deployment(pool)]).spec.replicas ?? 1;
  /** The lag KEDA's metrics server serves for a pool's ScaledObject, through the API server. */
  const lagOf = (pool: string): number | null => {
    const hpa = cp.kubectl(["-n", NAMESPACE, "get", "hpa", deployment(pool), "-o", "json"]);
    if (hpa.status !== 0) return null;
    const metric = (
      JSON.parse(hpa.stdout) as { spec: { metrics: Array<{ external: { metric: { name: string; selector: { matchLabels: Record<string, string> } } } }> } }
    ).spec.metrics[0]!.external.metric;
    const selector = Object.entries(metric.selector.matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    const r = cp.kubectl([
      "get",
      "--raw",
      `/apis/external.metrics.k8s.io/v1beta1/namespaces/${NAMESPACE}/${metric.name}?labelSelector=${encodeURIComponent(selector)}`,
    ]);
    if (r.status !== 0) return null;
    const items = (JSON.parse(r.stdout) as { items: Array<{ value: string }> }).items;
    return items.length > 0 ? parseQuantity(items[0]!.value) : null;
  };

  it("installs two pools, each its Deployment and ScaledObject on its own topic and group; KEDA scales both to zero, and the gateway lists both models", async () => {
    cp.kc(["create", "namespace", NAMESPACE]);
    const set = Object.entries(values()).flatMap(([k, v]) => (typeof v === "object" ? ["--set-json", `${k}=${JSON.stringify(v)}`] : ["--set", `${k}=${v}`]));
    await helmOk(cp, [
      "install",
      RELEASE,
      ".",
      "-n",
      NAMESPACE,
      "-f",
      "ci/keda-values.yaml",
      "--set",
      `kafka.brokers=${kafka.brokers.replaceAll(",", "\\,")}`,
      ...set,
      "--set",
      "topics.job.enabled=false",
      ...setArgs(saslValues(kafka.credentials!, ["gateway", "worker", "autoscaler"])),
      "--wait",
      "--timeout=5m",
    ]);
    for (const pool of ["fast", "big"]) {
      const so = cp.getJson<{ spec: { triggers: Array<{ metadata: Record<string, string> }> } }>(["-n", NAMESPACE, "get", "scaledobject", deployment(pool)]);
      assert.equal(so.spec.triggers[0]!.metadata.topic, `${prefix}chat.requests.pool.${pool}`);
      assert.equal(so.spec.triggers[0]!.metadata.consumerGroup, `${group}.pool.${pool}`);
      await cp.waitFor(`KEDA to scale ${pool} to 0`, () => (replicas(pool) === 0 ? true : undefined), 120_000);
    }
    const models = await eventually(
      async () => {
        const ids = ((await apiClient(gateway.baseUrl, KEY)("GET", "/v1/models")).body.data as Array<{ id: string }>).map((m) => m.id).sort();
        return ids.length === 2 ? ids : undefined;
      },
      30_000,
      "the gateway to learn both pools from chat.models",
    );
    assert.deepEqual(models, ["big-model", "fast-model"]);
    for (const pool of ["fast", "big"]) await cp.waitFor(`${pool}'s lag served through the API server`, () => (lagOf(pool) === 0 ? true : undefined), 90_000);
  });

  it(`a burst of ${BURST} for fast wakes fast and raises it to ${PARTITIONS}, while big stays at zero`, async () => {
    const api = apiClient(gateway.baseUrl, KEY);
    const start = Date.now();
    sampling = (async () => {
      while (!stopSampling) {
        try {
          samples.push({ t: (Date.now() - start) / 1000, fast: replicas("fast"), big: replicas("big") });
        } catch {
          // The API server busy: the next sample tries again.
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    const posted = [];
    for (let i = 0; i < BURST; i++) {
      const res = await api("POST", `/v1/conversations/fast-${i}/messages`, { content: `Story ${i}.`, model: "fast-model", max_tokens: 4 });
      assert.equal(res.status, 202, res.text);
      posted.push(res.body as { events_url: string });
    }
    streams = posted.map((p) =>
      fetch(`${gateway.baseUrl}${p.events_url}`, { headers: { authorization: `Bearer ${KEY}` }, signal: abort.signal }).then((r) => r.text()),
    );
    for (const s of streams) s.catch(() => {});
    await cp.waitFor(`fast raised to ${PARTITIONS}`, () => samples.find((s) => s.fast === PARTITIONS), 120_000);
    assert.equal(lagOf("fast"), BURST, "fast's lag is the burst");
    assert.equal(lagOf("big"), 0, "big's lag is its own: nothing");
    assert.ok(
      samples.every((s) => s.big === 0),
      `big stayed at zero throughout: ${JSON.stringify(samples.filter((s) => s.big !== 0))}`,
    );
  });

  it("one request for big, at zero: its stream says it waits, KEDA wakes big; each pool's workers answer their own requests", async () => {
    const res = await apiClient(gateway.baseUrl, KEY)("POST", "/v1/conversations/big-0/messages", { content: "Hello.", model: "big-model", max_tokens: 4 });
    assert.equal(res.status, 202, res.text);
    bigStream = fetch(`${gateway.baseUrl}${(res.body as { events_url: string }).events_url}`, {
      headers: { authorization: `Bearer ${KEY}` },
      signal: abort.signal,
    }).then((r) => r.text());
    bigStream.catch(() => {});
    await cp.waitFor("KEDA to wake big (0 → 1)", () => samples.find((s) => s.big >= 1), 120_000);

    for (const pool of ["fast", "big"])
      workers.push(await startWorker(common, { WORKER_POOL: pool, MODEL_NAME: `${pool}-model`, WORKER_SLOTS: "4", DEFAULT_MAX_TOKENS: "4" }, `worker-${pool}`));
    const big = parseSse(await bigStream);
    const notices = big.filter((m) => m.event === "queued").map((m) => JSON.parse(m.data) as QueuedNotice);
    assert.ok(notices.length > 0 && notices[0]!.worker_assigned === false, "big's stream said no worker had the request yet");
    assert.equal(big.at(-1)?.event, "final");
    assert.equal((JSON.parse(big.find((m) => m.event === "start")!.data) as { pool: string }).pool, "big");
    for (const text of await Promise.all(streams)) {
      const events = parseSse(text);
      assert.equal(events.at(-1)?.event, "final");
      assert.equal((JSON.parse(events.find((m) => m.event === "start")!.data) as { pool: string }).pool, "fast");
    }
  });
});
