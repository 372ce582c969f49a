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
import { REPO_ROOT } from "../helpers/services.js";
import {
  CHART_DIR,
  containerEnv,
  envWithMountedSecrets,
  find,
  helm,
  lint,
  podSpecs,
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
