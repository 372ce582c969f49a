/**
 * KEDA decides, from zero and back. On a control plane (lib/control-plane.ts), KEDA's
 * operator and its metrics server (built by scripts/deploy/k8s/build.sh; the metrics
 * server registered as the external.metrics.k8s.io APIService) run the ScaledObject the
 * chart renders with ci/keda-values.yaml: KEDA's Apache Kafka scaler reading the workers'
 * consumer-group lag on chat.requests from the local real broker, secured as production
 * should be (SASL/SCRAM, deny by default): the chart's TriggerAuthentication gives the
 * scaler the autoscaler principal's login (sasl scram_sha512, its username from the chart's
 * ConfigMap, its password from the chart's Secret), and that principal holds only its ACLs
 * (Describe on chat.requests and on the workers' group).
 *
 * - Nothing waits: KEDA scales the worker Deployment to 0, and its metrics server serves
 *   the group's lag (0) through the API server.
 * - A burst of requests through a real gateway, nothing consuming: the lag KEDA reads is
 *   the burst (the group has never committed: offsetResetPolicy earliest counts every
 *   retained record), KEDA activates the Deployment (0 → 1) and the HPA KEDA made,
 *   driven by kube-controller-manager on the metric from KEDA's metrics server, raises it
 *   to maxReplicas (1 → N); meanwhile the first request's stream says it waits for a worker.
 * - A real worker of the group (KIP-848 consumer protocol) answers and commits: the lag
 *   KEDA reads falls to 0, and after the cooldown KEDA scales the workers back to 0.
 *
 * The Deployment's pods are kwok's (no containers): the local worker does the work, the
 * controllers' decisions move the Deployment. k8s-autoscaling.test.ts registers
 * prometheus-adapter for the same APIService on a control plane of its own; the files run
 * one after the other (scripts/deploy/checks.sh), each stopping its own.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { QueuedNotice } from "../../gateway/kafka/queue-watch.js";
import { topicNames } from "../../contracts/topics.js";
import { apiClient, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { GroupDescriber } from "../../platform/kafka/group-describer.js";
import { createLogger } from "../../platform/logger.js";
import { kafkaConfigFor, useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { parseSse } from "../helpers/sse.js";
import { startControlPlane, type ControlPlane } from "./lib/control-plane.js";
import { startKeda } from "./lib/keda.js";
import { helmOk } from "./lib/helm-cluster.js";
import { parseQuantity } from "./lib/hpa.js";
import { aclsReaching, saslValues, setArgs } from "./lib/kafka-login.js";

const NAMESPACE = "kafka-llm";
const RELEASE = "llm";
const WORKER = `${RELEASE}-kafka-llm-worker`;
const KEY = "keda-key-0123456789";
const PARTITIONS = 4;
/** lagThreshold: waiting requests per worker. */
const LAG_TARGET = 5;
/** BURST ÷ LAG_TARGET = PARTITIONS workers: maxReplicas, within the scaler's one-per-partition cap. */
const BURST = 20;
const COOLDOWN_S = 10;
/** The chart's scale-down window is 300 s; the test's values shorten it (the controller still decides). */
const DOWN_WINDOW_S = 5;

/** The group's type as the broker describes it (ConsumerGroupDescribe / DescribeGroups, librdkafka's admin, as the administrator). */
async function groupType(kafka: TestKafka, group: string, topic: string): Promise<string> {
  const describer = new GroupDescriber(kafkaConfigFor(kafka), { logger: createLogger("keda-test", "silent") });
  try {
    return (await describer.describe(group, topic))?.type ?? "no members";
  } finally {
    describer.close();
  }
}

interface Sample {
  t: number;
  replicas: number;
  lag: number | null;
}

describe("KEDA's Kafka scaler scales the workers from zero to N and back on the group's lag", { timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let kafka: TestKafka;
  let common: Record<string, string>;
  let group: string;
  let gateway: Service;
  let worker: Service | undefined;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "k8s-keda-"));
  const t0 = Date.now();
  const timeline: string[] = [];
  const samples: Sample[] = [];
  let sampling: Promise<void> | undefined;
  let stopSampling = false;
  /** The waiting requests' event streams, read to their end. */
  let streams: Array<Promise<string>> = [];
  const abort = new AbortController();

  before(async () => {
    cp = await startControlPlane({ hpaSyncPeriod: "2s" });
    console.log(`# control plane up in ${cp.startSeconds.toFixed(1)} s`);
    kafka = await useKafka();
    const prefix = uniquePrefix("k8s-keda");
    common = stackEnv(kafka, prefix, PARTITIONS);
    group = `${prefix}workers`;
    // The gateway creates the topics and tells a waiting request's stream that it waits.
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}`, LAG_REFRESH_MS: "1000", QUEUE_NOTICE_MS: "1000" });

    await startKeda(cp, tmp);
  });

  after(async () => {
    stopSampling = true;
    await sampling;
    await worker?.stop();
    await gateway?.stop();
    await cp?.stop();
    await kafka?.stop();
    rmSync(tmp, { recursive: true, force: true });
    console.log(`# KEDA on a real control plane: ${((Date.now() - t0) / 1000).toFixed(0)} s; ${timeline.join("; ")}`);
  });

  const replicas = () => cp.getJson<{ spec: { replicas?: number } }>(["-n", NAMESPACE, "get", "deployment", WORKER]).spec.replicas ?? 1;
  /** The external metric of the HPA KEDA made, as kube-controller-manager reads it: through the API server. */
  let metricPath = "";
  const lag = (): number | null => {
    const r = cp.kubectl(["get", "--raw", metricPath]);
    if (r.status !== 0) return null;
    const items = (JSON.parse(r.stdout) as { items: Array<{ value: string }> }).items;
    return items.length > 0 ? parseQuantity(items[0]!.value) : null;
  };
  const condition = (type: string) =>
    cp
      .getJson<{ status: { conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> } }>([
        "-n",
        NAMESPACE,
        "get",
        "scaledobject",
        WORKER,
      ])
      .status.conditions?.find((c) => c.type === type);
  const since = () => (Date.now() - t0) / 1000;

  it("with nothing waiting, KEDA scales the chart's worker Deployment to zero and serves the group's lag (0), logged in as the autoscaler", async () => {
    assert.ok(kafka.credentials, "a secured broker (KAFKA_CREDENTIALS_FILE): KEDA logs in as the autoscaler principal");
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
      `kafka.brokers=${kafka.brokers.replaceAll(",", "\\,")}`,
      "--set",
      `kafka.topicPrefix=${common.KAFKA_TOPIC_PREFIX}`,
      "--set",
      `kafka.groupId=${group}`,
      "--set",
      `kafka.requestPartitions=${PARTITIONS}`,
      "--set",
      `autoscaling.maxReplicas=${PARTITIONS}`,
      "--set",
      `autoscaling.target.lag=${LAG_TARGET}`,
      "--set",
      "autoscaling.keda.pollingInterval=1",
      "--set",
      `autoscaling.keda.cooldownPeriod=${COOLDOWN_S}`,
      "--set-json",
      `autoscaling.behavior.scaleDown=${JSON.stringify({ stabilizationWindowSeconds: DOWN_WINDOW_S, selectPolicy: "Max", policies: [{ type: "Percent", value: 100, periodSeconds: 5 }] })}`,
      "--set",
      "topics.job.enabled=false",
      // Each component's user and password (the chart's Secret: local and CI only); the
      // scaler's through the chart's TriggerAuthentication.
      ...setArgs(saslValues(kafka.credentials, ["gateway", "worker", "autoscaler"])),
      "--wait",
      "--timeout=5m",
    ]);
    await cp.waitFor("KEDA to scale the workers to 0", () => replicas() === 0, 120_000);
    timeline.push(`t=${since().toFixed(0)}s scaled to 0`);
    const ready = await cp.waitFor(
      "the ScaledObject Ready (its Kafka trigger reads the broker)",
      () => (condition("Ready")?.status === "True" ? true : undefined),
      60_000,
    );
    assert.ok(ready);
    // Ready comes once the scaler is built; Active only after its first poll of the broker
    // (Unknown until then, for seconds on a loaded machine).
    const active = await cp.waitFor("KEDA's first poll: Active known", () => condition("Active")?.status.replace("Unknown", "") || undefined, 60_000);
    assert.equal(active, "False", "nothing waits: not active");

    // The HPA KEDA made for the ScaledObject (named by the chart), on KEDA's external metric.
    const hpa = await cp.waitFor("KEDA's HPA", () => {
      const r = cp.kubectl(["-n", NAMESPACE, "get", "hpa", WORKER, "-o", "json"]);
      return r.status === 0
        ? (JSON.parse(r.stdout) as {
            spec: {
              minReplicas: number;
              maxReplicas: number;
              metrics: Array<{ external: { metric: { name: string; selector: { matchLabels: Record<string, string> } } } }>;
            };
          })
        : undefined;
    });
    assert.deepEqual([hpa.spec.minReplicas, hpa.spec.maxReplicas], [1, PARTITIONS], "KEDA's HPA works from 1 to maxReplicas; 0 is KEDA's own");
    const metric = hpa.spec.metrics[0]!.external.metric;
    assert.match(metric.name, /kafka/);
    const selector = Object.entries(metric.selector.matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    metricPath = `/apis/external.metrics.k8s.io/v1beta1/namespaces/${NAMESPACE}/${metric.name}?labelSelector=${encodeURIComponent(selector)}`;
    const value = await cp.waitFor("KEDA's metrics server to serve the lag through the API server", () => lag() ?? undefined, 60_000);
    assert.equal(value, 0, `nothing waits on ${common.KAFKA_TOPIC_PREFIX}chat.requests for ${group}`);

    // What the scaler logged in with: SCRAM-SHA-512 as the autoscaler principal, through
    // the chart's TriggerAuthentication (no other login is configured for it).
    const autoscaler = kafka.credentials.users.autoscaler;
    const so = cp.getJson<{ spec: { triggers: Array<{ metadata: Record<string, string>; authenticationRef?: { name: string } }> } }>([
      "-n",
      NAMESPACE,
      "get",
      "scaledobject",
      WORKER,
    ]);
    const trigger = so.spec.triggers[0]!;
    assert.equal(trigger.metadata.sasl, "scram_sha512");
    const auth = cp.getJson<{
      spec: {
        configMapTargetRef: Array<{ parameter: string; name: string; key: string }>;
        secretTargetRef: Array<{ parameter: string; name: string; key: string }>;
      };
    }>(["-n", NAMESPACE, "get", "triggerauthentication", trigger.authenticationRef!.name]);
    const param = (refs: Array<{ parameter: string; name: string; key: string }>, p: string, kind: string) => {
      const ref = refs.find((r) => r.parameter === p)!;
      const data = cp.getJson<{ data: Record<string, string> }>(["-n", NAMESPACE, "get", kind, ref.name]).data[ref.key]!;
      return kind === "secret" ? Buffer.from(data, "base64").toString() : data;
    };
    assert.equal(param(auth.spec.configMapTargetRef, "username", "configmap"), autoscaler.username, "the autoscaler's own user");
    assert.equal(param(auth.spec.secretTargetRef, "password", "secret"), autoscaler.password, "its password");
    // And that principal may do only this on the install: describe the request topic's
    // offsets and the workers' group's (no record, no other topic or group).
    const prefix = common.KAFKA_TOPIC_PREFIX!;
    const install = [
      ...Object.values(topicNames(prefix)).map((name) => ({ type: "topic" as const, name })),
      ...[group, `${group}.memory`, `${prefix}kafka-llm-gateways`, `${prefix}kafka-llm-gateways.x`].map((name) => ({ type: "group" as const, name })),
    ];
    assert.deepEqual(await aclsReaching(kafka, "autoscaler", install), [`group:literal:${group} Describe`, `topic:literal:${prefix}chat.requests Describe`]);
  });

  it(`${BURST} waiting requests: KEDA activates the Deployment (0 → 1) and its HPA raises it to ${PARTITIONS}, while the streams say they wait`, async () => {
    const api = apiClient(gateway.baseUrl, KEY);
    const start = Date.now();
    sampling = (async () => {
      while (!stopSampling) {
        try {
          const s = { t: (Date.now() - start) / 1000, replicas: replicas(), lag: lag() };
          const prev = samples.at(-1);
          samples.push(s);
          if (!prev || prev.replicas !== s.replicas) timeline.push(`t=${s.t.toFixed(1)}s lag=${s.lag} → ${s.replicas} workers`);
        } catch {
          // A kubectl call that failed (the API server busy): the next sample tries again.
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    const posted = [];
    for (let i = 0; i < BURST; i++) {
      const res = await api("POST", `/v1/conversations/keda-${i}/messages`, { content: `Story ${i}.`, max_tokens: 8 });
      assert.equal(res.status, 202, res.text);
      posted.push(res.body as { events_url: string });
    }
    const postedAt = (Date.now() - start) / 1000;
    // Every stream, read to its end (the answers come in the next test).
    streams = posted.map((p) =>
      fetch(`${gateway.baseUrl}${p.events_url}`, { headers: { authorization: `Bearer ${KEY}` }, signal: abort.signal }).then((r) => r.text()),
    );
    for (const s of streams) s.catch(() => {});

    const activated = await cp.waitFor("KEDA to activate the workers (0 → 1)", () => samples.find((s) => s.replicas >= 1), 120_000);
    const full = await cp.waitFor(`KEDA's HPA to raise the workers to ${PARTITIONS}`, () => samples.find((s) => s.replicas === PARTITIONS), 120_000);
    const whole = await cp.waitFor("KEDA's metric to show the whole burst", () => samples.find((s) => s.t > postedAt && s.lag !== null), 60_000);
    assert.equal(whole.lag, BURST, "the lag KEDA reads is the burst: nothing committed, every retained record counts");
    const peakLag = Math.max(...samples.map((s) => s.lag ?? 0));
    console.log(
      `# scale from zero: activated ${activated.t.toFixed(1)} s after the first request (lag ${activated.lag}), ${PARTITIONS} workers at ${full.t.toFixed(1)} s; peak lag through the API server ${peakLag}`,
    );
    assert.equal(peakLag, BURST, "never more than what was produced");
    assert.equal(condition("Active")?.status, "True");
    assert.ok(
      samples.every((s) => s.replicas <= PARTITIONS),
      "never above maxReplicas",
    );
  });

  it(`a worker of the group answers and commits: the lag goes to 0, and after the ${COOLDOWN_S} s cooldown KEDA scales back to zero`, async (t) => {
    t.after(() => abort.abort());
    worker = await startWorker(common, { KAFKA_GROUP_PROTOCOL: "consumer", WORKER_SLOTS: "4", DEFAULT_MAX_TOKENS: "8" });
    const answered = await Promise.all(streams);
    const first = parseSse(answered[0]!);
    const notices = first.filter((m) => m.event === "queued").map((m) => JSON.parse(m.data) as QueuedNotice);
    assert.ok(notices.length > 0 && notices[0]!.worker_assigned === false, "the stream said no worker had the request");
    for (const text of answered) assert.equal(parseSse(text).at(-1)?.event, "final", "every waiting request answered once a worker ran");

    const drained = await cp.waitFor(
      "the lag KEDA reads to fall to 0 (the worker's commits)",
      () => samples.find((s, i) => i > 0 && s.lag === 0 && samples.slice(0, i).some((p) => (p.lag ?? 0) > 0)),
      120_000,
    );
    // The lag KEDA read through its kafka-go admin calls fell to 0 on a KIP-848 group: the
    // broker says the group is on the consumer protocol, its offsets at the partitions' ends.
    assert.equal(
      await groupType(kafka, group, topicNames(common.KAFKA_TOPIC_PREFIX!).requests),
      "consumer",
      "the workers' group runs the consumer (KIP-848) protocol",
    );
    await worker.stop();
    worker = undefined;
    const zero = await cp.waitFor("KEDA to scale the workers back to 0", () => samples.find((s) => s.t > drained.t && s.replicas === 0), 120_000);
    // KEDA's cooldown runs from its last poll that saw lag, which is no earlier than a
    // poll interval (1 s) before the last sample that saw lag.
    const lastLag = samples.filter((s) => s.t < drained.t && (s.lag ?? 0) > 0).at(-1)!;
    console.log(`# back down: last lag ${lastLag.lag} at ${lastLag.t.toFixed(1)} s, lag 0 at ${drained.t.toFixed(1)} s, 0 workers at ${zero.t.toFixed(1)} s`);
    assert.ok(zero.t - lastLag.t >= COOLDOWN_S - 1.5, `not before the cooldown (${(zero.t - lastLag.t).toFixed(1)} s after the last lag seen)`);
    assert.equal(condition("Active")?.status, "False");
  });
});
