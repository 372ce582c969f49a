/**
 * The chart on a real control plane (lib/control-plane.ts: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kwok with a GPU node and a CPU node):
 *
 * - `helm install --wait --wait-for-jobs` of the default values and of each
 *   ci/*-values.yaml: every object accepted by the API server (Prometheus Operator and
 *   KEDA kinds through their upstream CRDs), the topics Job complete, the pods scheduled
 *   where they belong (GPU workers on the GPU node) and Ready; the API server's own
 *   validation refuses what the values schema lets through;
 * - `helm upgrade` with a changed value rolls the worker Deployment, `helm test` runs the
 *   chart's test hook, `helm uninstall` leaves nothing but what the chart marks "keep";
 * - pod deletion cost: the worker's module patches its pod with the chart's service
 *   account and is refused without the chart's Role; on scale-down the ReplicaSet removes
 *   the pod with the lowest cost;
 * - `kubectl port-forward svc/<release>-kafka-llm-gateway`, as NOTES.txt prints it, reaches a
 *   real gateway process (kwok forwards the pod's port to 127.0.0.1), and a chat turn runs
 *   through it.
 *
 * kwok runs no containers: what runs in a pod here is nothing, or a local process.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { inClusterPod, POD_DELETION_COST_ANNOTATION, SERVICE_ACCOUNT_DIR, startPodDeletionCost } from "../../worker/pod-deletion-cost.js";
import { loggedIn, stackEnv, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { freePort, REPO_ROOT, startService, type Service } from "../helpers/services.js";
import { VARIANTS, type K8sObject } from "./lib/chart.js";
import { bin, CPU_NODE, crdFiles, GPU_NODE, k8sParts, startControlPlane, type ControlPlane } from "./lib/control-plane.js";
import { helmOk, helmOn, pods, releaseObjects } from "./lib/helm-cluster.js";
import { serviceAccountToken, startLocalJobRunner, tokenKubeconfig, type LocalJobRunner } from "./lib/local-pods.js";

const RELEASE = "llm";
const PF_NAMESPACE = "pf";
const WORKERS = "app.kubernetes.io/component=worker";

/** A kwok stage that ends `helm test` pods (kwok's own pod-complete ends only Jobs' pods). */
function helmTestStage(kwokDir: string): object {
  const complete = parseYaml(readFileSync(path.join(kwokDir, "stages", "pod-complete.yaml"), "utf8")) as {
    metadata: { name: string };
    spec: { selector: { matchExpressions: Array<{ key: string; operator: string; values?: string[] }> } };
  };
  complete.metadata.name = "helm-test-complete";
  complete.spec.selector.matchExpressions = [
    ...complete.spec.selector.matchExpressions.filter((e) => !e.key.includes("ownerReferences")),
    { key: '.metadata.annotations["helm.sh/hook"]', operator: "In", values: ["test"] },
  ];
  return complete;
}

/** A release's objects as one YAML stream, each in the namespace helm put it in. */
function asDocuments(objects: readonly K8sObject[], namespace: string): string {
  return objects.map((o) => toYaml({ ...o, metadata: { ...o.metadata, namespace: o.metadata.namespace ?? namespace } })).join("\n---\n");
}

/**
 * Strimzi's KafkaUser kind, so that the production values install: a stand-in CRD that
 * accepts any spec (Strimzi's own CRD is in no package the registries here serve;
 * chart-kafka-users.test.ts checks the objects' fields against its API reference).
 */
const KAFKA_USER_CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "kafkausers.kafka.strimzi.io" },
  spec: {
    group: "kafka.strimzi.io",
    names: { kind: "KafkaUser", listKind: "KafkaUserList", plural: "kafkausers", singular: "kafkauser" },
    scope: "Namespaced",
    versions: [
      {
        name: "v1beta2",
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: "object", properties: { spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true } } } },
      },
    ],
  },
};

/** What an install of a variant needs that the chart expects to exist already. */
function prerequisites(variant: string, namespace: string): object[] {
  const secret = (name: string, data: Record<string, string>) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace },
    stringData: data,
  });
  // No storage provisioner: a volume of the class and size a claim asks for, for the
  // persistent-volume binder to bind (nothing mounts it: kwok runs no containers).
  const volume = (name: string, storageClassName: string, size: string) => ({
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name: `${namespace}-${name}` },
    spec: { capacity: { storage: size }, accessModes: ["ReadWriteMany"], storageClassName, hostPath: { path: `/nonexistent/${name}` } },
  });
  if (variant === "gpu") return [volume("models", "nfs", "30Gi")];
  if (variant === "external-kafka") {
    return [
      // Its dashboards go to Grafana's namespace, which the API server wants to exist.
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "monitoring" } },
      ...["gateway", "worker", "topics", "autoscaler"].map((c) => secret(`team-a-llm-kafka-${c}`, { password: "stand-in" })),
      secret("team-a-llm-internal", { token: "stand-in-token-0123456789abcdefghijklmnopqrstuvwxyz" }),
      secret("kafka-cluster-ca", { "ca.crt": "stand-in" }),
      secret("team-a-llm-api-keys", { "keys.txt": "team-a:stand-in-key-0123456789" }),
      volume("llm-models", "manual", "10Gi"),
      {
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { name: "llm-models", namespace },
        spec: { accessModes: ["ReadWriteMany"], storageClassName: "manual", resources: { requests: { storage: "10Gi" } } },
      },
    ];
  }
  return [];
}

describe("the chart on a real API server", { timeout: 1_500_000 }, () => {
  let cp: ControlPlane;
  let runner: LocalJobRunner;
  let gatewayPort: number;
  const t0 = Date.now();
  const installed = new Map<string, K8sObject[]>();

  before(async () => {
    const parts = k8sParts();
    gatewayPort = await freePort();
    cp = await startControlPlane({
      localJobComponents: ["generated-secret"],
      kwokConfig: [
        helmTestStage(parts.kwok),
        {
          // kubectl port-forward to any pod of this namespace reaches the local gateway.
          apiVersion: "kwok.x-k8s.io/v1alpha1",
          kind: "ClusterPortForward",
          metadata: { name: "gateway-to-local" },
          spec: { selector: { matchNamespaces: [PF_NAMESPACE] }, forwards: [{ ports: [8080], target: { address: "127.0.0.1", port: gatewayPort } }] },
        },
      ],
    });
    console.log(`# control plane up in ${cp.startSeconds.toFixed(1)} s`);
    // The CRDs of the kinds the chart renders, from the upstream modules' own files.
    const crds = [...crdFiles(parts["prometheus-operator-crds"]), ...crdFiles(parts["keda-crds"])];
    for (const file of crds) cp.kc(["apply", "--server-side", "-f", file]);
    cp.kc(["apply", "--server-side", "-f", "-"], toYaml(KAFKA_USER_CRD));
    cp.kc(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
    // Every install's generated-Secret hook really runs scripts/deploy/ensure-secret.ts.
    runner = startLocalJobRunner(cp, ["generated-secret"]);
  });

  after(async () => {
    await runner?.stop();
    await cp?.stop();
    console.log(`# chart on a real API server: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  });

  for (const [variant, files] of Object.entries(VARIANTS)) {
    it(`helm install --wait of the ${variant} values: accepted, scheduled where it belongs, Ready`, async () => {
      const ns = `v-${variant}`;
      cp.kc(["create", "namespace", ns]);
      const pre = prerequisites(variant, ns);
      if (pre.length > 0) cp.apply(pre);
      // No cloud here: answer a LoadBalancer Service the way a cloud controller would, or
      // --wait would wait for an address forever.
      let installing = true;
      const lb = (async () => {
        while (installing) {
          const svcs = cp.getJson<{ items: Array<{ metadata: { name: string }; spec: { type: string }; status: { loadBalancer?: { ingress?: unknown[] } } }> }>(
            ["-n", ns, "get", "services"],
          ).items;
          for (const s of svcs.filter((x) => x.spec.type === "LoadBalancer" && !x.status.loadBalancer?.ingress)) {
            cp.kc([
              "-n",
              ns,
              "patch",
              "service",
              s.metadata.name,
              "--subresource=status",
              "--type=merge",
              "-p",
              JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: "127.0.0.1" }] } } }),
            ]);
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      const started = Date.now();
      const r = await helmOn(cp, ["install", RELEASE, ".", "-n", ns, ...files.flatMap((f) => ["-f", f]), "--wait", "--wait-for-jobs", "--timeout=5m"]);
      installing = false;
      await lb;
      assert.equal(r.status, 0, `helm install failed:\n${r.stderr}\n${cp.kubectl(["-n", ns, "get", "all,pvc,events"]).stdout}`);
      console.log(`# ${variant}: helm install --wait in ${((Date.now() - started) / 1000).toFixed(1)} s`);

      const objects = await releaseObjects(cp, RELEASE, ns);
      installed.set(variant, objects);
      // Every object of the release is on the server as rendered.
      const onServer = JSON.parse(cp.kc(["get", "-f", "-", "-o", "json"], asDocuments(objects, ns))) as { items?: K8sObject[]; kind: string };
      const count = onServer.items?.length ?? 1;
      assert.equal(count, objects.length, "every object of the manifest exists");
      const kinds = new Set(objects.map((o) => o.kind));
      if (variant === "gpu") assert.ok(kinds.has("ServiceMonitor") && kinds.has("PrometheusRule"), "Prometheus Operator kinds, through their CRDs");
      if (variant === "keda") assert.ok(kinds.has("ScaledObject") && kinds.has("PodMonitor") && kinds.has("PrometheusRule"), "KEDA's and the Operator's kinds");

      // GPU workers (the chart's default) request nvidia.com/gpu; the cpu variant turns that off.
      const workerDeployment = objects.find((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "worker") as
        { spec: { template: { spec: { containers: Array<{ resources?: { limits?: Record<string, unknown> } }> } } } } | undefined;
      const gpu = workerDeployment?.spec.template.spec.containers.some((c) => c.resources?.limits?.["nvidia.com/gpu"] !== undefined) ?? false;
      assert.equal(gpu, variant !== "cpu", "GPU workers unless the values say otherwise");
      const workers = pods(cp, ns, WORKERS);
      if (variant === "keda") {
        // minReplicas 0: nothing runs until KEDA activates the Deployment.
        assert.ok(workers.length <= 1);
      } else {
        assert.ok(workers.length >= 1, "worker pods exist");
      }
      for (const p of workers) {
        assert.equal(p.node, gpu ? GPU_NODE : CPU_NODE, `${p.name} on the ${gpu ? "GPU" : "CPU"} node`);
        assert.ok(p.ready, `${p.name} Ready`);
      }
      for (const p of pods(cp, ns, "app.kubernetes.io/component=gateway")) {
        assert.equal(p.node, CPU_NODE, "the gateway never takes a GPU node (it does not tolerate the taint)");
        assert.ok(p.ready);
      }
      const jobs = cp.getJson<{ items: Array<{ metadata: { name: string }; status: { succeeded?: number } }> }>(["-n", ns, "get", "jobs"]).items;
      assert.equal(jobs.length, 1, "the topics Job (the generated-Secret hook is gone once it succeeded)");
      assert.equal(jobs[0]!.status.succeeded, 1, "the topics Job completed");
      // The hook ran ensure-secret.ts as its own account: the Secret the pods mount exists.
      const generated = cp.kubectl(["-n", ns, "get", "secret", `${RELEASE}-kafka-llm-generated`, "-o", "json"]);
      if (variant === "external-kafka") {
        assert.notEqual(generated.status, 0, "every secret brought by the user: nothing generated");
      } else {
        assert.equal(generated.status, 0, generated.stderr);
        const data = (JSON.parse(generated.stdout) as { data: Record<string, string> }).data;
        assert.match(Buffer.from(data["internal-token"]!, "base64").toString(), /^[A-Za-z0-9]{48}\n$/);
      }
    });
  }

  it("the API server refuses what the values schema lets through, with its own error", async () => {
    cp.kc(["create", "namespace", "invalid"]);
    const r = await helmOn(cp, ["install", RELEASE, ".", "-n", "invalid", "--set", "gateway.podLabels.team=not a valid label!", "--timeout=1m"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /labels: Invalid value: "not a valid label!"/, r.stderr);
  });

  it("helm upgrade with a changed value rolls the worker Deployment", async () => {
    const ns = "v-default";
    const deploy = () =>
      cp.getJson<{ metadata: { generation: number }; status: { observedGeneration?: number; updatedReplicas?: number; replicas?: number } }>([
        "-n",
        ns,
        "get",
        "deployment",
        `${RELEASE}-kafka-llm-worker`,
      ]);
    const beforePods = pods(cp, ns, WORKERS).map((p) => p.name);
    const generation = deploy().metadata.generation;
    await helmOk(cp, ["upgrade", RELEASE, ".", "-n", ns, "--reuse-values", "--set", "worker.slots=2", "--wait", "--wait-for-jobs", "--timeout=5m"]);
    const after = deploy();
    assert.ok(after.metadata.generation > generation, "a new pod template");
    cp.kc(["-n", ns, "rollout", "status", `deployment/${RELEASE}-kafka-llm-worker`, "--timeout=120s"]);
    const afterPods = await cp.waitFor("the old worker pods gone", () => {
      const now = pods(cp, ns, WORKERS);
      return now.length > 0 && now.every((p) => !beforePods.includes(p.name) && p.ready) ? now : undefined;
    });
    assert.ok(afterPods.length >= 1);
    const cm = cp.getJson<{ data: Record<string, string> }>(["-n", ns, "get", "configmap", `${RELEASE}-kafka-llm-worker`]);
    assert.equal(cm.data.WORKER_SLOTS, "2", "the new value reached the workers' ConfigMap");
    const rs = cp.getJson<{ items: Array<{ spec: { replicas: number } }> }>(["-n", ns, "get", "replicasets", "-l", WORKERS]).items;
    assert.equal(rs.length, 2, "a new ReplicaSet beside the old one");
    assert.equal(rs.filter((r) => r.spec.replicas > 0).length, 1, "the old one scaled to 0");
  });

  it("helm test runs the chart's test hook", async () => {
    const out = await helmOk(cp, ["test", RELEASE, "-n", "v-default", "--timeout=2m"]);
    assert.match(out, /TEST SUITE:\s+llm-kafka-llm-test-chat-turn[\s\S]*Phase:\s+Succeeded/, out);
  });

  it("helm uninstall leaves nothing behind but what the chart keeps on purpose", async () => {
    for (const [variant, objects] of installed) {
      const ns = `v-${variant}`;
      await helmOk(cp, ["uninstall", RELEASE, "-n", ns, "--wait", "--timeout=2m"]);
      const kept = objects.filter((o) => o.metadata.annotations?.["helm.sh/resource-policy"] === "keep").map((o) => `${o.kind}/${o.metadata.name}`);
      const left = await cp.waitFor(
        `the ${variant} release's objects gone`,
        () => {
          const names = cp.kc(["get", "-f", "-", "--ignore-not-found", "-o", "name"], asDocuments(objects, ns)).trim();
          const list = names ? names.split("\n") : [];
          return list.length === kept.length ? list : undefined;
        },
        120_000,
      );
      assert.equal(left.length, kept.length, `${variant}: only the kept objects remain (${left.join(", ")})`);
      // Helm never owned the generated Secret: it stays, so a reinstall keeps the same token and key.
      const generated = cp.kubectl(["-n", ns, "get", "secret", `${RELEASE}-kafka-llm-generated`]);
      assert.equal(generated.status === 0, variant !== "external-kafka", `${variant}: the generated Secret is left`);
      // Pods go last: the garbage collector deletes them after their ReplicaSets.
      const leftPods = await cp
        .waitFor(
          `the ${variant} release's pods gone`,
          () => {
            const list = pods(cp, ns, `app.kubernetes.io/instance=${RELEASE}`);
            return list.length === 0 ? list : undefined;
          },
          60_000,
        )
        .catch(() => pods(cp, ns, `app.kubernetes.io/instance=${RELEASE}`));
      assert.deepEqual(
        leftPods.map((p) => p.name),
        [],
        `${variant}: no pods left`,
      );
    }
  });

  describe("pod deletion cost", () => {
    const ns = "pdc";
    const tmp = mkdtempSync(path.join(os.tmpdir(), "pdc-sa-"));
    after(() => rmSync(tmp, { recursive: true, force: true }));
    const policy = `${RELEASE}-kafka-llm.${ns}.worker-pods`;

    /** A worker pod's name and uid, for a token bound to it. */
    const podRef = (name: string) => ({ name, uid: cp.getJson<{ metadata: { uid: string } }>(["-n", ns, "get", "pod", name]).metadata.uid });

    /** The service account directory the kubelet would give a pod of `sa`: a token bound to `boundTo`, or an unbound one. */
    function mountToken(sa: string, boundTo?: { name: string; uid: string }): string {
      const prefix = path.join(tmp, `${sa}-${boundTo?.name ?? "unbound"}`);
      const dir = path.join(prefix, SERVICE_ACCOUNT_DIR);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, "token"), serviceAccountToken(cp, ns, sa, boundTo));
      writeFileSync(path.join(dir, "ca.crt"), readFileSync(cp.caFile));
      writeFileSync(path.join(dir, "namespace"), ns);
      return prefix;
    }

    /** The worker's own module sets `pod`'s cost, with a token of `sa` bound to `boundTo` (default: that pod); the warnings it logs. */
    async function annotateAs(sa: string, pod: string, active: number, boundTo: { name: string; uid: string } | null = podRef(pod)) {
      const warnings: string[] = [];
      const { pino } = await import("pino");
      const { Writable } = await import("node:stream");
      const logger = pino({ level: "warn" }, new Writable({ write: (c: Buffer, _e, done) => (warnings.push(c.toString()), done()) }));
      const port = new URL(cp.server).port;
      // The worker's own in-cluster adapter: the API server from the env, the chart's service account's token mounted.
      const target = inClusterPod(
        logger,
        { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: port, POD_NAME: pod, POD_NAMESPACE: ns },
        path.join(mountToken(sa, boundTo ?? undefined), SERVICE_ACCOUNT_DIR),
      );
      assert.ok(target, "in a cluster: a pod to annotate");
      const pdc = startPodDeletionCost(target, { logger, activeGenerations: () => active, intervalMs: 3_600_000 });
      await pdc.sync();
      await pdc.stop();
      return warnings;
    }

    const workerSa = () =>
      cp.getJson<{ spec: { template: { spec: { serviceAccountName: string } } } }>(["-n", ns, "get", "deployment", `${RELEASE}-kafka-llm-worker`]).spec.template
        .spec.serviceAccountName;
    const workerNames = () =>
      pods(cp, ns, WORKERS)
        .map((p) => p.name)
        .sort();

    it("a worker's patch of its own pod is accepted with the chart's RBAC and refused without it; scale-down removes the lowest cost", async () => {
      cp.kc(["create", "namespace", ns]);
      await helmOk(cp, [
        "install",
        RELEASE,
        ".",
        "-n",
        ns,
        "--set",
        "autoscaling.enabled=false",
        "--set",
        "worker.replicas=3",
        "--wait",
        "--wait-for-jobs",
        "--timeout=5m",
      ]);
      const sa = workerSa();
      const names = workerNames();
      assert.equal(names.length, 3);

      // Without the chart's Role: a service account of its own, refused by RBAC.
      cp.kc(["-n", ns, "create", "serviceaccount", "no-rbac"]);
      // (Its token cannot be bound to a worker's pod: the pod runs as another account.)
      const refused = await annotateAs("no-rbac", names[0]!, 7, null);
      assert.match(refused.join("\n"), /forbidden|403/i, "the API server refuses the patch");
      assert.equal(pods(cp, ns, WORKERS).find((p) => p.name === names[0])!.annotations[POD_DELETION_COST_ANNOTATION], undefined);

      // With it: each worker sets its own cost (busy, idle, half busy), with a token bound to its pod.
      const costs = [4, 0, 2];
      for (const [i, name] of names.entries()) {
        assert.deepEqual(await annotateAs(sa, name, costs[i]!), [], `${name}: accepted without a warning`);
      }
      const annotated = Object.fromEntries(pods(cp, ns, WORKERS).map((p) => [p.name, p.annotations[POD_DELETION_COST_ANNOTATION]]));
      assert.deepEqual(annotated, Object.fromEntries(names.map((n, i) => [n, String(costs[i])])));

      // The ReplicaSet controller picks the pod to remove: the idle one.
      cp.kc(["-n", ns, "scale", "deployment", `${RELEASE}-kafka-llm-worker`, "--replicas=2"]);
      const remaining = await cp.waitFor("one worker removed", () => {
        const now = workerNames();
        return now.length === 2 ? now : undefined;
      });
      assert.deepEqual(remaining, [names[0], names[2]].sort(), `the idle pod ${names[1]} was removed`);
    });

    it("the admission policy holds a worker's token to the deletion cost of its own pod", async () => {
      // The policy compiled: no type-checking warning, this generation observed.
      const vap = await cp.waitFor("the policy's type check", () => {
        const p = cp.getJson<{ metadata: { generation: number }; status?: { observedGeneration?: number; typeChecking?: { expressionWarnings?: unknown[] } } }>(
          ["get", "validatingadmissionpolicy", policy],
        );
        return p.status?.observedGeneration === p.metadata.generation ? p : undefined;
      });
      assert.deepEqual(vap.status?.typeChecking?.expressionWarnings ?? [], []);

      const [a, b] = workerNames();
      const sa = workerSa();
      // Worker A's API client (the worker's own library), with a token bound to pod A.
      const k8s = await import("@kubernetes/client-node");
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(tokenKubeconfig(cp, tmp, serviceAccountToken(cp, ns, sa, podRef(a!)), ns));
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const attempt = async (call: () => Promise<unknown>) => {
        try {
          await call();
          return { code: 200, message: "" };
        } catch (err) {
          const e = err as { code?: number; body?: unknown };
          return { code: e.code ?? 0, message: typeof e.body === "string" ? e.body : JSON.stringify(e.body ?? String(err)) };
        }
      };
      const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
      // A strategic merge patch changes one container's image and keeps the rest of the pod valid.
      const strategic = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch);
      const patch = (pod: string, body: object, dryRun = false) =>
        attempt(() => core.patchNamespacedPod({ name: pod, namespace: ns, body, ...(dryRun && { dryRun: "All" }) }, merge));
      const image = (pod: string) =>
        attempt(() => core.patchNamespacedPod({ name: pod, namespace: ns, body: { spec: { containers: [{ name: "worker", image: "evil:1" }] } } }, strategic));
      const cost = (value: string) => ({ metadata: { annotations: { [POD_DELETION_COST_ANNOTATION]: value } } });
      // The API server loads a policy asynchronously: a dry run goes through admission without writing.
      await cp.waitFor(
        "the policy to be enforced",
        async () => {
          const r = await patch(b!, cost("9"), true);
          if (!r.message.includes(policy)) throw new Error(`a dry run of another pod's cost: ${r.code} ${r.message}`);
          return true;
        },
        30_000,
      );

      const get = cp.getJson<{
        metadata: { annotations?: Record<string, string>; labels: Record<string, string> };
        spec: { containers: Array<{ image: string }> };
      }>;
      const podA = get(["-n", ns, "get", "pod", a!]);
      const podB = get(["-n", ns, "get", "pod", b!]);

      // Its own pod's cost: accepted.
      assert.deepEqual(await patch(a!, cost("5")), { code: 200, message: "" });

      const refusals: Array<[string, () => Promise<{ code: number; message: string }>, number, RegExp]> = [
        ["another pod's cost", () => patch(b!, cost("9")), 403, /a worker may change only its own pod/],
        ["its own pod's image", () => image(a!), 403, /may not change a pod's spec/],
        ["another pod's image", () => image(b!), 403, /only its own pod/],
        [
          "a label of its own pod",
          () => patch(a!, { metadata: { labels: { "app.kubernetes.io/component": "gateway" } } }),
          403,
          /labels, finalizers or owners/,
        ],
        ["another annotation of its own pod", () => patch(a!, { metadata: { annotations: { "prometheus.io/scrape": "false" } } }), 403, /no annotation but/],
        // Beyond RBAC: no status subresource, no delete, no read.
        [
          "its own pod's status",
          () => attempt(() => core.patchNamespacedPodStatus({ name: a!, namespace: ns, body: { status: { phase: "Failed" } } }, merge)),
          403,
          /forbidden/,
        ],
        ["deleting its own pod", () => attempt(() => core.deleteNamespacedPod({ name: a!, namespace: ns })), 403, /forbidden/],
        ["reading its own pod", () => attempt(() => core.readNamespacedPod({ name: a!, namespace: ns })), 403, /forbidden/],
      ];
      for (const [what, call, code, reason] of refusals) {
        const r = await call();
        assert.equal(r.code, code, `${what}: ${r.message}`);
        assert.match(r.message, reason, what);
      }
      // The module's own patch of another pod, with a token bound to the wrong pod or to none.
      assert.match((await annotateAs(sa, b!, 9, podRef(a!))).join("\n"), /only its own pod/);
      assert.match((await annotateAs(sa, a!, 9, null)).join("\n"), /only its own pod/, "a token bound to no pod names no pod");

      const afterA = get(["-n", ns, "get", "pod", a!]);
      const afterB = get(["-n", ns, "get", "pod", b!]);
      assert.equal(afterA.metadata.annotations?.[POD_DELETION_COST_ANNOTATION], "5", "only the accepted patch landed");
      assert.deepEqual(afterB.metadata.annotations, podB.metadata.annotations, "the other pod is untouched");
      assert.deepEqual(afterA.metadata.labels, podA.metadata.labels);
      assert.deepEqual([afterA.spec.containers[0]!.image, afterB.spec.containers[0]!.image], [podA.spec.containers[0]!.image, podB.spec.containers[0]!.image]);
    });
  });

  describe("kubectl port-forward through kwok to a real gateway", () => {
    let kafka: TestKafka;
    let gateway: Service;
    let worker: Service;
    let forward: ReturnType<typeof spawn> | undefined;
    const keys = mkdtempSync(path.join(os.tmpdir(), "pf-keys-"));

    after(async () => {
      forward?.kill("SIGTERM");
      await gateway?.stop();
      await worker?.stop();
      await kafka?.stop();
      rmSync(keys, { recursive: true, force: true });
    });

    it("the NOTES.txt command reaches the gateway, and a chat turn goes through it", async () => {
      cp.kc(["create", "namespace", PF_NAMESPACE]);
      await helmOk(cp, ["install", RELEASE, ".", "-n", PF_NAMESPACE, "--wait", "--wait-for-jobs", "--timeout=5m"]);
      // The release's generated key (made by its hook, ensure-secret.ts), read as NOTES.txt says.
      const secret = cp.getJson<{ data: Record<string, string> }>(["-n", PF_NAMESPACE, "get", "secret", `${RELEASE}-kafka-llm-generated`]);
      const keyFile = path.join(keys, "api-keys");
      writeFileSync(keyFile, Buffer.from(secret.data["api-keys"]!, "base64"));

      kafka = await useKafka();
      const common = stackEnv(kafka, uniquePrefix("k8s-pf"));
      // On the port kwok forwards the pods' 8080 to (fixed before kwok started); logged in
      // as the gateway's principal, the install's topics and ACLs made first.
      gateway = await startService({
        name: "gateway",
        entry: "gateway/main.ts",
        port: gatewayPort,
        readyPath: "/readyz",
        env: await loggedIn(
          {
            ...common,
            GATEWAY_HOST: "127.0.0.1",
            GATEWAY_PORT: String(gatewayPort),
            WORKER_GROUP_ID: `${common.KAFKA_TOPIC_PREFIX}workers`,
            GATEWAY_API_KEYS_FILE: keyFile,
          },
          "gateway",
        ),
      });
      worker = await startWorker(common);

      const notes = await helmOk(cp, ["get", "notes", RELEASE, "-n", PF_NAMESPACE]);
      const line = notes
        .split("\n")
        .find((l) => l.includes("port-forward"))!
        .trim();
      assert.match(line, new RegExp(`^kubectl -n ${PF_NAMESPACE} port-forward svc/${RELEASE}-kafka-llm-gateway 8080:8080$`));
      const local = await freePort();
      const args = line
        .split(/\s+/)
        .slice(1)
        .map((a) => (a === "8080:8080" ? `${local}:8080` : a));
      forward = spawn(bin(cp.parts.kubernetes, "kubectl"), args, { env: cp.env(), stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      forward.stdout!.on("data", (b: Buffer) => (out += b.toString()));
      forward.stderr!.on("data", (b: Buffer) => (out += b.toString()));
      await cp.waitFor("kubectl port-forward to listen", () => out.includes("Forwarding from"), 30_000);

      const health = await fetch(`http://127.0.0.1:${local}/readyz`);
      assert.equal(health.status, 200, "the gateway answers through the port-forward");
      const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/deploy/chat-turn.ts"], {
        cwd: REPO_ROOT,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, GATEWAY_URL: `http://127.0.0.1:${local}`, GATEWAY_API_KEYS_FILE: keyFile, CHAT_TURN_TIMEOUT_MS: "90000" },
      });
      assert.equal(r.status, 0, r.stdout + r.stderr + out);
      const result = JSON.parse(r.stdout.trim()) as { result: string; reply_chars: number };
      assert.equal(result.result, "final");
      assert.ok(result.reply_chars > 0);
    });
  });
});
