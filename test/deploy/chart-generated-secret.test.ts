/**
 * The secrets the chart generates (the workers' internal token, the default API key) are
 * not in its output: a hook Job (scripts/deploy/ensure-secret.ts) creates them once in a
 * Secret Helm does not own. Rendered with the real helm: two renders are identical and hold
 * no Secret; the Job, its own service account, its narrow Role and the admission policies
 * render as hooks in the right order; the gateway and the workers mount the token Secret
 * as a whole-file projection (no subPath, so a rotation reaches running pods). What the
 * Job does on a real API server, and what RBAC and the policies refuse, is
 * k8s-chart.test.ts's.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadEnsureSecretConfig } from "../../scripts/deploy/ensure-secret.js";
import { containerEnv, find, helm, render, templateArgs, VARIANTS, type K8sObject, type PodSpec } from "./lib/chart.js";

const podOf = (o: K8sObject): PodSpec => (o.spec as { template: { spec: PodSpec } }).template.spec;
const hookOf = (o: K8sObject) => ({
  hook: o.metadata.annotations?.["helm.sh/hook"],
  weight: Number(o.metadata.annotations?.["helm.sh/hook-weight"] ?? 0),
  deletePolicy: o.metadata.annotations?.["helm.sh/hook-delete-policy"],
});
const jobOf = (objs: K8sObject[]) => find(objs, "Job", "-generated-secret");
const jobEnv = (objs: K8sObject[]) => containerEnv(objs, podOf(jobOf(objs)).containers[0]!);

describe("no generated secret in the chart's output", () => {
  for (const [label, set] of [
    ["default values (a token and an API key to generate)", {}],
    ["API keys in the values (a token to generate)", { "gateway.auth.apiKeys": ["team:k1"] }],
  ] as const) {
    it(`${label}: helm template twice gives the same bytes, and no Secret carries a generated value`, () => {
      const args = templateArgs({ set });
      const first = helm(args);
      const second = helm(args);
      assert.equal(first.status, 0, first.stderr);
      assert.equal(first.stdout, second.stdout, "nothing random is rendered");
      const objs = render({ set });
      const secrets = objs.filter((o) => o.kind === "Secret");
      for (const s of secrets) assert.deepEqual(Object.keys(s.data as object), ["api-keys"], "only what the values hold");
      assert.doesNotMatch(first.stdout, /internal-token:/, "the token is nowhere in the output");
    });
  }
});

describe("the generated-Secret Job", () => {
  it("is a pre-install/pre-upgrade hook running ensure-secret.js with its own service account, after its RBAC", () => {
    const objs = render();
    const job = jobOf(objs);
    const spec = podOf(job);
    assert.deepEqual(spec.containers[0]!.args, ["dist/scripts/deploy/ensure-secret.js"]);
    assert.equal(spec.serviceAccountName, "llm-kafka-llm-generated-secret");
    assert.equal(spec.automountServiceAccountToken, true);
    assert.equal((job.spec as { template: { spec: { restartPolicy: string } } }).template.spec.restartPolicy, "OnFailure", "a refused first try is retried");
    const hooked = objs.filter((o) => o.metadata.annotations?.["helm.sh/hook"]?.includes("pre-install"));
    assert.deepEqual(hooked.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      "Job/llm-kafka-llm-generated-secret",
      "Role/llm-kafka-llm-generated-secret",
      "RoleBinding/llm-kafka-llm-generated-secret",
      "ServiceAccount/llm-kafka-llm-generated-secret",
      "ValidatingAdmissionPolicy/llm-kafka-llm.kafka-llm.generated-secret",
      "ValidatingAdmissionPolicyBinding/llm-kafka-llm.kafka-llm.generated-secret",
    ]);
    for (const o of hooked) {
      const h = hookOf(o);
      assert.equal(h.hook, "pre-install,pre-upgrade", o.kind);
      assert.equal(h.deletePolicy, "before-hook-creation,hook-succeeded", `${o.kind}: gone once it succeeded`);
      if (o.kind !== "Job") assert.ok(h.weight < hookOf(job).weight, `${o.kind} exists before the Job runs`);
    }
  });

  it("its settings parse with the script's own loader: the Secret the pods mount, with the keys they read", () => {
    const objs = render();
    const env = jobEnv(objs);
    assert.match(env.ENSURE_SECRET_NAMESPACE!, /fieldPath.*metadata\.namespace/, "its own namespace, from the downward API");
    const config = loadEnsureSecretConfig({ ...env, ENSURE_SECRET_NAMESPACE: "kafka-llm" });
    assert.equal(config.name, "llm-kafka-llm-generated");
    assert.deepEqual(config.keys, { "internal-token": "token", "api-keys": "api-key" });
    assert.equal(config.labels["app.kubernetes.io/instance"], "llm");
    const volume = (o: K8sObject, name: string) => podOf(o).volumes!.find((v) => v.name === name)!.secret;
    for (const d of ["-gateway", "-worker"]) {
      assert.deepEqual(volume(find(objs, "Deployment", d), "internal-token"), {
        secretName: config.name,
        items: [{ key: "internal-token", path: "token" }],
      });
    }
    assert.deepEqual(volume(find(objs, "Deployment", "-gateway"), "api-keys"), { secretName: config.name, items: [{ key: "api-keys", path: "api-keys" }] });
    // API keys in the values: only the token is generated.
    assert.equal(jobEnv(render({ set: { "gateway.auth.apiKeys": ["team:k1"] } })).ENSURE_SECRET_KEYS, "internal-token=token");
    assert.equal(jobEnv(render({ set: { "gateway.auth.mode": "none" } })).ENSURE_SECRET_KEYS, "internal-token=token");
    // Everything brought by the user (external-kafka): no Job, no account, no policy for it.
    const ext = render({ valuesFiles: VARIANTS["external-kafka"] });
    assert.deepEqual(
      ext.filter((o) => o.metadata.name.includes("generated")).map((o) => o.kind),
      [],
    );
  });

  it("may create Secrets (RBAC cannot name one that does not exist yet), and read and patch only its own", () => {
    const objs = render();
    assert.deepEqual(find(objs, "Role", "-generated-secret").rules, [
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      { apiGroups: [""], resources: ["secrets"], resourceNames: ["llm-kafka-llm-generated"], verbs: ["get", "patch"] },
    ]);
    const binding = find(objs, "RoleBinding", "-generated-secret");
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "llm-kafka-llm-generated-secret", namespace: "kafka-llm" }]);
    assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "llm-kafka-llm-generated-secret" });
  });
});

describe("the internal token reaches the gateway and the workers as a file that rotation updates", () => {
  for (const [label, set, secret] of [
    ["generated", {}, { secretName: "llm-kafka-llm-generated", items: [{ key: "internal-token", path: "token" }] }],
    [
      "a Secret of your own",
      { "internalToken.existingSecret": "mine", "internalToken.existingSecretKey": "tokens" },
      { secretName: "mine", items: [{ key: "tokens", path: "token" }] },
    ],
  ] as const) {
    it(`${label}: mounted as a directory (no subPath), KAFKA_LLM_INTERNAL_TOKEN_FILE inside it`, () => {
      const objs = render({ set });
      for (const d of ["-gateway", "-worker"]) {
        const spec = podOf(find(objs, "Deployment", d));
        const c = spec.containers[0]!;
        const mount = c.volumeMounts!.find((m) => m.name === "internal-token")!;
        assert.equal((mount as { subPath?: string }).subPath, undefined, `${d}: a subPath mount is never updated`);
        assert.equal(containerEnv(objs, c).KAFKA_LLM_INTERNAL_TOKEN_FILE, `${mount.mountPath}/token`);
        assert.deepEqual(spec.volumes!.find((v) => v.name === "internal-token")!.secret, secret);
      }
    });
  }
});

describe("the admission policies", () => {
  it("bind the workers' and the Job's service accounts in this namespace only; admissionPolicies.enabled=false drops them", () => {
    const objs = render();
    const policies = objs.filter((o) => o.kind === "ValidatingAdmissionPolicy");
    assert.deepEqual(policies.map((p) => p.metadata.name).sort(), ["llm-kafka-llm.kafka-llm.generated-secret", "llm-kafka-llm.kafka-llm.worker-pods"]);
    const worker = find(objs, "ValidatingAdmissionPolicy", ".worker-pods").spec as {
      failurePolicy: string;
      matchConditions: Array<{ expression: string }>;
      matchConstraints: { resourceRules: Array<{ resources: string[]; operations: string[] }> };
    };
    assert.equal(worker.failurePolicy, "Fail");
    assert.deepEqual(
      worker.matchConditions.map((m) => m.expression),
      [`request.userInfo.username == 'system:serviceaccount:kafka-llm:${podOf(find(objs, "Deployment", "-worker")).serviceAccountName}'`],
    );
    assert.deepEqual(worker.matchConstraints.resourceRules[0]!.resources, ["pods", "pods/*"]);
    assert.deepEqual(worker.matchConstraints.resourceRules[0]!.operations, ["*"]);
    for (const b of objs.filter((o) => o.kind === "ValidatingAdmissionPolicyBinding")) {
      assert.deepEqual(b.spec, {
        policyName: b.metadata.name,
        validationActions: ["Deny"],
        matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kafka-llm" } } },
      });
    }
    const off = render({ set: { "admissionPolicies.enabled": false } });
    assert.equal(off.filter((o) => o.apiVersion.startsWith("admissionregistration.k8s.io/")).length, 0);
  });
});
