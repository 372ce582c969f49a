/**
 * Keeps this worker pod's `controller.kubernetes.io/pod-deletion-cost` annotation equal
 * to the number of generations it is running, so that when the autoscaler lowers the
 * replica count the ReplicaSet controller deletes idle workers first (lowest cost goes
 * first) instead of one in the middle of a reply.
 *
 * The pod is found through the downward API (POD_NAME, POD_NAMESPACE) and reached with
 * the service account's in-cluster config. The annotation is PATCHed only when the value
 * changes: Kubernetes asks that it not be updated at metric rate, and idle ↔ busy is what
 * matters. Outside a cluster (no KUBERNETES_SERVICE_HOST) this does nothing and says
 * nothing above debug level.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import type { Logger } from "../platform/logger.js";

export const POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost";

/** Where Kubernetes mounts the service account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

const INT32_MAX = 2_147_483_647;

export type Env = Readonly<Record<string, string | undefined>>;

/** The annotation's value for a number of running generations: an int32, never negative. */
export function deletionCost(activeGenerations: number): number {
  if (!Number.isFinite(activeGenerations) || activeGenerations <= 0) return 0;
  return Math.min(INT32_MAX, Math.floor(activeGenerations));
}

export type PodTarget =
  | { readonly inCluster: true; readonly name: string; readonly namespace: string }
  | { readonly inCluster: false; readonly reason: string; readonly misconfigured: boolean };

/**
 * Decides from the environment whether there is a pod to annotate. `misconfigured` is
 * true when the process runs in a cluster but cannot annotate its pod (worth a warning);
 * false when it simply is not in a cluster (silence).
 */
export function findPodTarget(env: Env, serviceAccountDir: string, fileExists = existsSync): PodTarget {
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
    return { inCluster: false, reason: "not running in a Kubernetes cluster", misconfigured: false };
  }
  const missing = ["POD_NAME", "POD_NAMESPACE"].filter((k) => !env[k]?.trim());
  if (missing.length > 0) {
    return {
      inCluster: false,
      reason: `${missing.join(" and ")} not set (give them from the downward API: metadata.name, metadata.namespace)`,
      misconfigured: true,
    };
  }
  if (!fileExists(path.join(serviceAccountDir, "token"))) {
    return {
      inCluster: false,
      reason: `no service account token in ${serviceAccountDir} (automountServiceAccountToken is off?)`,
      misconfigured: true,
    };
  }
  return { inCluster: true, name: env.POD_NAME!.trim(), namespace: env.POD_NAMESPACE!.trim() };
}

/** Sets the annotation on one pod; the Kubernetes client behind it is an implementation detail. */
export type AnnotatePod = (cost: number) => Promise<void>;

/** A pod and the client that annotates it. */
export interface AnnotatablePod {
  readonly name: string;
  readonly namespace: string;
  readonly annotate: AnnotatePod;
}

export interface PodDeletionCostOptions {
  readonly logger: Logger;
  /** Generations running now (0 when idle). */
  readonly activeGenerations: () => number;
  /** How often the value is looked at, in ms; default 5000. A PATCH happens only on change. */
  readonly intervalMs?: number;
}

export interface PodDeletionCost {
  /** Looks at the value now and PATCHes if it changed; resolves when done (never rejects). */
  sync(): Promise<void>;
  /** Stops the timer and waits for a PATCH in flight. */
  stop(): Promise<void>;
}

/**
 * The pod this process runs in, with an in-cluster client (the service account in
 * `serviceAccountDir`, the API server from KUBERNETES_SERVICE_HOST/PORT, the pod from the
 * downward API's POD_NAME/POD_NAMESPACE), or null outside a cluster; a pod that is in a
 * cluster but cannot be annotated is logged as a warning.
 */
export function inClusterPod(logger: Logger, env: Env = process.env, serviceAccountDir = SERVICE_ACCOUNT_DIR): AnnotatablePod | null {
  const target = findPodTarget(env, serviceAccountDir);
  if (!target.inCluster) {
    const log = logger.child({ component: "pod-deletion-cost" });
    if (target.misconfigured) log.warn({ reason: target.reason }, "pod deletion cost disabled");
    else log.debug({ reason: target.reason }, "pod deletion cost disabled");
    return null;
  }
  return { name: target.name, namespace: target.namespace, annotate: inClusterAnnotator(target.name, target.namespace, env, serviceAccountDir) };
}

/** Keeps `pod`'s deletion cost at the running generations, through whatever client annotates it. */
export function startPodDeletionCost(pod: AnnotatablePod, options: PodDeletionCostOptions): PodDeletionCost {
  const logger = options.logger.child({ component: "pod-deletion-cost" });
  const { annotate } = pod;
  let patched: number | null = null; // the value the API server holds, as far as we know
  let inFlight: Promise<void> | null = null;
  let lastError = "";
  let stopped = false;

  const once = async (): Promise<void> => {
    const cost = deletionCost(options.activeGenerations());
    if (cost === patched) return;
    try {
      await annotate(cost);
      patched = cost;
      if (lastError) logger.info({ pod: pod.name }, "pod deletion cost updates work again");
      lastError = "";
      logger.debug({ pod: pod.name, cost }, "pod deletion cost set");
    } catch (err) {
      // Left unset so the next tick retries; one warning per distinct failure, not per tick.
      const message = describeError(err);
      if (message !== lastError) {
        logger.warn({ pod: pod.name, namespace: pod.namespace, err: message }, "could not set pod deletion cost");
      }
      lastError = message;
    }
  };
  const sync = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    // One PATCH at a time; a sync that finds one running waits for it and then looks again.
    const run = (inFlight ?? Promise.resolve()).then(once);
    const tracked = run.finally(() => {
      if (inFlight === tracked) inFlight = null;
    });
    inFlight = tracked;
    return tracked;
  };

  const timer = setInterval(() => void sync(), options.intervalMs ?? 5000);
  timer.unref();
  void sync();
  logger.info({ pod: pod.name, namespace: pod.namespace }, "keeping the pod deletion cost up to date");

  return {
    sync,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await inFlight;
    },
  };
}

function inClusterAnnotator(name: string, namespace: string, env: Env, serviceAccountDir: string): AnnotatePod {
  // Loaded on first use: the client is large and most runs outside a cluster never need it.
  let api: Promise<(cost: number) => Promise<void>> | null = null;
  const load = async () => {
    const k8s = await import("@kubernetes/client-node");
    const kc = new k8s.KubeConfig();
    // loadFromCluster reads the host and port from process.env; honour the env we were given.
    withEnv(env, () => kc.loadFromCluster(serviceAccountRoot(serviceAccountDir)));
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const headers = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
    return async (cost: number) => {
      await core.patchNamespacedPod({ name, namespace, body: { metadata: { annotations: { [POD_DELETION_COST_ANNOTATION]: String(cost) } } } }, headers);
    };
  };
  return async (cost) => {
    // A failed load (unreadable CA, say) is retried on the next tick, like a failed PATCH.
    api ??= load().catch((err: unknown) => {
      api = null;
      throw err;
    });
    await (
      await api
    )(cost);
  };
}

/** loadFromCluster takes a prefix to the standard path: the root above `serviceAccountDir`. */
function serviceAccountRoot(serviceAccountDir: string): string {
  return serviceAccountDir.endsWith(SERVICE_ACCOUNT_DIR) ? serviceAccountDir.slice(0, -SERVICE_ACCOUNT_DIR.length) : serviceAccountDir;
}

function withEnv(env: Env, fn: () => void): void {
  const keys = ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] as const;
  const saved = keys.map((k) => process.env[k]);
  for (const k of keys) if (env[k] !== undefined) process.env[k] = env[k];
  try {
    fn();
  } finally {
    keys.forEach((k, i) => {
      if (saved[i] === undefined) delete process.env[k];
      else process.env[k] = saved[i];
    });
  }
}

function describeError(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  if (typeof e?.code === "number") {
    const body = typeof e.body === "string" ? e.body : JSON.stringify(e.body ?? "");
    let reason = body;
    try {
      reason = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON: keep the text
    }
    return `HTTP ${e.code}: ${reason.slice(0, 300)}`;
  }
  return e?.message ?? String(err);
}
