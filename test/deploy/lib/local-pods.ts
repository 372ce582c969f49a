/**
 * The kubelet's part for Job pods on the test control plane, where kwok runs no
 * containers: a pod of one of the given components (kept Running by kwok, see
 * ControlPlaneOptions.localJobComponents) has its container's command run as a local
 * process, with the container's environment and a service account token bound to that
 * very pod (what the kubelet would mount), against the real API server; its exit code is
 * then written into the pod's status as a kubelet would, and the Job controller takes it
 * from there. So a hook Job really does its work, with exactly its own RBAC.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { stringify as toYaml } from "yaml";
import { REPO_ROOT } from "../../helpers/services.js";
import type { PodSpec } from "./chart.js";
import { bin, type ControlPlane, type KubectlResult } from "./control-plane.js";

/** A service account token from the TokenRequest API, bound to a pod when one is given (as the kubelet's are). */
export function serviceAccountToken(cp: ControlPlane, namespace: string, serviceAccount: string, pod?: { name: string; uid: string }): string {
  const bound = pod ? ["--bound-object-kind=Pod", `--bound-object-name=${pod.name}`, `--bound-object-uid=${pod.uid}`] : [];
  return cp.kc(["-n", namespace, "create", "token", serviceAccount, "--duration=10m", ...bound]).trim();
}

/** A kubeconfig that speaks to the control plane with `token` only (no client certificate). */
export function tokenKubeconfig(cp: ControlPlane, dir: string, token: string, namespace: string): string {
  const file = path.join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    file,
    toYaml({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server: cp.server, "certificate-authority": cp.caFile } }],
      users: [{ name: "sa", user: { token } }],
      contexts: [{ name: "sa", context: { cluster: "test", user: "sa", namespace } }],
      "current-context": "sa",
    }),
    { mode: 0o600 },
  );
  return file;
}

/** kubectl as whoever `kubeconfig` names (not the admin). */
export async function kubectlAs(cp: ControlPlane, kubeconfig: string, args: readonly string[]): Promise<KubectlResult> {
  // HOME beside the kubeconfig: kubectl keeps its discovery cache in $HOME/.kube (without a
  // HOME, in the working directory: the repository).
  return run(
    bin(cp.parts.kubernetes, "kubectl"),
    ["--kubeconfig", kubeconfig, ...args],
    { PATH: process.env.PATH ?? "", HOME: path.dirname(kubeconfig) },
    60_000,
  );
}

export interface LocalRun {
  readonly namespace: string;
  readonly pod: string;
  readonly exitCode: number;
  readonly output: string;
}

export interface LocalJobRunner {
  /** Every pod run so far, in order. */
  readonly runs: LocalRun[];
  stop(): Promise<void>;
}

interface PodJson {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string> };
  spec: PodSpec & { containers: Array<{ name: string; image: string }> };
  status: { phase?: string };
}

/**
 * Watches every namespace for Running pods of `components` and runs each once: its
 * container's args name a compiled entry point (dist/<path>.js), run here from its
 * source (<path>.ts) with tsx, as the pod's service account.
 */
export function startLocalJobRunner(cp: ControlPlane, components: readonly string[]): LocalJobRunner {
  const dir = mkdtempSync(path.join(os.tmpdir(), "local-pods-"));
  const runs: LocalRun[] = [];
  const seen = new Set<string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const r = cp.kubectl(["get", "pods", "-A", "-l", `app.kubernetes.io/component in (${components.join(",")})`, "-o", "json"]);
      const pods = r.status === 0 ? (JSON.parse(r.stdout) as { items: PodJson[] }).items : [];
      for (const pod of pods.filter((p) => p.status.phase === "Running" && !seen.has(p.metadata.uid))) {
        seen.add(pod.metadata.uid);
        runs.push(await runPod(cp, dir, pod));
      }
      await new Promise((res) => setTimeout(res, 300));
    }
  })();
  return {
    runs,
    async stop() {
      stopped = true;
      await loop;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function runPod(cp: ControlPlane, dir: string, pod: PodJson): Promise<LocalRun> {
  const { name, namespace, uid } = pod.metadata;
  const c = pod.spec.containers[0]!;
  const entry = /^dist\/(.+)\.js$/.exec(c.args?.[0] ?? "");
  let result: KubectlResult;
  if (!entry || pod.spec.containers.length !== 1) {
    result = { status: 127, stdout: "", stderr: `cannot run ${JSON.stringify(c.args)} here` };
  } else {
    const env: Record<string, string> = {};
    for (const e of c.env ?? []) {
      const field = (e.valueFrom as { fieldRef?: { fieldPath: string } } | undefined)?.fieldRef?.fieldPath;
      env[e.name] = e.value ?? (field === "metadata.namespace" ? namespace : field === "metadata.name" ? name : "");
    }
    const token = serviceAccountToken(cp, namespace, pod.spec.serviceAccountName ?? "default", { name, uid });
    env.KUBECONFIG = tokenKubeconfig(cp, dir, token, namespace);
    result = await runEntryPoint(c.args![0]!, { HOME: dir, ...env });
  }
  const exitCode = result.status ?? 1;
  const now = new Date().toISOString();
  // What the kubelet reports when the container exits (the Job controller reads the phase).
  cp.kc([
    "-n",
    namespace,
    "patch",
    "pod",
    name,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({
      status: {
        phase: exitCode === 0 ? "Succeeded" : "Failed",
        containerStatuses: [
          {
            name: c.name,
            image: c.image,
            ready: false,
            started: false,
            restartCount: 0,
            state: { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt: now, finishedAt: now } },
          },
        ],
      },
    }),
  ]);
  return { namespace, pod: name, exitCode, output: result.stdout + result.stderr };
}

/** Runs an image's entry point (dist/<path>.js) from its source (<path>.ts) with tsx, with `env` and PATH only. */
export function runEntryPoint(entry: string, env: Record<string, string>): Promise<KubectlResult> {
  const source = /^dist\/(.+)\.js$/.exec(entry);
  if (!source) throw new Error(`not an entry point the images build: ${entry}`);
  return run(process.execPath, ["--import", "tsx", `${source[1]}.ts`], { PATH: process.env.PATH ?? "", ...env }, 90_000);
}

function run(file: string, args: readonly string[], env: Record<string, string>, timeoutMs: number): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("close", (code) => resolve({ status: code, stdout, stderr }));
    child.on("error", (err) => resolve({ status: 1, stdout, stderr: stderr + String(err) }));
  });
}
