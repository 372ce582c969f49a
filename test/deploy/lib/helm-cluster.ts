/**
 * Helm against a test control plane (lib/control-plane.ts): install, upgrade, test and
 * uninstall the chart with the real `helm`, and read back what the API server holds.
 */
import { execFile } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { CHART_DIR, parseManifests, type K8sObject } from "./chart.js";
import type { ControlPlane } from "./control-plane.js";
import { toolPath } from "./tools.js";

export interface HelmRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs helm without blocking the event loop (a test may act as a controller meanwhile). */
export async function helmOn(cp: ControlPlane, args: readonly string[], timeoutMs = 600_000): Promise<HelmRun> {
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      toolPath("helm"),
      args,
      {
        cwd: CHART_DIR,
        encoding: "utf8",
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        env: {
          ...cp.env(),
          HELM_CACHE_HOME: path.join(os.tmpdir(), "helm-cache"),
          HELM_CONFIG_HOME: path.join(os.tmpdir(), "helm-config"),
          HELM_DATA_HOME: path.join(os.tmpdir(), "helm-data"),
        },
      },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr || (err ? String(err) : "") }),
    );
  });
  const stderr = (r.stderr ?? "")
    .split("\n")
    .filter((l) => !/found symbolic link in path: .*dashboards resolves to/.test(l))
    .join("\n")
    .trim();
  return { status: r.status, stdout: r.stdout ?? "", stderr };
}

/** helm that throws with its stderr on failure; returns stdout. */
export async function helmOk(cp: ControlPlane, args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await helmOn(cp, args, timeoutMs);
  if (r.status !== 0) throw new Error(`helm ${args.join(" ")} failed:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** The objects of a release as helm recorded them (its manifest). */
export async function releaseObjects(cp: ControlPlane, release: string, namespace: string): Promise<K8sObject[]> {
  return parseManifests(await helmOk(cp, ["get", "manifest", release, "-n", namespace]));
}

export interface PodInfo {
  name: string;
  node: string | undefined;
  phase: string;
  ready: boolean;
  annotations: Record<string, string>;
  labels: Record<string, string>;
}

export function pods(cp: ControlPlane, namespace: string, selector: string): PodInfo[] {
  const list = cp.getJson<{
    items: Array<{
      metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string>; deletionTimestamp?: string };
      spec: { nodeName?: string };
      status: { phase: string; conditions?: Array<{ type: string; status: string }> };
    }>;
  }>(["-n", namespace, "get", "pods", "-l", selector]);
  return list.items
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => ({
      name: p.metadata.name,
      node: p.spec.nodeName,
      phase: p.status.phase,
      ready: p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
      annotations: p.metadata.annotations ?? {},
      labels: p.metadata.labels ?? {},
    }));
}
