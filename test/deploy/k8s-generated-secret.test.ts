/**
 * The chart's generated secrets on a real control plane (lib/control-plane.ts). kwok runs
 * no containers, so the generated-Secret hook Job's pod is run here
 * (lib/local-pods.ts): scripts/deploy/ensure-secret.ts as a process, with a token of the
 * Job's own service account bound to that pod, against the real kube-apiserver, its RBAC
 * and the chart's ValidatingAdmissionPolicy. It proves:
 *
 * - `helm install` creates the Secret (a 48-character token, a "default" API key) through
 *   the hook; `helm upgrade` runs the hook again and the Secret is byte for byte the same,
 *   not even rewritten; the hook's account, Role and Job are gone afterwards;
 * - the same hook objects applied as plain objects (`helm template | kubectl apply`, what
 *   a GitOps sync does) run again without changing anything;
 * - the Job's account may read and patch only its Secret, may create no other Secret (the
 *   admission policy, RBAC cannot say it), may change no existing value, and may not list,
 *   delete or touch anything else; a key missing from the Secret is added, the others kept.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { render } from "./lib/chart.js";
import { startControlPlane, type ControlPlane } from "./lib/control-plane.js";
import { helmOk } from "./lib/helm-cluster.js";
import { kubectlAs, runEntryPoint, serviceAccountToken, startLocalJobRunner, tokenKubeconfig, type LocalJobRunner } from "./lib/local-pods.js";

const RELEASE = "llm";
const NS = "gen";
const SECRET = `${RELEASE}-kafka-llm-generated`;
const JOB = `${RELEASE}-kafka-llm-generated-secret`;

interface SecretJson {
  metadata: { resourceVersion: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data: Record<string, string>;
}

describe("the generated Secret on a real API server", { timeout: 900_000 }, () => {
  let cp: ControlPlane;
  let runner: LocalJobRunner;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "gen-secret-"));

  before(async () => {
    cp = await startControlPlane({ localJobComponents: ["generated-secret"] });
    console.log(`# control plane up in ${cp.startSeconds.toFixed(1)} s`);
    runner = startLocalJobRunner(cp, ["generated-secret"]);
  });
  after(async () => {
    await runner?.stop();
    await cp?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const secret = () => cp.getJson<SecretJson>(["-n", NS, "get", "secret", SECRET]);
  const decoded = (s: SecretJson) => Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
  const runsIn = (ns: string) => runner.runs.filter((r) => r.namespace === ns);
  /** The Job's environment as rendered for this release, ENSURE_SECRET_NAMESPACE resolved. */
  const jobEnv = (): Record<string, string> => {
    const job = render({ namespace: NS }).find((o) => o.kind === "Job" && o.metadata.name === JOB)!;
    const env = (job.spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } }).template.spec.containers[0]!.env;
    return { ...Object.fromEntries(env.map((e) => [e.name, e.value ?? ""])), ENSURE_SECRET_NAMESPACE: NS };
  };

  it("helm install creates it through the hook; helm upgrade runs the hook again and leaves it as it was", async () => {
    cp.kc(["create", "namespace", NS]);
    await helmOk(cp, ["install", RELEASE, ".", "-n", NS, "--wait", "--wait-for-jobs", "--timeout=5m"]);
    assert.equal(runsIn(NS).length, 1, "the hook's pod ran once");
    assert.equal(runsIn(NS)[0]!.exitCode, 0, runsIn(NS)[0]!.output);
    assert.match(runsIn(NS)[0]!.output, /"action":"created"/);
    const created = secret();
    const values = decoded(created);
    assert.deepEqual(Object.keys(values).sort(), ["api-keys", "internal-token"]);
    assert.match(values["internal-token"]!, /^[A-Za-z0-9]{48}\n$/, "one token of 48 characters, a line of its own");
    assert.match(values["api-keys"]!, /^default:[A-Za-z0-9]{48}\n$/);
    assert.equal(created.metadata.labels?.["app.kubernetes.io/instance"], RELEASE);
    assert.equal(created.metadata.annotations?.["meta.helm.sh/release-name"], undefined, "not Helm's: no upgrade or uninstall touches it");
    // The hook's objects are gone once it succeeded: its account's tokens no longer authenticate.
    for (const kind of ["job", "serviceaccount", "role", "rolebinding"]) {
      assert.notEqual(cp.kubectl(["-n", NS, "get", kind, JOB]).status, 0, `${kind} ${JOB} deleted after the hook`);
    }
    assert.notEqual(cp.kubectl(["get", "validatingadmissionpolicy", `${RELEASE}-kafka-llm.${NS}.generated-secret`]).status, 0);

    await helmOk(cp, ["upgrade", RELEASE, ".", "-n", NS, "--reuse-values", "--set", "worker.slots=2", "--wait", "--wait-for-jobs", "--timeout=5m"]);
    assert.equal(runsIn(NS).length, 2, "the hook ran again on upgrade");
    assert.equal(runsIn(NS)[1]!.exitCode, 0, runsIn(NS)[1]!.output);
    assert.match(runsIn(NS)[1]!.output, /"action":"unchanged"/);
    const upgraded = secret();
    assert.deepEqual(upgraded.data, created.data, "the same token and key after the upgrade");
    assert.equal(upgraded.metadata.resourceVersion, created.metadata.resourceVersion, "not even rewritten");
  });

  it("applied as plain objects (helm template | kubectl apply, as a GitOps sync does), the hook changes nothing", async () => {
    const before = secret();
    const hooks = render({ namespace: NS }).filter((o) => o.metadata.annotations?.["helm.sh/hook"] === "pre-install,pre-upgrade");
    assert.deepEqual(hooks.map((o) => o.kind).sort(), [
      "Job",
      "Role",
      "RoleBinding",
      "ServiceAccount",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]);
    const runs = runsIn(NS).length;
    cp.apply(hooks.map((o) => ({ ...o, metadata: { ...o.metadata, namespace: o.kind.startsWith("ValidatingAdmission") ? undefined : NS } })));
    await cp.waitFor("the applied Job to run", () => runsIn(NS).length > runs, 60_000);
    const run = runsIn(NS).at(-1)!;
    assert.equal(run.exitCode, 0, run.output);
    assert.match(run.output, /"action":"unchanged"/);
    await cp.waitFor("the Job to complete", () => cp.getJson<{ status: { succeeded?: number } }>(["-n", NS, "get", "job", JOB]).status.succeeded === 1);
    assert.deepEqual(secret().data, before.data);
  });

  it("the Job's account may add a missing key to its Secret and do nothing else", async () => {
    // The account and policy are there (applied above), as while the hook runs.
    const asJob = tokenKubeconfig(cp, tmp, serviceAccountToken(cp, NS, JOB), NS);
    const policy = `${RELEASE}-kafka-llm.${NS}.generated-secret`;
    await cp.waitFor("the policy to be enforced", async () => {
      const r = await kubectlAs(cp, asJob, ["create", "secret", "generic", "probe", "--from-literal=a=b", "--dry-run=server"]);
      return r.status !== 0 && r.stderr.includes(policy);
    });
    const before = secret();
    const refusals: Array<[string, string[], RegExp]> = [
      [
        "creating another Secret (RBAC allows create; the policy names the one)",
        ["create", "secret", "generic", "other", "--from-literal=a=b"],
        /may only create or update the Secret llm-kafka-llm-generated/,
      ],
      [
        "changing a value of its Secret",
        ["patch", "secret", SECRET, "--type=merge", "-p", JSON.stringify({ data: { "internal-token": Buffer.from("x".repeat(48)).toString("base64") } })],
        /may only add keys, never change or remove one/,
      ],
      ["removing a key of its Secret", ["patch", "secret", SECRET, "--type=json", "-p", '[{"op":"remove","path":"/data/api-keys"}]'], /may only add keys/],
      ["reading another Secret", ["get", "secret", "llm-kafka-llm"], /forbidden/i],
      ["listing Secrets", ["get", "secrets"], /forbidden/i],
      ["deleting its Secret", ["delete", "secret", SECRET], /forbidden/i],
      ["creating a ConfigMap", ["create", "configmap", "x", "--from-literal=a=b"], /forbidden/i],
      ["reading pods", ["get", "pods"], /forbidden/i],
    ];
    for (const [what, args, reason] of refusals) {
      const r = await kubectlAs(cp, asJob, args);
      assert.notEqual(r.status, 0, `${what}: refused`);
      assert.match(r.stderr, reason, `${what}: ${r.stderr}`);
    }
    assert.notEqual(cp.kubectl(["-n", NS, "get", "secret", "other"]).status, 0, "no other Secret was made");
    assert.deepEqual(secret().data, before.data, "its Secret is untouched");
    const allowed = await kubectlAs(cp, asJob, ["get", "secret", SECRET]);
    assert.equal(allowed.status, 0, allowed.stderr);

    // The script itself, pointed at another Secret: RBAC refuses reading it, the Job fails.
    const other = await runEntryPoint("dist/scripts/deploy/ensure-secret.js", { ...jobEnv(), ENSURE_SECRET_NAME: "other", KUBECONFIG: asJob, HOME: tmp });
    assert.equal(other.status, 1, other.stdout + other.stderr);
    assert.match(other.stderr, /reading Secret gen\/other: HTTP 403/);

    // A key gone missing (say, removed by hand) is added; the other value is kept.
    cp.kc(["-n", NS, "patch", "secret", SECRET, "--type=json", "-p", '[{"op":"remove","path":"/data/api-keys"}]']);
    const refill = await runEntryPoint("dist/scripts/deploy/ensure-secret.js", { ...jobEnv(), KUBECONFIG: asJob, HOME: tmp });
    assert.equal(refill.status, 0, refill.stdout + refill.stderr);
    assert.match(refill.stdout, /"action":"added","keys":\["api-keys"\]/);
    const after = secret();
    assert.equal(after.data["internal-token"], before.data["internal-token"], "the token is kept");
    assert.match(Buffer.from(after.data["api-keys"]!, "base64").toString(), /^default:[A-Za-z0-9]{48}\n$/);
    assert.notEqual(after.data["api-keys"], before.data["api-keys"], "a new key where the old one was removed");
  });
});
