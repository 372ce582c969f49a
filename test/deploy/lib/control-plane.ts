/**
 * A real Kubernetes control plane for a test file, on 127.0.0.1 and free ports: etcd,
 * kube-apiserver (TLS, RBAC, service-account tokens, the front-proxy flags API
 * aggregation needs), kube-controller-manager (HPA, node lifecycle, deployments, jobs...),
 * kube-scheduler, and kwok for two fake nodes, one with `nvidia.com/gpu` capacity. The
 * binaries come from scripts/deploy/k8s/build.sh (a cache outside the clone); certificates
 * are made with openssl; all data lives in a temporary directory removed by stop().
 *
 * kwok runs no containers: pods are bound by the real scheduler and marked Running/Ready
 * by kwok's stages. Nothing here sends traffic to a pod IP (kwok's 10.x addresses route
 * nowhere); tests point clients at 127.0.0.1 processes.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { freePort, REPO_ROOT } from "../../helpers/services.js";

const BUILD_SCRIPT = path.join(REPO_ROOT, "scripts", "deploy", "k8s", "build.sh");

/** The cache folders of each part (scripts/deploy/k8s/build.sh --print). */
export interface K8sParts {
  etcd: string;
  kubernetes: string;
  kwok: string;
  "prometheus-adapter": string;
  "prometheus-operator-crds": string;
  "keda-crds": string;
  keda?: string;
}

/** Where build.sh put the parts; throws, saying how to build them, when one is missing. */
export function k8sParts(): K8sParts {
  const r = spawnSync("bash", [BUILD_SCRIPT, "--print"], { encoding: "utf8" });
  const parts: Record<string, string> = {};
  for (const line of r.stdout.split("\n")) {
    const m = /^([\w-]+)=(.*)$/.exec(line.trim());
    if (m && m[2]) parts[m[1]!] = m[2];
  }
  for (const need of ["etcd", "kubernetes", "kwok", "prometheus-adapter", "prometheus-operator-crds", "keda-crds"]) {
    if (!parts[need]) throw new Error(`the control plane is not built (${need} missing): run bash scripts/deploy/k8s/build.sh`);
  }
  return parts as unknown as K8sParts;
}

export const bin = (dir: string, name: string) => path.join(dir, "bin", name);

/** A child process of the control plane, its output kept for errors. */
export interface Proc {
  readonly name: string;
  readonly proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

export function startProc(name: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Proc {
  const proc = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  running.add(proc);
  let output = "";
  const keep = (b: Buffer) => (output = (output + b.toString()).slice(-100_000));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<void>((r) => proc.once("exit", () => (running.delete(proc), r())));
  return {
    name,
    proc,
    output: () => output,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${r.stderr}`);
}

/** A CA, and certificates signed by it (`name`.crt/.key in `dir`). */
function makeCa(dir: string, name: string, cn: string): void {
  openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${cn}`, "-keyout", `${name}.key`, "-out", `${name}.crt`]);
}
function makeCert(dir: string, ca: string, name: string, subject: string, sans: string[] = []): void {
  openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`]);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, sans.length > 0 ? `subjectAltName=${sans.join(",")}\nextendedKeyUsage=serverAuth,clientAuth\n` : "extendedKeyUsage=clientAuth\n");
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    ext,
    "-out",
    `${name}.crt`,
  ]);
}

export interface KubectlResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  readonly dir: string;
  readonly parts: K8sParts;
  /** The admin kubeconfig (system:masters). */
  readonly kubeconfig: string;
  readonly server: string;
  /** The CA of the API server's certificate, for in-cluster style clients. */
  readonly caFile: string;
  /** Seconds the control plane took to come up. */
  readonly startSeconds: number;
  kubectl(args: readonly string[], input?: string): KubectlResult;
  /** kubectl that throws with its stderr when it fails; returns stdout. */
  kc(args: readonly string[], input?: string): string;
  /** `kubectl get -o json`. */
  getJson<T = Record<string, unknown>>(args: readonly string[]): T;
  apply(objects: readonly unknown[]): void;
  /** Environment for helm and kubectl run by a test (KUBECONFIG). */
  env(): NodeJS.ProcessEnv;
  /** Waits until `check` returns a value other than undefined/false; throws with `what` on timeout. */
  waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs?: number): Promise<T>;
  /** Starts another process that talks to this API server (adapter, KEDA), stopped with the rest. */
  startExtra(name: string, file: string, args: readonly string[], env?: NodeJS.ProcessEnv): Proc;
  logs(): string;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Extra kwok configuration documents (e.g. a ClusterPortForward). */
  kwokConfig?: readonly object[];
  /** kube-controller-manager's --horizontal-pod-autoscaler-sync-period (default 15s). */
  hpaSyncPeriod?: string;
  /**
   * Job pods whose app.kubernetes.io/component is one of these are started by kwok but
   * never ended by it: the test runs their work as a local process and ends them itself
   * (lib/local-pods.ts), so a hook that really does something really runs.
   */
  localJobComponents?: readonly string[];
}

export const GPU_NODE = "kwok-gpu-0";
export const CPU_NODE = "kwok-cpu-0";

const CONTROLLERS = [
  "namespace-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "root-ca-certificate-publisher-controller",
  "deployment-controller",
  "replicaset-controller",
  "job-controller",
  "ttl-after-finished-controller",
  "disruption-controller",
  "endpoints-controller",
  "endpointslice-controller",
  "garbage-collector-controller",
  "horizontal-pod-autoscaler-controller",
  "node-lifecycle-controller",
  "persistentvolume-binder-controller",
  "clusterrole-aggregation-controller",
  // Type-checks ValidatingAdmissionPolicies and reports it in their status.
  "validatingadmissionpolicy-status-controller",
];

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = Date.now();
  const parts = k8sParts();
  const dir = mkdtempSync(path.join(os.tmpdir(), "k8s-"));
  const procs: Proc[] = [];
  const k8sBin = (n: string) => bin(parts.kubernetes, n);
  try {
    // Certificates: the cluster CA (serving, admin, kubelet client, kwok's serving), the
    // front-proxy CA (the aggregator's client), the service-account key pair.
    makeCa(dir, "ca", "kafka-llm-test-ca");
    makeCert(dir, "ca", "apiserver", "/CN=kube-apiserver", [
      "IP:127.0.0.1",
      "DNS:localhost",
      "DNS:kubernetes",
      "DNS:kubernetes.default",
      "DNS:kubernetes.default.svc",
      "IP:10.96.0.1",
    ]);
    makeCert(dir, "ca", "admin", "/O=system:masters/CN=admin");
    makeCert(dir, "ca", "kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client");
    makeCert(dir, "ca", "kwok", "/CN=kwok", ["IP:127.0.0.1", "DNS:localhost"]);
    makeCa(dir, "front-proxy-ca", "front-proxy-ca");
    makeCert(dir, "front-proxy-ca", "front-proxy-client", "/CN=front-proxy-client");
    openssl(dir, ["genrsa", "-out", "sa.key", "2048"]);
    openssl(dir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    const f = (n: string) => path.join(dir, n);

    const [etcdPort, etcdPeer, apiPort, kcmPort, schedPort, kwokPort] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = f("admin.kubeconfig");
    writeFileSync(
      kubeconfig,
      toYaml({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "test", cluster: { server, "certificate-authority": f("ca.crt") } }],
        users: [{ name: "admin", user: { "client-certificate": f("admin.crt"), "client-key": f("admin.key") } }],
        contexts: [{ name: "test", context: { cluster: "test", user: "admin", namespace: "default" } }],
        "current-context": "test",
      }),
      { mode: 0o600 },
    );

    procs.push(
      startProc("etcd", bin(parts.etcd, "etcd"), [
        "--name=default",
        `--data-dir=${f("etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        "--unsafe-no-fsync",
        "--log-level=warn",
      ]),
    );
    procs.push(
      startProc("kube-apiserver", k8sBin("kube-apiserver"), [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        "--endpoint-reconciler-type=none",
        `--tls-cert-file=${f("apiserver.crt")}`,
        `--tls-private-key-file=${f("apiserver.key")}`,
        `--client-ca-file=${f("ca.crt")}`,
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${f("sa.pub")}`,
        `--service-account-signing-key-file=${f("sa.key")}`,
        "--service-cluster-ip-range=10.96.0.0/16",
        "--allow-privileged=true",
        `--requestheader-client-ca-file=${f("front-proxy-ca.crt")}`,
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        `--proxy-client-cert-file=${f("front-proxy-client.crt")}`,
        `--proxy-client-key-file=${f("front-proxy-client.key")}`,
        `--kubelet-client-certificate=${f("kubelet-client.crt")}`,
        `--kubelet-client-key=${f("kubelet-client.key")}`,
        "--kubelet-preferred-address-types=InternalIP",
        `--kubelet-certificate-authority=${f("ca.crt")}`,
        "--profiling=false",
        "-v=1",
      ]),
    );
    const cp = controlPlaneHandle(dir, parts, kubeconfig, server, procs, t0);
    await cp.waitFor("the API server to be ready", () => cp.kubectl(["get", "--raw", "/readyz"]).stdout.trim() === "ok", 60_000);

    const common = [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--bind-address=127.0.0.1",
      "--leader-elect=false",
    ];
    procs.push(
      startProc("kube-controller-manager", k8sBin("kube-controller-manager"), [
        ...common,
        `--secure-port=${kcmPort}`,
        "--use-service-account-credentials=true",
        `--service-account-private-key-file=${f("sa.key")}`,
        `--root-ca-file=${f("ca.crt")}`,
        `--controllers=${CONTROLLERS.join(",")}`,
        `--horizontal-pod-autoscaler-sync-period=${options.hpaSyncPeriod ?? "15s"}`,
        "--node-monitor-grace-period=60s",
        "-v=1",
      ]),
    );
    procs.push(startProc("kube-scheduler", k8sBin("kube-scheduler"), [...common, `--secure-port=${schedPort}`, "-v=1"]));

    // kwok: the "fast" stages from its module, its defaults spelled out (a config file's
    // are not applied), the nodes' kubelet endpoint at its own server (port-forward).
    const stages = readdirSync(path.join(parts.kwok, "stages"))
      .filter((n) => n.endsWith(".yaml"))
      .map((n) => {
        const text = readFileSync(path.join(parts.kwok, "stages", n), "utf8");
        if (n !== "pod-complete.yaml" || !options.localJobComponents?.length) return text;
        const stage = parseYaml(text) as { spec: { selector: { matchExpressions: object[] } } };
        stage.spec.selector.matchExpressions.push({
          key: '.metadata.labels["app.kubernetes.io/component"]',
          operator: "NotIn",
          values: [...options.localJobComponents],
        });
        return toYaml(stage);
      });
    const kwokConfig = [
      toYaml({
        apiVersion: "config.kwok.x-k8s.io/v1alpha1",
        kind: "KwokConfiguration",
        options: {
          cidr: "10.244.0.0/16",
          nodeIP: "127.0.0.1",
          nodePort: kwokPort,
          serverAddress: `127.0.0.1:${kwokPort}`,
          tlsCertFile: f("kwok.crt"),
          tlsPrivateKeyFile: f("kwok.key"),
          manageAllNodes: false,
          manageNodesWithAnnotationSelector: "kwok.x-k8s.io/node=fake",
          // Port-forward is one of the "debugging handlers".
          enableDebuggingHandlers: true,
          enableContentionProfiling: false,
          enableProfilingHandler: false,
          podPlayStageParallelism: 4,
          nodePlayStageParallelism: 4,
          nodeLeaseDurationSeconds: 40,
          nodeLeaseParallelism: 4,
          podsOnNodeSyncParallelism: 1,
          enablePodsOnNodeSyncListPager: true,
          enablePodsOnNodeSyncStreamWatch: true,
        },
      }),
      ...stages,
      ...(options.kwokConfig ?? []).map((o) => toYaml(o)),
    ].join("\n---\n");
    writeFileSync(f("kwok.yaml"), kwokConfig);
    procs.push(startProc("kwok", bin(parts.kwok, "kwok"), [`--kubeconfig=${kubeconfig}`, `--config=${f("kwok.yaml")}`]));

    // create, not apply: a node's status is kept on create (as a kubelet registers) but
    // reset on apply.
    const nodes = [
      fakeNode(GPU_NODE, { "nvidia.com/gpu.present": "true" }, { "nvidia.com/gpu": "8" }, [{ key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }]),
      fakeNode(CPU_NODE, {}, {}, []),
    ];
    cp.kc(["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: nodes }));
    await cp.waitFor(
      "both kwok nodes Ready and schedulable",
      () => {
        const nodes = cp.getJson<{
          items: Array<{ spec: { taints?: Array<{ key: string }> }; status: { conditions?: Array<{ type: string; status: string }> } }>;
        }>(["get", "nodes"]).items;
        return (
          nodes.length === 2 &&
          nodes.every(
            (n) =>
              n.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") &&
              !(n.spec.taints ?? []).some((t) => t.key.startsWith("node.kubernetes.io/")),
          )
        );
      },
      90_000,
    );
    await cp.waitFor("the default service account", () => cp.kubectl(["-n", "default", "get", "serviceaccount", "default"]).status === 0, 60_000);
    (cp as { startSeconds: number }).startSeconds = (Date.now() - t0) / 1000;
    return cp;
  } catch (err) {
    const logs = procs.map((p) => `--- ${p.name} (exit ${p.proc.exitCode ?? "running"}):\n${p.output().slice(-4000)}`).join("\n");
    await Promise.all(procs.reverse().map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
}

function fakeNode(name: string, labels: Record<string, string>, extra: Record<string, string>, taints: object[]) {
  const resources = { cpu: "32", memory: "256Gi", pods: "110", ...extra };
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", type: "kwok", ...labels },
    },
    spec: { taints },
    status: { capacity: resources, allocatable: resources },
  };
}

function controlPlaneHandle(dir: string, parts: K8sParts, kubeconfig: string, server: string, procs: Proc[], t0: number): ControlPlane {
  const kubectlBin = bin(parts.kubernetes, "kubectl");
  const env = () => ({ ...process.env, KUBECONFIG: kubeconfig });
  const kubectl = (args: readonly string[], input?: string): KubectlResult => {
    const r = spawnSync(kubectlBin, args, { encoding: "utf8", env: env(), input, timeout: 120_000 });
    return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? String(r.error ?? "") };
  };
  const kc = (args: readonly string[], input?: string) => {
    const r = kubectl(args, input);
    if (r.status !== 0) throw new Error(`kubectl ${args.join(" ")} failed:\n${r.stderr}`);
    return r.stdout;
  };
  const handle: ControlPlane = {
    dir,
    parts,
    kubeconfig,
    server,
    caFile: path.join(dir, "ca.crt"),
    startSeconds: (Date.now() - t0) / 1000,
    kubectl,
    kc,
    getJson: <T>(args: readonly string[]) => JSON.parse(kc([...args, "-o", "json"])) as T,
    apply(objects) {
      kc(["apply", "--server-side", "--force-conflicts", "-f", "-"], objects.map((o) => toYaml(o)).join("\n---\n"));
    },
    env,
    async waitFor(what, check, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let lastErr: unknown;
      for (;;) {
        for (const p of procs) {
          if (p.proc.exitCode !== null) throw new Error(`${p.name} exited with ${p.proc.exitCode} while waiting for ${what}:\n${p.output().slice(-4000)}`);
        }
        try {
          const v = await check();
          if (v !== undefined && v !== false) return v;
        } catch (err) {
          lastErr = err;
        }
        if (Date.now() > deadline)
          throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ""}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    },
    startExtra(name, file, args, extraEnv) {
      const p = startProc(name, file, args, extraEnv);
      procs.push(p);
      return p;
    },
    logs: () => procs.map((p) => `--- ${p.name}:\n${p.output().slice(-3000)}`).join("\n"),
    async stop() {
      // Reverse order: the clients first, etcd last.
      for (const p of [...procs].reverse()) await p.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

/**
 * A serving and client certificate for 127.0.0.1/localhost from the control plane's CA,
 * written to `dir` as tls.crt, tls.key and ca.crt (the layout controllers' --cert-dir
 * expects).
 */
export function makeServingCert(cp: ControlPlane, dir: string, name = "extra"): void {
  makeCert(cp.dir, "ca", name, `/CN=${name}`, ["IP:127.0.0.1", "DNS:localhost"]);
  copyFileSync(path.join(cp.dir, `${name}.crt`), path.join(dir, "tls.crt"));
  copyFileSync(path.join(cp.dir, `${name}.key`), path.join(dir, "tls.key"));
  copyFileSync(path.join(cp.dir, "ca.crt"), path.join(dir, "ca.crt"));
}

/** CRD files as a list of paths (the upstream modules' own). */
export function crdFiles(partDir: string): string[] {
  const d = path.join(partDir, "crds");
  if (!existsSync(d)) throw new Error(`no CRDs in ${d}: rebuild with bash scripts/deploy/k8s/build.sh`);
  return readdirSync(d)
    .filter((n) => n.endsWith(".yaml"))
    .map((n) => path.join(d, n));
}

/**
 * Registers a metrics server listening on 127.0.0.1:`port` as the external metrics
 * APIService (prometheus-adapter's or KEDA's: only one at a time), and waits until the
 * aggregator finds it Available. The aggregator dials the Service: an ExternalName
 * "localhost" Service (a ClusterIP would route nowhere without kube-proxy, and loopback
 * Endpoints are refused).
 */
export async function registerExternalMetrics(cp: ControlPlane, service: { name: string; namespace: string; port: number }, what: string): Promise<void> {
  cp.apply([
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: service.name, namespace: service.namespace },
      spec: { type: "ExternalName", externalName: "localhost", ports: [{ name: "https", port: service.port }] },
    },
    {
      apiVersion: "apiregistration.k8s.io/v1",
      kind: "APIService",
      metadata: { name: "v1beta1.external.metrics.k8s.io" },
      spec: {
        group: "external.metrics.k8s.io",
        version: "v1beta1",
        service: { name: service.name, namespace: service.namespace, port: service.port },
        insecureSkipTLSVerify: true,
        groupPriorityMinimum: 100,
        versionPriority: 100,
      },
    },
  ]);
  await cp.waitFor(
    what,
    () => {
      const s = cp.getJson<{ status: { conditions?: Array<{ type: string; status: string }> } }>(["get", "apiservice", "v1beta1.external.metrics.k8s.io"]);
      return s.status.conditions?.some((c) => c.type === "Available" && c.status === "True");
    },
    120_000,
  );
}
