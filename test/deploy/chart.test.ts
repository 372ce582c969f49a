/**
 * The Helm chart, checked without a cluster (none runs on this project's machines):
 * `helm lint --strict` and `helm template` with the real helm on the default values and
 * the GPU, CPU, KEDA and external-Kafka variants (ci/*-values.yaml); every rendered object
 * validated offline against the Kubernetes, KEDA and Prometheus Operator schemas, unknown
 * fields included; then what the issue asks of the objects, read from the rendered YAML:
 * non-root read-only pods, probes, the worker's grace period against its own
 * SHUTDOWN_GRACE_MS, GPU scheduling, autoscaling bounds and behaviour, RBAC for the pod
 * deletion cost, dashboards for the Grafana sidecar, NOTES.txt, and that the settings the
 * chart gives the services are ones they read and accept.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { loadGatewayConfig } from "../../contracts/config/gateway.js";
import { loadTracingConfig } from "../../contracts/config/tracing.js";
import { loadKafkaConfig } from "../../contracts/config/shared.js";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { poolGroup, poolTopics } from "../../contracts/pools.js";
import { parsePools } from "../../scripts/deploy/pool-declarations.js";
import { REPO_ROOT } from "../helpers/services.js";
import {
  CHART_DIR,
  containerEnv,
  envWithMountedSecrets,
  find,
  helm,
  lint,
  podSpecs,
  POOLS_VALUES,
  render,
  renderError,
  renderNotes,
  STAND_IN,
  VARIANTS,
  type Container,
  type K8sObject,
  type PodSpec,
} from "./lib/chart.js";
import { unknownFieldErrors, validateObject } from "./lib/k8s-schemas.js";
import { IMAGE_ENTRY_POINTS } from "./lib/images.js";

const rendered: Record<string, K8sObject[]> = {};
const secretsRoot = mkdtempSync(path.join(os.tmpdir(), "chart-secrets-"));

before(() => {
  for (const [name, files] of Object.entries(VARIANTS)) rendered[name] = render({ valuesFiles: files });
});
after(() => rmSync(secretsRoot, { recursive: true, force: true }));

/** A pod's container's env as the process would see it, Secret files included. */
function podEnv(objs: K8sObject[], owner: K8sObject, index = 0): Record<string, string> {
  const spec = owner.kind === "Pod" ? (owner.spec as PodSpec) : (owner.spec as { template: { spec: PodSpec } }).template.spec;
  return envWithMountedSecrets(objs, spec, spec.containers[index]!, path.join(secretsRoot, owner.kind, owner.metadata.name));
}

const workerOf = (objs: K8sObject[]) => find(objs, "Deployment", "-worker");
const gatewayOf = (objs: K8sObject[]) => find(objs, "Deployment", "-gateway");
const podOf = (d: K8sObject) => (d.spec as { template: { spec: PodSpec } }).template.spec;
const kafkaEnv = (objs: K8sObject[]) => find(objs, "ConfigMap", "-kafka").data as Record<string, string>;

interface ScaledObjectSpec {
  minReplicaCount: number;
  maxReplicaCount: number;
  advanced: { horizontalPodAutoscalerConfig: { behavior: unknown } };
  triggers: Array<{ type: string; metricType: string; metadata: Record<string, string>; authenticationRef?: { name: string } }>;
}

describe("helm lint --strict", () => {
  for (const [name, files] of Object.entries(VARIANTS)) {
    it(`passes: ${name}`, () => {
      const r = lint({ valuesFiles: files });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }
});

/**
 * Strimzi's KafkaUser has no schema offline (no npm package carries Strimzi's CRDs, and
 * its CRD generator is not on Maven Central): chart-kafka-users.test.ts checks those
 * objects field by field instead.
 */
const withSchema = (objs: readonly K8sObject[]) => objs.filter((o) => o.apiVersion !== "kafka.strimzi.io/v1beta2");

describe("rendered objects against the schemas", () => {
  for (const name of Object.keys(VARIANTS)) {
    it(`every object of ${name} is valid`, async () => {
      const problems = (await Promise.all(withSchema(rendered[name]!).map(validateObject))).flat();
      assert.deepEqual(problems, []);
    });
  }

  it("no object of any variant has a field its schema does not know", () => {
    assert.deepEqual(unknownFieldErrors(Object.fromEntries(Object.entries(rendered).map(([n, objs]) => [n, withSchema(objs)]))), []);
  });

  it("the variants together cover the KEDA and Prometheus Operator kinds too", () => {
    const kinds = new Set(
      Object.values(rendered)
        .flat()
        .map((o) => `${o.apiVersion}/${o.kind}`),
    );
    for (const k of [
      "keda.sh/v1alpha1/ScaledObject",
      "monitoring.coreos.com/v1/ServiceMonitor",
      "monitoring.coreos.com/v1/PodMonitor",
      "monitoring.coreos.com/v1/PrometheusRule",
      "autoscaling/v2/HorizontalPodAutoscaler",
      "networking.k8s.io/v1/NetworkPolicy",
      "policy/v1/PodDisruptionBudget",
      "batch/v1/Job",
      "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
      "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding",
    ]) {
      assert.ok(kinds.has(k), `some variant renders ${k}`);
    }
  });

  it("the validators reject broken objects (they are really looking)", async () => {
    const deployment = structuredClone(workerOf(rendered.default!));
    (deployment.spec as { replicas: unknown }).replicas = "two";
    assert.match((await validateObject(deployment)).join(), /replicas must be integer/);

    const scaled = structuredClone(find(rendered.keda!, "ScaledObject"));
    (scaled.spec as { maxReplicaCount: unknown }).maxReplicaCount = "6";
    assert.match((await validateObject(scaled)).join(), /maxReplicaCount must be integer/);

    const monitor = structuredClone(find(rendered.gpu!, "ServiceMonitor", "-worker"));
    delete (monitor.spec as { endpoints?: unknown }).endpoints;
    assert.match((await validateObject(monitor)).join(), /endpoints/);

    const typo = structuredClone(workerOf(rendered.default!));
    (podOf(typo).containers[0]!.securityContext as Record<string, unknown>).readOnlyRootFileSystem = true;
    const scaledTypo = structuredClone(find(rendered.keda!, "ScaledObject"));
    (scaledTypo.spec as Record<string, unknown>).maxReplicas = 3;
    const unknown = unknownFieldErrors({ broken: [typo, scaledTypo] });
    assert.equal(unknown.length, 2, unknown.join("\n"));
    assert.match(unknown[0]!, /Deployment .*readOnlyRootFileSystem/);
    assert.match(unknown[1]!, /ScaledObject .*maxReplicas/);

    await assert.rejects(async () => {
      const p = await validateObject({ apiVersion: "kafka.strimzi.io/v1beta2", kind: "KafkaTopic", metadata: { name: "x" } });
      if (p.length > 0) throw new Error(p.join());
    }, /no schema for apiVersion kafka.strimzi.io/);
  });
});

describe("pods: non-root, read-only root filesystem, no capabilities", () => {
  for (const name of Object.keys(VARIANTS)) {
    it(name, () => {
      const pods = podSpecs(rendered[name]!);
      assert.ok(pods.length >= 4, "gateway, worker, topics Job, helm test");
      for (const { owner, spec } of pods) {
        assert.equal(spec.securityContext?.runAsNonRoot, true, `${owner}: runAsNonRoot`);
        assert.ok((spec.securityContext?.runAsUser ?? 0) > 0, `${owner}: runAsUser not root`);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          const sc = c.securityContext ?? {};
          assert.equal(sc.readOnlyRootFilesystem, true, `${owner}/${c.name}: read-only root filesystem`);
          assert.equal(sc.allowPrivilegeEscalation, false, `${owner}/${c.name}: no privilege escalation`);
          assert.notEqual(sc.privileged, true, `${owner}/${c.name}: not privileged`);
          assert.deepEqual(sc.capabilities?.drop, ["ALL"], `${owner}/${c.name}: drops every capability`);
          assert.equal(sc.capabilities?.add, undefined, `${owner}/${c.name}: adds none`);
          assert.ok(
            c.volumeMounts?.some((m) => m.mountPath === "/tmp"),
            `${owner}/${c.name}: a writable /tmp`,
          );
        }
      }
    });
  }

  it("every container runs an entry point the images build, with node as PID 1", () => {
    for (const objs of Object.values(rendered)) {
      for (const { owner, spec } of podSpecs(objs)) {
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          assert.equal(c.command, undefined, `${owner}/${c.name}: keeps the image's ENTRYPOINT (node)`);
          assert.equal(c.args?.length, 1);
          assert.ok(IMAGE_ENTRY_POINTS.includes(c.args![0]!), `${owner}/${c.name}: ${c.args![0]} is built into the image`);
        }
      }
    }
  });
});

describe("the gateway Deployment", () => {
  it("sleeps in preStop, then has its drain and a margin before SIGKILL, for any grace", () => {
    for (const graceMs of [0, 1, 20_000, 120_000]) {
      const objs = render({ set: { "gateway.shutdownGraceMs": graceMs } });
      const pod = podOf(gatewayOf(objs));
      const env = containerEnv(objs, pod.containers[0]!);
      assert.equal(Number(env.GATEWAY_SHUTDOWN_GRACE_MS), graceMs);
      assert.deepEqual((pod.containers[0] as { lifecycle?: unknown }).lifecycle, { preStop: { sleep: { seconds: 5 } } });
      assert.ok(
        pod.terminationGracePeriodSeconds! * 1000 >= 5000 + graceMs + 2000,
        `grace ${pod.terminationGracePeriodSeconds} s for a ${graceMs} ms drain after a 5 s preStop`,
      );
    }
  });
});

describe("the worker Deployment", () => {
  it("probes /startupz (startup: the model is loaded), /healthz (liveness) and /readyz (readiness) on the metrics port", () => {
    const c = podOf(workerOf(rendered.default!)).containers[0]!;
    assert.equal(c.startupProbe?.httpGet?.path, "/startupz");
    assert.equal(c.livenessProbe?.httpGet?.path, "/healthz");
    assert.equal(c.readinessProbe?.httpGet?.path, "/readyz");
    assert.equal(c.readinessProbe?.httpGet?.port, "metrics");
  });

  it("has a termination grace period longer than its own SHUTDOWN_GRACE_MS, for any value of it", () => {
    for (const graceMs of [0, 1, 25_000, 25_001, 120_000]) {
      const objs = render({ set: { "worker.shutdownGraceMs": graceMs } });
      const w = workerOf(objs);
      const env = containerEnv(objs, podOf(w).containers[0]!);
      assert.equal(Number(env.SHUTDOWN_GRACE_MS), graceMs);
      const seconds = podOf(w).terminationGracePeriodSeconds!;
      assert.ok(seconds * 1000 >= graceMs + 5000, `grace ${seconds}s vs SHUTDOWN_GRACE_MS ${graceMs}: at least 5 s to leave the group after the turns`);
    }
  });

  it("GPU by default: nvidia.com/gpu limit, the GPU toleration, LLAMA_GPU=cuda; the GPU variant adds its node selector", () => {
    for (const objs of [rendered.default!, rendered.gpu!]) {
      const spec = podOf(workerOf(objs));
      const c = spec.containers[0]!;
      assert.equal(c.resources?.limits?.["nvidia.com/gpu"], 1);
      assert.ok(spec.tolerations?.some((t) => t.key === "nvidia.com/gpu" && t.effect === "NoSchedule"));
      assert.equal(containerEnv(objs, c).LLAMA_GPU, "cuda");
    }
    assert.equal(podOf(workerOf(rendered.gpu!)).nodeSelector?.["nvidia.com/gpu.present"], "true");
  });

  it("CPU workers are one value away (worker.gpu.enabled=false): no GPU asked for, no GPU toleration, LLAMA_GPU=false", () => {
    const objs = rendered.cpu!;
    const spec = podOf(workerOf(objs));
    assert.equal(spec.containers[0]!.resources?.limits?.["nvidia.com/gpu"], undefined);
    assert.equal(spec.containers[0]!.resources?.requests?.["nvidia.com/gpu"], undefined);
    assert.ok(!spec.tolerations?.some((t) => t.key === "nvidia.com/gpu"));
    assert.equal(containerEnv(objs, spec.containers[0]!).LLAMA_GPU, "false");
  });

  it("model download: an init container fetches MODEL's hf: URI into the volume the worker reads", () => {
    const objs = rendered.default!;
    const spec = podOf(workerOf(objs));
    const init = spec.initContainers?.find((c) => c.name === "fetch-model");
    assert.ok(init);
    assert.deepEqual(init.args, ["dist/scripts/deploy/fetch-model.js"]);
    const initEnv = Object.fromEntries((init.env ?? []).map((e) => [e.name, e.value]));
    const env = containerEnv(objs, spec.containers[0]!);
    assert.equal(initEnv.MODEL, env.MODEL);
    assert.match(env.MODEL!, /^hf:/);
    assert.equal(initEnv.MODEL_DIR, env.MODEL_DIR);
    const mount = (c: Container) => c.volumeMounts!.find((m) => m.mountPath === env.MODEL_DIR)!.name;
    assert.equal(mount(init), mount(spec.containers[0]!));
    // GPU variant: the cache is a shared claim the chart creates (and keeps on uninstall).
    const gpu = rendered.gpu!;
    const pvc = find(gpu, "PersistentVolumeClaim", "-models");
    assert.equal(pvc.metadata.annotations?.["helm.sh/resource-policy"], "keep");
    const vol = podOf(workerOf(gpu)).volumes!.find((v) => v.name === "models")!;
    assert.deepEqual(vol.persistentVolumeClaim, { claimName: pvc.metadata.name });
    // ...and the HF token is a file, not an environment variable.
    const gpuInit = podOf(workerOf(gpu)).initContainers![0]!;
    assert.ok(gpuInit.env!.some((e) => e.name === "HF_TOKEN_PATH"));
    assert.ok(!JSON.stringify(gpu.filter((o) => o.kind !== "Secret")).includes("hf_example_token_for_rendering"));
  });

  it("state store: the worker mounts its volume at WORKER_STATE_DIR, an emptyDir by default, any volume source as an option", () => {
    const objs = rendered.default!;
    const spec = podOf(workerOf(objs));
    const dir = containerEnv(objs, spec.containers[0]!).WORKER_STATE_DIR!;
    assert.equal(dir, "/var/lib/kafka-llm/state");
    const mount = spec.containers[0]!.volumeMounts!.find((m) => m.mountPath === dir);
    assert.ok(mount, "a volume is mounted at the state dir");
    assert.deepEqual(spec.volumes!.find((v) => v.name === mount.name)!.emptyDir, { sizeLimit: "2Gi" });
    const file = path.join(secretsRoot, "state-ephemeral.yaml");
    writeFileSync(
      file,
      "worker:\n  stateStore:\n    volume:\n      emptyDir: null\n      ephemeral:\n        volumeClaimTemplate:\n          spec: { accessModes: [ReadWriteOnce], resources: { requests: { storage: 4Gi } } }\n",
    );
    const eph = podOf(workerOf(render({ valuesFiles: [file] })));
    const vol = eph.volumes!.find((v) => v.name === mount.name)!;
    assert.equal(vol.emptyDir, undefined);
    assert.deepEqual((vol as { ephemeral?: unknown }).ephemeral, {
      volumeClaimTemplate: { spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "4Gi" } } } },
    });
    writeFileSync(file, "worker:\n  stateStore:\n    volume:\n      hostPath: { path: /x }\n");
    assert.match(renderError({ valuesFiles: [file] }), /worker\.stateStore\.volume: Must have at most 1 properties/, "two sources at once are refused");
  });

  it("model from a PVC: mounted read-only, MODEL is the file in it, no init container", () => {
    const objs = rendered["external-kafka"]!;
    const spec = podOf(workerOf(objs));
    assert.equal(spec.initContainers, undefined);
    assert.equal(containerEnv(objs, spec.containers[0]!).MODEL, "/models/gemma-3-1b-it-Q4_K_M.gguf");
    const vol = spec.volumes!.find((v) => v.name === "models")!;
    assert.deepEqual(vol.persistentVolumeClaim, { claimName: "llm-models", readOnly: true });
  });

  it("pod deletion cost: POD_NAME/POD_NAMESPACE from the downward API, a token, and RBAC to patch pods", () => {
    const objs = rendered.default!;
    const spec = podOf(workerOf(objs));
    const env = spec.containers[0]!.env!;
    const field = (n: string) => (env.find((e) => e.name === n)?.valueFrom as { fieldRef?: { fieldPath: string } })?.fieldRef?.fieldPath;
    assert.equal(field("POD_NAME"), "metadata.name");
    assert.equal(field("POD_NAMESPACE"), "metadata.namespace");
    assert.equal(spec.automountServiceAccountToken, true);
    const role = find(objs, "Role", "-pod-deletion-cost");
    assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["pods"], verbs: ["patch"] }]);
    const binding = find(objs, "RoleBinding", "-pod-deletion-cost");
    assert.deepEqual((binding.subjects as unknown[])[0], { kind: "ServiceAccount", name: spec.serviceAccountName, namespace: "kafka-llm" });
    // Turned off: no token, no Role, and the worker is told.
    const off = render({ set: { "worker.podDeletionCost.enabled": false } });
    assert.equal(podOf(workerOf(off)).automountServiceAccountToken, false);
    assert.deepEqual(
      off.filter((o) => o.kind === "Role").map((r) => r.metadata.name),
      ["llm-kafka-llm-generated-secret"],
      "no pod-deletion-cost Role (the generated-Secret Job's own remains)",
    );
    assert.equal(off.filter((o) => o.kind === "ValidatingAdmissionPolicy" && o.metadata.name.endsWith(".worker-pods")).length, 0);
    assert.equal(containerEnv(off, podOf(workerOf(off)).containers[0]!).POD_DELETION_COST_INTERVAL_MS, "0");
    // Nothing else in the chart gets a token but the generated-Secret Job (its own account).
    for (const { owner, spec: s } of podSpecs(objs)) {
      if (owner.endsWith("-generated-secret")) assert.equal(s.serviceAccountName, "llm-kafka-llm-generated-secret", owner);
      else if (!owner.endsWith("-worker")) assert.equal(s.automountServiceAccountToken, false, owner);
    }
  });

  it("has no replica count of its own when autoscaled (an upgrade must not reset the autoscaler)", () => {
    assert.equal((workerOf(rendered.default!).spec as { replicas?: number }).replicas, undefined);
    const fixed = render({ set: { "autoscaling.enabled": false, "worker.replicas": 3 } });
    assert.equal((workerOf(fixed).spec as { replicas?: number }).replicas, 3);
    assert.equal(fixed.filter((o) => o.kind === "HorizontalPodAutoscaler").length, 0);
  });
});

describe("autoscaling", () => {
  it("HPA: autoscaling/v2 on the External backlog metric through prometheus-adapter, max ≤ partitions", () => {
    const objs = rendered.default!;
    const hpa = find(objs, "HorizontalPodAutoscaler");
    const spec = hpa.spec as {
      minReplicas: number;
      maxReplicas: number;
      scaleTargetRef: { name: string; kind: string };
      metrics: Array<{
        type: string;
        external: { metric: { name: string; selector: { matchLabels: Record<string, string> } }; target: { type: string; averageValue: string } };
      }>;
      behavior: { scaleUp: { stabilizationWindowSeconds: number }; scaleDown: { stabilizationWindowSeconds: number } };
    };
    assert.equal(hpa.apiVersion, "autoscaling/v2");
    assert.deepEqual([spec.scaleTargetRef.kind, spec.scaleTargetRef.name], ["Deployment", workerOf(objs).metadata.name]);
    assert.ok(spec.maxReplicas <= Number(kafkaEnv(objs).KAFKA_REQUEST_PARTITIONS));
    const [m] = spec.metrics;
    assert.equal(m!.type, "External");
    assert.equal(m!.external.metric.name, "kafka_llm_backlog_seconds");
    assert.deepEqual(m!.external.metric.selector.matchLabels, { app_kubernetes_io_instance: "llm" });
    assert.equal(m!.external.target.type, "AverageValue");
    assert.equal(spec.behavior.scaleUp.stabilizationWindowSeconds, 0, "scale up at once");
    assert.ok(spec.behavior.scaleDown.stabilizationWindowSeconds >= 60, "scale down stabilized");
    // The GPU variant scales on raw lag.
    const gpu = find(rendered.gpu!, "HorizontalPodAutoscaler").spec as typeof spec;
    assert.equal(gpu.metrics[0]!.external.metric.name, "kafka_llm_request_lag");
    assert.equal(gpu.metrics[0]!.external.target.averageValue, "16");
  });

  it("every variant keeps maxReplicas within the partition count; more is refused with a reason", () => {
    for (const objs of Object.values(rendered)) {
      const partitions = Number(kafkaEnv(objs).KAFKA_REQUEST_PARTITIONS);
      for (const o of objs) {
        if (o.kind === "HorizontalPodAutoscaler") assert.ok((o.spec as { maxReplicas: number }).maxReplicas <= partitions);
        if (o.kind === "ScaledObject") assert.ok((o.spec as { maxReplicaCount: number }).maxReplicaCount <= partitions);
      }
    }
    assert.match(renderError({ set: { "autoscaling.maxReplicas": 7 } }), /autoscaling.maxReplicas \(7\) is more than kafka.requestPartitions \(6\)/);
    assert.match(renderError({ valuesFiles: VARIANTS.keda!, set: { "kafka.requestPartitions": 4 } }), /is more than kafka.requestPartitions \(4\)/);
    assert.match(renderError({ set: { "autoscaling.minReplicas": 0 } }), /needs autoscaling.engine keda/);
    assert.match(renderError({ set: { "autoscaling.enabled": false, "worker.replicas": 9 } }), /worker.replicas \(9\) is more than/);
  });

  it("KEDA: a ScaledObject on KEDA's Apache Kafka scaler for the workers' group, the same behaviour, scale to zero allowed", () => {
    const objs = rendered.keda!;
    assert.equal(objs.filter((o) => o.kind === "HorizontalPodAutoscaler").length, 0, "KEDA makes its own HPA");
    assert.equal(objs.filter((o) => o.kind === "TriggerAuthentication").length, 0, "a plaintext broker needs no credentials");
    const so = find(objs, "ScaledObject");
    const spec = so.spec as ScaledObjectSpec;
    assert.equal(spec.minReplicaCount, 0);
    assert.deepEqual(
      spec.advanced.horizontalPodAutoscalerConfig.behavior,
      (find(rendered.default!, "HorizontalPodAutoscaler").spec as { behavior: unknown }).behavior,
    );
    assert.equal(spec.triggers.length, 1);
    const t = spec.triggers[0]!;
    assert.equal(t.type, "apache-kafka");
    assert.equal(t.metricType, "AverageValue");
    const kafka = kafkaEnv(objs);
    const worker = find(objs, "ConfigMap", "-worker").data as Record<string, string>;
    assert.deepEqual(
      {
        bootstrapServers: t.metadata.bootstrapServers,
        consumerGroup: t.metadata.consumerGroup,
        topic: t.metadata.topic,
        lagThreshold: t.metadata.lagThreshold,
        activationLagThreshold: t.metadata.activationLagThreshold,
        offsetResetPolicy: t.metadata.offsetResetPolicy,
        scaleToZeroOnInvalidOffset: t.metadata.scaleToZeroOnInvalidOffset,
        tls: t.metadata.tls,
      },
      {
        bootstrapServers: kafka.KAFKA_BROKERS,
        consumerGroup: worker.WORKER_GROUP_ID,
        topic: `${kafka.KAFKA_TOPIC_PREFIX}chat.requests`,
        lagThreshold: "8",
        activationLagThreshold: "0",
        offsetResetPolicy: "earliest",
        scaleToZeroOnInvalidOffset: "false",
        tls: "disable",
      },
      "the brokers, group and topic the workers use; a never-committed partition counts what the workers will read",
    );
    assert.equal(t.metadata.sasl, undefined);
    assert.equal(t.authenticationRef, undefined);
  });

  it("KEDA's Kafka scaler connects as the autoscaler's own user, through a TriggerAuthentication with the chart's TLS settings", async () => {
    const objs = render({ valuesFiles: [...VARIANTS["external-kafka"]!, ...VARIANTS.keda!], set: { "autoscaling.maxReplicas": 12 } });
    const problems = (await Promise.all(objs.map(validateObject))).flat();
    assert.deepEqual(problems, []);
    assert.deepEqual(unknownFieldErrors({ "external-kafka+keda": objs }), []);
    const t = (find(objs, "ScaledObject").spec as ScaledObjectSpec).triggers[0]!;
    assert.equal(t.metadata.bootstrapServers, kafkaEnv(objs).KAFKA_BROKERS);
    assert.equal(t.metadata.topic, "team-a.chat.requests");
    assert.equal(t.metadata.consumerGroup, "team-a-llm-workers");
    assert.equal(t.metadata.sasl, "scram_sha512");
    assert.equal(t.metadata.tls, "enable");
    const auth = find(objs, "TriggerAuthentication");
    assert.equal(t.authenticationRef?.name, auth.metadata.name);
    const spec = auth.spec as {
      configMapTargetRef: Array<{ parameter: string; name: string; key: string }>;
      secretTargetRef: Array<{ parameter: string; name: string; key: string }>;
    };
    const scalerCm = find(objs, "ConfigMap", "-kafka-scaler");
    assert.deepEqual(spec.configMapTargetRef, [{ parameter: "username", name: scalerCm.metadata.name, key: "username" }]);
    assert.deepEqual(scalerCm.data, { username: "team-a-llm-autoscaler" });
    assert.deepEqual(spec.secretTargetRef, [
      { parameter: "password", name: "team-a-llm-kafka-autoscaler", key: "password" },
      { parameter: "ca", name: "kafka-cluster-ca", key: "ca.crt" },
    ]);
    // The chart's own Secret when the password is in the values; the mechanism names KEDA's.
    const own = render({
      valuesFiles: VARIANTS.keda!,
      set: {
        "kafka.sasl.enabled": true,
        "kafka.sasl.mechanism": "scram-sha-256",
        "kafka.sasl.gateway.password": "g",
        "kafka.sasl.worker.password": "w",
        "kafka.sasl.topics.password": "t",
        "kafka.sasl.autoscaler.password": "a",
      },
    });
    const ownAuth = find(own, "TriggerAuthentication").spec as { secretTargetRef: Array<{ parameter: string; name: string; key: string }> };
    const ownSecret = find(own, "Secret");
    assert.deepEqual(ownAuth.secretTargetRef, [{ parameter: "password", name: ownSecret.metadata.name, key: "kafka-autoscaler-password" }]);
    assert.equal(Buffer.from((ownSecret.data as Record<string, string>)["kafka-autoscaler-password"]!, "base64").toString(), "a");
    assert.equal((find(own, "ScaledObject").spec as ScaledObjectSpec).triggers[0]!.metadata.sasl, "scram_sha256");
    // A TriggerAuthentication of the user's replaces the chart's.
    const theirs = render({
      valuesFiles: [...VARIANTS["external-kafka"]!, ...VARIANTS.keda!],
      set: { "autoscaling.maxReplicas": 12, "autoscaling.keda.authenticationRef": "mine" },
    });
    assert.equal(theirs.filter((o) => o.kind === "TriggerAuthentication").length, 0);
    assert.equal((find(theirs, "ScaledObject").spec as ScaledObjectSpec).triggers[0]!.authenticationRef?.name, "mine");
  });

  it("KEDA's Prometheus trigger instead: the chart's backlog query for this release", () => {
    const objs = render({ valuesFiles: VARIANTS.keda!, set: { "autoscaling.keda.trigger": "prometheus", "autoscaling.signal": "backlogSeconds" } });
    const t = (find(objs, "ScaledObject").spec as ScaledObjectSpec).triggers[0]!;
    assert.equal(t.type, "prometheus");
    assert.equal(t.metricType, "AverageValue");
    assert.equal(t.metadata.threshold, "30");
    assert.match(t.metadata.query!, /kafka_llm_consumer_group_total_lag\{namespace="kafka-llm",app_kubernetes_io_instance="llm"\}/);
    assert.match(t.metadata.query!, /or vector\(4\)\)$/, "the chart's slots stand in when no worker runs");
  });

  it("KEDA's Kafka trigger refuses what it cannot express, saying what to set", () => {
    assert.match(
      renderError({ set: { "autoscaling.engine": "keda" } }),
      /trigger kafka scales on the group's lag .*not backlogSeconds: set autoscaling.signal lag/,
    );
    assert.match(renderError({ valuesFiles: VARIANTS.keda!, set: { "autoscaling.target.lag": 2.5 } }), /autoscaling.target.lag \(2.5\) must be a whole number/);
    assert.match(
      renderError({ valuesFiles: VARIANTS.keda!, set: { "autoscaling.keda.activationThreshold": 0.5 } }),
      /activationThreshold \(0.5\) must be a whole number/,
    );
    assert.match(renderError({ valuesFiles: VARIANTS.keda!, set: { "autoscaling.keda.trigger": "cloudwatch" } }), /trigger/);
  });

  it("the shipped prometheus-adapter rules serve the metric names the HPA asks for", () => {
    const adapter = readFileSync(path.join(REPO_ROOT, "deploy/prometheus-adapter/values.yaml"), "utf8");
    for (const objs of [rendered.default!, rendered.gpu!]) {
      const hpa = find(objs, "HorizontalPodAutoscaler").spec as { metrics: Array<{ external: { metric: { name: string } } }> };
      assert.match(adapter, new RegExp(`as: "${hpa.metrics[0]!.external.metric.name}"`));
    }
  });
});

describe("topics, config and secrets", () => {
  it("a topics Job per release revision runs the topic creator with the services' Kafka settings", () => {
    const objs = rendered.default!;
    const job = find(objs, "Job", "-topics-1");
    assert.match(job.metadata.name, /-topics-1$/);
    const c = (job.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;
    assert.deepEqual(c.args, ["dist/scripts/deploy/create-topics.js"]);
    const cfg = loadKafkaConfig(podEnv(objs, job));
    assert.equal(cfg.requestPartitions, 6);
    assert.equal(cfg.conversationTtlMs, 604_800_000);
    assert.deepEqual(
      cfg.history,
      { retentionMs: 604_800_000, partitions: 6, replicationFactor: -1 },
      "chat.history defaults to the memory's TTL and the requests' partitions",
    );
    const extObjs = rendered["external-kafka"]!;
    const ext = loadKafkaConfig(podEnv(extObjs, find(extObjs, "Job", "-topics-1")));
    assert.deepEqual(ext.history, { retentionMs: 2_592_000_000, partitions: 24, replicationFactor: 3 });
    assert.deepEqual([ext.topicPrefix, ext.requestPartitions, ext.replicationFactor, ext.ensureTopics], ["team-a.", 12, 3, false]);
    assert.equal(ext.sasl?.mechanism, "scram-sha-512");
    assert.equal(ext.sasl?.username, "team-a-llm-topics", "the topics Job's own user");
    assert.equal(ext.sasl?.password, `${STAND_IN}-password`, "the password is read from the mounted Secret file");
    assert.match(ext.tls?.ca ?? "", /BEGIN CERTIFICATE/);
  });

  for (const name of Object.keys(VARIANTS)) {
    it(`${name}: the gateway's and workers' settings parse with the services' own config loaders`, () => {
      const objs = rendered[name]!;
      const w = loadWorkerConfig(podEnv(objs, workerOf(objs)));
      const g = loadGatewayConfig(podEnv(objs, gatewayOf(objs)));
      assert.equal(g.workerGroupId, w.workerGroupId, "the gateway reads the lag of the workers' group");
      assert.equal(w.kafka.requestPartitions, g.kafka.requestPartitions);
      assert.equal(w.kafka.topicPrefix, g.kafka.topicPrefix);
      assert.equal(w.http.port, Number((podOf(workerOf(objs)).containers[0]! as { ports?: Array<{ containerPort: number }> }).ports?.[0]?.containerPort));
      assert.equal(g.auth.mode, "keys");
      assert.match(g.auth.keysFile ?? "", /\/etc\/kafka-llm\/api-keys\/api-keys$/, "the mounted keys file");
    });
  }

  it("every environment variable the chart sets is one the code reads", () => {
    const sources = readSources(["contracts", "worker", "gateway", "platform", "scripts/deploy"]);
    // Read by node-llama-cpp itself.
    const llama = readFileSync(path.join(REPO_ROOT, "node_modules/node-llama-cpp/dist/utils/modelFileAccessTokens.js"), "utf8");
    const unread = new Map<string, string[]>();
    for (const [variant, objs] of Object.entries(rendered)) {
      for (const { owner, spec } of podSpecs(objs)) {
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const name of Object.keys(containerEnv(objs, c))) {
            const read = new RegExp(`(["'\`]${name}["'\`]|\\b${name}\\s*:|env\\.${name}\\b)`).test(sources) || llama.includes(`process.env.${name}`);
            if (!read) unread.set(name, [...(unread.get(name) ?? []), `${variant}: ${owner}/${c.name}`]);
          }
        }
      }
    }
    assert.deepEqual(
      [...unread.keys()],
      [],
      `set by the chart but read by no code (add them to contracts/config/, or stop setting them):\n${[...unread].map(([n, where]) => `  ${n}: ${where.join(", ")}`).join("\n")}`,
    );
  });

  it("API keys, the SASL password and the HF token are mounted files from Secrets, never env values", () => {
    for (const objs of Object.values(rendered)) {
      for (const { owner, spec } of podSpecs(objs)) {
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const e of c.env ?? []) {
            assert.doesNotMatch(e.name, /PASSWORD$|TOKEN$|API_KEYS$/, `${owner}/${c.name}: ${e.name} as an env value`);
            assert.equal((e.valueFrom as { secretKeyRef?: unknown })?.secretKeyRef, undefined, `${owner}: secrets as files`);
          }
        }
      }
    }
    const ext = rendered["external-kafka"]!;
    assert.equal(ext.filter((o) => o.kind === "Secret").length, 0, "existing Secrets only: the chart makes none");
    const vols = podOf(gatewayOf(ext)).volumes!;
    assert.deepEqual(vols.find((v) => v.name === "kafka-sasl")!.secret, {
      secretName: "team-a-llm-kafka-gateway",
      items: [{ key: "password", path: "password" }],
    });
    assert.deepEqual(vols.find((v) => v.name === "kafka-ca")!.secret, { secretName: "kafka-cluster-ca", items: [{ key: "ca.crt", path: "ca.crt" }] });
    assert.deepEqual(vols.find((v) => v.name === "api-keys")!.secret, { secretName: "team-a-llm-api-keys", items: [{ key: "keys.txt", path: "api-keys" }] });
    const env = containerEnv(ext, podOf(gatewayOf(ext)).containers[0]!);
    assert.deepEqual(
      [env.KAFKA_SASL_MECHANISM, env.KAFKA_SASL_USERNAME, env.KAFKA_SASL_PASSWORD_FILE, env.KAFKA_TLS, env.KAFKA_TLS_CA_FILE],
      ["scram-sha-512", "team-a-llm-gateway", "/etc/kafka-llm/kafka-sasl/password", "true", "/etc/kafka-llm/kafka-ca/ca.crt"],
    );
    // Default: no secret material in the chart's output; the generated-Secret Job makes the
    // key for tenant "default" and the internal token (chart-generated-secret.test.ts).
    assert.equal(rendered.default!.filter((o) => o.kind === "Secret").length, 0);
    const gwVols = podOf(gatewayOf(rendered.default!)).volumes!;
    assert.deepEqual(gwVols.find((v) => v.name === "api-keys")!.secret, {
      secretName: "llm-kafka-llm-generated",
      items: [{ key: "api-keys", path: "api-keys" }],
    });
  });

  it("values.schema.json refuses unknown keys and bad values", () => {
    assert.match(renderError({ set: { "worker.slotz": 4 } }), /Additional property slotz is not allowed/);
    assert.match(renderError({ set: { "autoscaling.engine": "vpa" } }), /autoscaling.engine/);
    assert.match(renderError({ set: { "kafka.brokers": "no-port" } }), /kafka.brokers/);
    assert.match(renderError({ set: { "kafka.sasl.username": "u" } }), /Additional property username is not allowed/, "one user per component, none shared");
  });
});

describe("monitoring, disruption, network", () => {
  it("ServiceMonitor / PodMonitor carry the release label onto series, for the queries that select by it", () => {
    for (const [variant, kind] of [
      ["gpu", "ServiceMonitor"],
      ["keda", "PodMonitor"],
    ] as const) {
      const monitors = rendered[variant]!.filter((o) => o.kind === kind);
      assert.equal(monitors.length, 2, `${variant}: gateway and worker`);
      for (const m of monitors) {
        assert.deepEqual((m.spec as { podTargetLabels: string[] }).podTargetLabels, ["app.kubernetes.io/instance", "app.kubernetes.io/component"]);
      }
    }
    assert.equal(find(rendered.gpu!, "ServiceMonitor", "-worker").metadata.labels?.release, "kube-prometheus-stack");
  });

  it("PodDisruptionBudgets for gateway and workers", () => {
    const pdbs = rendered.default!.filter((o) => o.kind === "PodDisruptionBudget");
    assert.deepEqual(pdbs.map((p) => p.metadata.name).sort(), ["llm-kafka-llm-gateway", "llm-kafka-llm-worker"]);
  });

  it("NetworkPolicies (GPU variant): gateway port from the ingress namespace, metrics from monitoring, egress limited", () => {
    const nps = rendered.gpu!.filter((o) => o.kind === "NetworkPolicy");
    assert.equal(nps.length, 2);
    const gw = nps.find((n) => n.metadata.name.endsWith("-gateway"))!.spec as { policyTypes: string[]; ingress: Array<{ from?: unknown[] }> };
    assert.deepEqual(gw.policyTypes, ["Ingress", "Egress"]);
    assert.ok(gw.ingress.every((r) => Array.isArray(r.from) && r.from.length > 0));
  });

  it("NetworkPolicy: the workers' ops port (conversation reads, metrics) takes only the gateway pods and the scrapers", () => {
    type Rule = { ports: Array<{ port: string | number }>; from?: Array<Record<string, unknown>> };
    const workerRules = (objs: K8sObject[]) => (find(objs, "NetworkPolicy", "-worker").spec as { ingress: Rule[] }).ingress;
    const gatewayPods = {
      podSelector: { matchLabels: { "app.kubernetes.io/name": "kafka-llm", "app.kubernetes.io/instance": "llm", "app.kubernetes.io/component": "gateway" } },
    };
    const monitoring = { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } };
    // Every rule names its sources: an ingress rule without "from" would admit any pod.
    assert.deepEqual(workerRules(rendered.gpu!), [
      { ports: [{ port: "metrics", protocol: "TCP" }], from: [gatewayPods] },
      { ports: [{ port: "metrics", protocol: "TCP" }], from: [monitoring] },
    ]);
    const noScrapers = render({ valuesFiles: VARIANTS.gpu!, set: { "networkPolicy.metricsFrom": [] } });
    assert.deepEqual(workerRules(noScrapers), [{ ports: [{ port: "metrics", protocol: "TCP" }], from: [gatewayPods] }], "no metricsFrom: the gateways only");
  });

  it("dashboards: one ConfigMap per dashboard JSON in the chart, labelled for the Grafana sidecar, content identical", () => {
    const dir = path.join(CHART_DIR, "dashboards");
    assert.ok(!lstatSync(dir).isSymbolicLink(), "the chart carries real files, not a link helm warns about");
    const files = readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .sort();
    assert.ok(files.length >= 2);
    const cms = rendered.default!.filter((o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1");
    assert.equal(cms.length, files.length);
    for (const f of files) {
      const cm = cms.find((c) => Object.keys(c.data as object)[0] === f);
      assert.ok(cm, `${f} is shipped`);
      assert.equal((cm.data as Record<string, string>)[f], readFileSync(path.join(dir, f), "utf8").trimEnd());
      assert.equal(cm.metadata.annotations?.grafana_folder, "kafka-llm");
    }
    const elsewhere = rendered["external-kafka"]!.filter((o) => o.metadata.labels?.grafana_dashboard === "1");
    assert.ok(elsewhere.every((c) => c.metadata.namespace === "monitoring"));
  });
});

describe("helm package", () => {
  it("packages the chart without a warning, with the dashboards inside", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "chart-package-"));
    try {
      const r = helm(["package", ".", "--destination", out]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, "", "helm package says nothing on stderr (no symbolic-link warning)");
      const tgz = readdirSync(out).find((f) => f.endsWith(".tgz"));
      assert.ok(tgz, r.stdout);
      const list = spawnSync("tar", ["-tzf", path.join(out, tgz)], { encoding: "utf8" });
      assert.equal(list.status, 0, list.stderr);
      const shipped = list.stdout
        .split("\n")
        .filter((f) => f.startsWith("kafka-llm/dashboards/") && f.endsWith(".json"))
        .map((f) => path.basename(f))
        .sort();
      assert.deepEqual(
        shipped,
        readdirSync(path.join(CHART_DIR, "dashboards"))
          .filter((f) => f.endsWith(".json"))
          .sort(),
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe("helm test and NOTES.txt", () => {
  it("the test hook runs one chat turn against the gateway Service with the release's first API key", () => {
    const objs = rendered.default!;
    const pod = find(objs, "Pod", "-test-chat-turn");
    assert.equal(pod.metadata.annotations?.["helm.sh/hook"], "test");
    const c = (pod.spec as { containers: Container[] }).containers[0]!;
    assert.deepEqual(c.args, ["dist/scripts/deploy/chat-turn.js"]);
    const env = containerEnv(objs, c);
    const svc = find(objs, "Service", "-gateway");
    const port = (svc.spec as { ports: Array<{ port: number }> }).ports[0]!.port;
    assert.equal(env.GATEWAY_URL, `http://${svc.metadata.name}:${port}`);
    assert.equal(env.GATEWAY_API_KEYS_FILE, "/etc/kafka-llm/api-keys/api-keys");
  });

  it("NOTES.txt prints the port-forward command and a curl that streams a reply", () => {
    const notes = renderNotes();
    assert.match(notes, /kubectl -n kafka-llm port-forward svc\/llm-kafka-llm-gateway 8080:8080/);
    assert.match(notes, /curl -s -X POST http:\/\/127\.0\.0\.1:8080\/v1\/conversations\/demo\/messages/);
    assert.match(notes, /-H "authorization: Bearer \$KEY"/);
    assert.match(notes, /kubectl -n kafka-llm get secret llm-kafka-llm-generated -o jsonpath='\{\.data\.api-keys\}'/);
    assert.match(notes, /curl -N -H "authorization: Bearer \$KEY" http:\/\/127\.0\.0\.1:8080\/v1\/requests\/\$rid\/events/);
    assert.match(notes, /helm test llm -n kafka-llm --logs/);
    assert.match(notes, /Workers run on GPUs: each asks for 1 nvidia\.com\/gpu \(LLAMA_GPU=cuda\)/);
    assert.match(notes, /For CPU workers: --set worker\.gpu\.enabled=false/);
    assert.match(renderNotes({ valuesFiles: VARIANTS.cpu }), /Workers run on CPUs \(worker\.gpu\.enabled=false\)/);
    const open = renderNotes({ set: { "gateway.auth.mode": "none" } });
    assert.doesNotMatch(open, /Bearer/);
    assert.match(open, /curl -N http:\/\/127\.0\.0\.1:8080\/v1\/requests\/\$rid\/events/);
  });

  it("tracing: off by default; on, both services get the OTEL_* variables their config reads, and a restricted egress lets spans out", () => {
    const env = (objs: K8sObject[], component: string) => find(objs, "ConfigMap", `-${component}`).data as Record<string, string>;
    for (const component of ["gateway", "worker"]) {
      const off = env(render(), component);
      assert.equal(loadTracingConfig("x", off).enabled, false, `${component}: no span without tracing.enabled`);
    }
    const on = render({
      set: {
        "tracing.enabled": true,
        "tracing.otlpEndpoint": "http://otel-collector.observability:4318",
        "tracing.samplerRatio": 0.1,
        "tracing.resourceAttributes": "deployment.environment.name=prod",
        "networkPolicy.enabled": true,
        "networkPolicy.egress.enabled": true,
      },
    });
    for (const component of ["gateway", "worker"]) {
      const config = loadTracingConfig(`kafka-llm-${component}`, env(on, component));
      assert.equal(config.enabled, true);
      assert.deepEqual(config.sampler, { kind: "parentbased_traceidratio", ratio: 0.1 });
      assert.equal(config.captureContent, false, "prompt text stays out of spans unless asked");
      assert.equal(env(on, component).OTEL_RESOURCE_ATTRIBUTES, "deployment.environment.name=prod");
      const policy = on.find((o) => o.kind === "NetworkPolicy" && o.metadata.name.endsWith(component))!;
      const ports = (policy.spec as { egress: Array<{ ports: Array<{ port: number }> }> }).egress.flatMap((e) => e.ports.map((p) => p.port));
      assert.ok(ports.includes(4318), `${component}: egress to the collector's port (${ports.join(", ")})`);
    }
    assert.match(renderError({ set: { "tracing.enabled": true } }), /tracing\.otlpEndpoint/, "on without an endpoint is refused");
  });
});

/**
 * Model pools (pools in the values; docs/kubernetes.md, "Model pools"): ci/pools-values.yaml
 * declares pools small (CPU) and large (GPU, one LoRA adapter). Each gets its own worker
 * Deployment, HPA or ScaledObject on its own lag, and PDB; the one gateway is unchanged; the
 * topics Job is told the pools (KAFKA_POOLS). pools: [] renders the workers as before pools
 * (every check above).
 */
describe("model pools", () => {
  const pools: Record<string, K8sObject[]> = {};
  before(() => {
    pools.hpa = render({ valuesFiles: POOLS_VALUES });
    pools.keda = render({ valuesFiles: [...POOLS_VALUES, ...VARIANTS.keda!] });
    pools.prometheus = render({
      valuesFiles: [...POOLS_VALUES, ...VARIANTS.keda!],
      set: { "autoscaling.keda.trigger": "prometheus", "autoscaling.signal": "backlogSeconds" },
    });
  });
  const workers = (objs: K8sObject[]) => objs.filter((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "worker");
  const ofPool = (objs: K8sObject[], kind: string, pool: string) => find(objs, kind, `-worker-${pool}`);
  const env = (objs: K8sObject[], d: K8sObject) => containerEnv(objs, podOf(d).containers[0]!);

  it("helm lint --strict passes; every object is valid against its schema, with no unknown field", async () => {
    for (const files of [POOLS_VALUES, [...POOLS_VALUES, ...VARIANTS.keda!]]) {
      const r = lint({ valuesFiles: files });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    }
    for (const objs of Object.values(pools)) assert.deepEqual((await Promise.all(withSchema(objs).map(validateObject))).flat(), []);
    assert.deepEqual(unknownFieldErrors(Object.fromEntries(Object.entries(pools).map(([n, objs]) => [`pools-${n}`, withSchema(objs)]))), []);
  });

  it("a worker Deployment per pool, labelled and selected by its pool; none of the single pool's", () => {
    const objs = pools.hpa!;
    assert.deepEqual(
      workers(objs).map((d) => d.metadata.name),
      ["llm-kafka-llm-worker-small", "llm-kafka-llm-worker-large"],
    );
    assert.equal(
      objs.filter((o) => o.metadata.name === "llm-kafka-llm-worker" && o.kind !== "ConfigMap" && o.kind !== "Service" && o.kind !== "ServiceAccount").length,
      0,
    );
    for (const pool of ["small", "large"]) {
      const d = ofPool(objs, "Deployment", pool);
      const spec = d.spec as {
        selector: { matchLabels: Record<string, string> };
        template: { metadata: { labels: Record<string, string> } };
        replicas?: number;
      };
      assert.equal(d.metadata.labels?.["kafka-llm/pool"], pool);
      assert.equal(spec.selector.matchLabels["kafka-llm/pool"], pool);
      assert.equal(spec.template.metadata.labels["kafka-llm/pool"], pool);
      assert.equal(spec.replicas, undefined, "autoscaled: no replica count of its own");
      // Disjoint: the other pool's pods do not match this selector.
      const other = ofPool(objs, "Deployment", pool === "small" ? "large" : "small");
      const otherLabels = (other.spec as typeof spec).template.metadata.labels;
      assert.ok(!Object.entries(spec.selector.matchLabels).every(([k, v]) => otherLabels[k] === v), `${pool}'s selector takes only its own pods`);
    }
    // Still one gateway, one worker Service (metrics) and NetworkPolicy selector for all pools.
    assert.equal(objs.filter((o) => o.kind === "Deployment" && o.metadata.name.endsWith("-gateway")).length, 1);
    const svc = find(objs, "Service", "-worker").spec as { selector: Record<string, string> };
    assert.equal(svc.selector["kafka-llm/pool"], undefined);
  });

  it("each pool's workers get WORKER_POOL, MODEL_NAME, MODEL (and MODEL_ADAPTERS), its device and slots; their config names its topic and group", () => {
    const objs = pools.hpa!;
    const small = ofPool(objs, "Deployment", "small");
    const large = ofPool(objs, "Deployment", "large");
    const pick = (e: Record<string, string>) => ({
      WORKER_POOL: e.WORKER_POOL,
      MODEL_NAME: e.MODEL_NAME,
      MODEL: e.MODEL,
      MODEL_ADAPTERS: e.MODEL_ADAPTERS,
      ADAPTER_SLOTS: e.ADAPTER_SLOTS,
      LLAMA_GPU: e.LLAMA_GPU,
      WORKER_SLOTS: e.WORKER_SLOTS,
      WORKER_GROUP_ID: e.WORKER_GROUP_ID,
    });
    assert.deepEqual(pick(env(objs, small)), {
      WORKER_POOL: "small",
      MODEL_NAME: "gemma-3-270m",
      MODEL: "hf:unsloth/gemma-3-270m-it-GGUF:Q8_0",
      MODEL_ADAPTERS: undefined,
      ADAPTER_SLOTS: undefined,
      LLAMA_GPU: "false",
      WORKER_SLOTS: "2",
      WORKER_GROUP_ID: "kafka-llm-workers",
    });
    assert.deepEqual(pick(env(objs, large)), {
      WORKER_POOL: "large",
      MODEL_NAME: "gemma-3-4b",
      MODEL: "hf:unsloth/gemma-3-4b-it-GGUF:Q4_K_M",
      MODEL_ADAPTERS: "gemma-3-4b-sql=hf:example/gemma-3-4b-sql-lora/gemma-3-4b-sql-lora.gguf",
      ADAPTER_SLOTS: "2",
      LLAMA_GPU: "cuda",
      WORKER_SLOTS: "8",
      WORKER_GROUP_ID: "kafka-llm-workers",
    });
    // Device: the CPU pool asks for no GPU and tolerates none; the GPU pool does.
    assert.equal(podOf(small).containers[0]!.resources?.limits?.["nvidia.com/gpu"], undefined);
    assert.deepEqual(podOf(small).containers[0]!.resources?.limits, { cpu: "2", memory: "2Gi" }, "the pool's own resources");
    assert.ok(!podOf(small).tolerations?.some((t) => t.key === "nvidia.com/gpu"));
    assert.equal(podOf(large).containers[0]!.resources?.limits?.["nvidia.com/gpu"], 1);
    assert.ok(podOf(large).tolerations?.some((t) => t.key === "nvidia.com/gpu"));
    // The adapter is fetched into the model volume beside the model, like it.
    assert.deepEqual(
      podOf(large).initContainers!.map((c) => [c.name, c.env!.find((e) => e.name === "MODEL")!.value]),
      [
        ["fetch-model", "hf:unsloth/gemma-3-4b-it-GGUF:Q4_K_M"],
        ["fetch-adapter-0", "hf:example/gemma-3-4b-sql-lora/gemma-3-4b-sql-lora.gguf"],
      ],
    );
    // The worker's own loader reads the pool: its group is the pool's (contracts/pools.ts).
    for (const [pool, d] of [
      ["small", small],
      ["large", large],
    ] as const) {
      const config = loadWorkerConfig(podEnv(objs, d));
      assert.equal(config.pool.name, pool);
      assert.equal(config.pool.group, `kafka-llm-workers.pool.${pool}`);
      assert.equal(config.pool.modelName, env(objs, d).MODEL_NAME);
    }
    const largeConfig = loadWorkerConfig(podEnv(objs, large));
    assert.deepEqual(largeConfig.pool.adapters, [{ name: "gemma-3-4b-sql", source: "hf:example/gemma-3-4b-sql-lora/gemma-3-4b-sql-lora.gguf" }]);
    assert.equal(largeConfig.pool.adapterSlots, 2);
  });

  it("an HPA per pool on its own lag: the External metric's selector names the pool; the pool's bounds and target", () => {
    const objs = pools.hpa!;
    type Hpa = {
      scaleTargetRef: { name: string };
      minReplicas: number;
      maxReplicas: number;
      metrics: Array<{ external: { metric: { name: string; selector: { matchLabels: Record<string, string> } }; target: { averageValue: string } } }>;
    };
    const hpas = objs.filter((o) => o.kind === "HorizontalPodAutoscaler");
    assert.deepEqual(
      hpas.map((h) => h.metadata.name),
      ["llm-kafka-llm-worker-small", "llm-kafka-llm-worker-large"],
    );
    const small = ofPool(objs, "HorizontalPodAutoscaler", "small").spec as Hpa;
    const large = ofPool(objs, "HorizontalPodAutoscaler", "large").spec as Hpa;
    assert.deepEqual(
      [small.scaleTargetRef.name, small.minReplicas, small.maxReplicas, small.metrics[0]!.external.metric.name, small.metrics[0]!.external.target.averageValue],
      ["llm-kafka-llm-worker-small", 1, 3, "kafka_llm_request_lag", "4"],
      "small: its own overrides (signal lag, target 4, 1..3)",
    );
    assert.deepEqual(
      [large.scaleTargetRef.name, large.minReplicas, large.maxReplicas, large.metrics[0]!.external.metric.name, large.metrics[0]!.external.target.averageValue],
      ["llm-kafka-llm-worker-large", 1, 6, "kafka_llm_backlog_seconds", "30"],
      "large: autoscaling.* but its maxReplicas",
    );
    assert.deepEqual(small.metrics[0]!.external.metric.selector.matchLabels, { app_kubernetes_io_instance: "llm", pool: "small" });
    assert.deepEqual(large.metrics[0]!.external.metric.selector.matchLabels, { app_kubernetes_io_instance: "llm", pool: "large" });
    // A PDB per pool, selecting its pool's pods.
    const pdbs = objs.filter((o) => o.kind === "PodDisruptionBudget");
    assert.deepEqual(pdbs.map((p) => p.metadata.name).sort(), ["llm-kafka-llm-gateway", "llm-kafka-llm-worker-large", "llm-kafka-llm-worker-small"]);
    assert.equal(
      (ofPool(objs, "PodDisruptionBudget", "small").spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels["kafka-llm/pool"],
      "small",
    );
  });

  it("KEDA: a ScaledObject per pool; the Kafka trigger reads the pool's request topic and group, the Prometheus one the pool's series", () => {
    for (const pool of ["small", "large"]) {
      const so = ofPool(pools.keda!, "ScaledObject", pool).spec as ScaledObjectSpec & { scaleTargetRef: { name: string } };
      assert.equal(so.scaleTargetRef.name, `llm-kafka-llm-worker-${pool}`);
      const t = so.triggers[0]!;
      assert.equal(t.type, "apache-kafka");
      assert.equal(t.metadata.topic, poolTopics("", pool).requests);
      assert.equal(t.metadata.topic, `chat.requests.pool.${pool}`);
      assert.equal(t.metadata.consumerGroup, poolGroup("kafka-llm-workers", pool));
      assert.equal(t.metadata.lagThreshold, pool === "small" ? "4" : "8");
      assert.equal(so.minReplicaCount, pool === "small" ? 1 : 0, "large scales to zero (ci/keda-values.yaml); small keeps its own minReplicas");
      const q = (ofPool(pools.prometheus!, "ScaledObject", pool).spec as ScaledObjectSpec).triggers[0]!.metadata.query!;
      const slots = pool === "small" ? 2 : 8;
      const m = `namespace="kafka-llm",app_kubernetes_io_instance="llm",pool="${pool}"`;
      if (pool === "small") assert.equal(q, `max(kafka_llm_consumer_group_total_lag{${m}})`, "small scales on lag (its own signal)");
      else
        assert.equal(
          q,
          `max(kafka_llm_consumer_group_total_lag{${m}}) * scalar(clamp_min(max(kafka_llm_recent_turn_duration_seconds{${m}}), 1) or vector(1)) / scalar(max(kafka_llm_worker_slots{${m}}) or vector(${slots}))`,
        );
    }
    assert.equal(pools.keda!.filter((o) => o.kind === "HorizontalPodAutoscaler").length, 0);
    // A pool named default keeps the topic and group of before pools.
    const withDefault = render({
      valuesFiles: VARIANTS.keda!,
      set: {
        pools: [
          { name: "default", model: { name: "base" } },
          { name: "b", model: { name: "other" }, autoscaling: { minReplicas: 1 } },
        ],
      },
    });
    const t = (find(withDefault, "ScaledObject", "-worker-default").spec as ScaledObjectSpec).triggers[0]!;
    assert.deepEqual([t.metadata.topic, t.metadata.consumerGroup], ["chat.requests", "kafka-llm-workers"]);
    assert.equal(env(withDefault, find(withDefault, "Deployment", "-worker-default")).WORKER_POOL, "default");
    assert.equal(
      (find(withDefault, "ConfigMap", "-gateway").data as Record<string, string>).MODEL_NAME,
      "base",
      "the gateway's MODEL_NAME is the default pool's",
    );
  });

  it("the topics Job is told the release's pools (KAFKA_POOLS), which its own parser accepts", () => {
    const kafkaPools = (objs: K8sObject[]) => containerEnv(objs, podOf(find(objs, "Job", "-topics-1")).containers[0]!).KAFKA_POOLS!;
    assert.deepEqual(parsePools(kafkaPools(pools.hpa!)), [
      { pool: "small", models: ["gemma-3-270m"] },
      { pool: "large", models: ["gemma-3-4b", "gemma-3-4b-sql"], adapters: { "gemma-3-4b-sql": "gemma-3-4b" } },
    ]);
    // pools: [] declares the default pool with the gateway's model name, which the worker declares too.
    const single = rendered.default!;
    assert.deepEqual(parsePools(kafkaPools(single)), [{ pool: "default", models: ["kafka-llm"] }]);
    const named = render({ set: { "model.name": "gemma-3-1b" } });
    assert.deepEqual(parsePools(kafkaPools(named)), [{ pool: "default", models: ["gemma-3-1b"] }]);
    assert.equal(loadWorkerConfig(podEnv(named, workerOf(named))).pool.modelName, "gemma-3-1b");
    assert.equal(loadGatewayConfig(podEnv(named, gatewayOf(named))).modelName, "gemma-3-1b");
    const viaGateway = render({ set: { "gateway.env.MODEL_NAME": "legacy-name" } });
    assert.deepEqual(parsePools(kafkaPools(viaGateway)), [{ pool: "default", models: ["legacy-name"] }]);
    assert.match(renderError({ set: { "model.name": "a", "gateway.env.MODEL_NAME": "b" } }), /model.name \(a\) and gateway.env.MODEL_NAME \(b\) differ/);
  });

  it("the pods are non-root and read-only, run built entry points, and every variable they get is one the code reads", () => {
    const sources = readSources(["contracts", "worker", "gateway", "platform", "scripts/deploy"]);
    const unread = new Set<string>();
    for (const objs of Object.values(pools)) {
      for (const { owner, spec } of podSpecs(objs)) {
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${owner}/${c.name}`);
          assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], `${owner}/${c.name}`);
          assert.ok(IMAGE_ENTRY_POINTS.includes(c.args![0]!), `${owner}/${c.name}: ${c.args![0]}`);
          for (const name of Object.keys(containerEnv(objs, c))) {
            if (!new RegExp(`(["'\`]${name}["'\`]|\\b${name}\\s*:|env\\.${name}\\b)`).test(sources)) unread.add(name);
          }
        }
      }
    }
    assert.deepEqual([...unread], [], "set by the chart but read by no code");
  });

  it("values.schema.json and the chart refuse a bad pool: its name, a name twice, a model name twice, settings that are the release's", () => {
    const refused = (list: unknown[]) => renderError({ set: { pools: list } });
    const m = (name: string) => ({ name });
    assert.match(refused([{ name: "Small", model: m("a") }]), /pools\.0\.name: Does not match pattern/, "a DNS label: lower case");
    assert.match(refused([{ name: "small_1", model: m("a") }]), /pools\.0\.name: Does not match pattern/);
    assert.match(refused([{ name: "-small", model: m("a") }]), /pools\.0\.name: Does not match pattern/);
    assert.match(refused([{ name: "a".repeat(41), model: m("a") }]), /pools\.0\.name/, "at most 40 characters");
    assert.equal(workers(render({ set: { pools: [{ name: "a".repeat(40), model: m("a") }] } })).length, 1, "40 is fine");
    assert.match(refused([{ name: "small" }]), /pools\.0: model is required/);
    assert.match(refused([{ name: "small", model: m("has space") }]), /pools\.0\.model\.name: Does not match pattern/);
    assert.match(refused([{ name: "small", model: m("a"), color: "red" }]), /Additional property color is not allowed/);
    assert.match(
      refused([{ name: "small", model: m("a"), autoscaling: { engine: "keda" } }]),
      /Additional property engine is not allowed/,
      "the engine is the release's",
    );
    assert.match(refused([{ name: "small", model: m("a"), device: "tpu" }]), /pools\.0\.device/);
    assert.match(refused([{ name: "small", model: m("a"), adapters: [{ name: "x,y", uri: "hf:a/b/c.gguf" }] }]), /pools\.0\.adapters\.0\.name/);
    // What JSON Schema cannot say, the chart does.
    assert.match(
      refused([
        { name: "small", model: m("a") },
        { name: "small", model: m("b") },
      ]),
      /two pools are named small/,
    );
    assert.match(
      refused([
        { name: "small", model: m("a") },
        { name: "large", model: m("a") },
      ]),
      /model name a is served by pool small and by pool large/,
    );
    assert.match(
      refused([
        { name: "small", model: m("a"), adapters: [{ name: "b", uri: "hf:x/y/z.gguf" }] },
        { name: "large", model: m("b") },
      ]),
      /model name b is served by pool small and by pool large/,
      "an adapter's name is a model name too",
    );
    assert.match(
      refused([{ name: "small", model: m("a"), autoscaling: { maxReplicas: 7 } }]),
      /pools\[small\]\.autoscaling\.maxReplicas \(7\) is more than kafka\.requestPartitions \(6\)/,
    );
    assert.match(
      refused([{ name: "small", model: m("a"), autoscaling: { minReplicas: 0 } }]),
      /pools\[small\]\.autoscaling\.minReplicas 0 needs autoscaling\.engine keda/,
    );
    assert.match(refused([{ name: "small", model: m("a"), autoscaling: { enabled: false }, replicas: 9 }]), /pools\[small\]\.replicas \(9\) is more than/);
    assert.match(refused([{ name: "small", model: { name: "a", source: "pvc" } }]), /pools\[small\]\.model\.source pvc needs/);
    assert.match(
      refused([{ name: "small", model: m("a"), adapters: [{ name: "b", uri: "b.gguf" }] }]),
      /pools\[small\]\.adapters\[b\]\.uri must be an hf: URI/,
    );
  });

  it("what a pool leaves out comes from worker.*, model.* and autoscaling.*; false and 0 override too", () => {
    const objs = render({
      valuesFiles: VARIANTS.keda!,
      set: {
        "worker.slots": 6,
        "model.source": "pvc",
        "model.pvc.claimName": "models",
        "model.pvc.file": "base.gguf",
        pools: [
          { name: "a", model: { name: "a" }, adapters: [{ name: "a-sql", uri: "loras/sql.gguf" }] },
          { name: "b", model: { name: "b", pvc: { file: "b.gguf" } }, autoscaling: { enabled: false }, replicas: 0 },
        ],
      },
    });
    const a = ofPool(objs, "Deployment", "a");
    const b = ofPool(objs, "Deployment", "b");
    assert.deepEqual([env(objs, a).MODEL, env(objs, a).WORKER_SLOTS, env(objs, a).LLAMA_GPU], ["/models/base.gguf", "6", "cuda"]);
    assert.equal(env(objs, a).MODEL_ADAPTERS, "a-sql=/models/loras/sql.gguf", "an adapter in the claim, beside the model");
    assert.equal(podOf(a).initContainers, undefined, "nothing to fetch from a claim");
    assert.equal(env(objs, b).MODEL, "/models/b.gguf");
    assert.equal((b.spec as { replicas?: number }).replicas, 0, "autoscaling off: the pool's replicas, 0 included");
    assert.equal(objs.filter((o) => o.kind === "ScaledObject").length, 1, "only a is autoscaled");
    assert.equal((ofPool(objs, "ScaledObject", "a").spec as ScaledObjectSpec).minReplicaCount, 0);
  });
});

function readSources(dirs: string[]): string {
  let text = "";
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      // Comments do not count as reading a variable.
      else if (entry.name.endsWith(".ts"))
        text +=
          readFileSync(p, "utf8")
            .replace(/\/\*[\s\S]*?\*\//g, "")
            .replace(/(^|\s)\/\/.*$/gm, "") + "\n";
    }
  };
  for (const d of dirs) if (existsSync(path.join(REPO_ROOT, d))) walk(path.join(REPO_ROOT, d));
  return text;
}
