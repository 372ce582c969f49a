/**
 * worker/pod-deletion-cost.ts: the pure parts, then the real @kubernetes/client-node
 * talking to an API server over TLS with the service account's CA and bearer token.
 *
 * The API server here is a stand-in, to drive the failure cases (k8s-chart.test.ts runs
 * the module against the real kube-apiserver and RBAC): a real HTTPS server on 127.0.0.1
 * that speaks the one call the module makes
 * (PATCH /api/v1/namespaces/{ns}/pods/{name} with a JSON merge patch) the way the real
 * one does (401 without the token, 415 for another patch type, 403/404 as Status objects).
 * The client, its in-cluster config loading, TLS verification and auth are the real ones.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import {
  deletionCost,
  findPodTarget,
  inClusterPod,
  POD_DELETION_COST_ANNOTATION,
  SERVICE_ACCOUNT_DIR,
  startPodDeletionCost,
  type PodDeletionCostOptions,
} from "../../worker/pod-deletion-cost.js";

function memoryLogger() {
  const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "trace" }, stream), lines, warnings: () => lines.filter((l) => l.level >= 40) };
}

describe("deletionCost", () => {
  it("is the number of running generations, an int32 never below 0", () => {
    assert.equal(deletionCost(0), 0);
    assert.equal(deletionCost(3), 3);
    assert.equal(deletionCost(2.7), 2);
    assert.equal(deletionCost(-1), 0);
    assert.equal(deletionCost(Number.NaN), 0);
    assert.equal(deletionCost(1e12), 2_147_483_647);
  });
});

describe("findPodTarget", () => {
  const sa = "/sa";
  const hasToken = (p: unknown) => p === "/sa/token";
  it("outside a cluster: disabled, and not a misconfiguration (stays quiet)", () => {
    const t = findPodTarget({ POD_NAME: "w-0", POD_NAMESPACE: "llm" }, sa, hasToken);
    assert.deepEqual(t, { inCluster: false, reason: "not running in a Kubernetes cluster", misconfigured: false });
  });
  it("in a cluster without the downward API variables: disabled, and says which are missing", () => {
    const t = findPodTarget({ KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" }, sa, hasToken);
    assert.equal(t.inCluster, false);
    assert.ok(!t.inCluster && t.misconfigured && /POD_NAME and POD_NAMESPACE/.test(t.reason));
  });
  it("in a cluster without a service account token: disabled, misconfigured", () => {
    const env = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443", POD_NAME: "w", POD_NAMESPACE: "n" };
    const t = findPodTarget(env, sa, () => false);
    assert.ok(!t.inCluster && t.misconfigured && /token/.test(t.reason));
  });
  it("in a cluster with everything: the pod's name and namespace", () => {
    const env = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443", POD_NAME: "w-0", POD_NAMESPACE: "llm" };
    assert.deepEqual(findPodTarget(env, sa, hasToken), { inCluster: true, name: "w-0", namespace: "llm" });
  });
});

describe("outside a cluster", () => {
  it("has no pod to annotate, and logs nothing above debug", async () => {
    const { logger, warnings, lines } = memoryLogger();
    assert.equal(inClusterPod(logger, { POD_NAME: "w-0", POD_NAMESPACE: "llm" }), null);
    assert.deepEqual(warnings(), []);
    assert.ok(lines.every((l) => l.level <= 20));
  });
});

/** The worker's own in-cluster pod (env and a mounted service account under `root`), kept up to date. */
function startInCluster(options: PodDeletionCostOptions & { env: Record<string, string>; root: string }) {
  const pod = inClusterPod(options.logger, options.env, path.join(options.root, SERVICE_ACCOUNT_DIR));
  assert.ok(pod, "in a cluster: a pod to annotate");
  return startPodDeletionCost(pod, options);
}

interface Received {
  method: string;
  url: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: unknown;
}

/** The stand-in API server (see the file comment): one pod, merge-patchable annotations. */
function startFakeApiServer(cert: { key: string; cert: string }, token: string) {
  const received: Received[] = [];
  const annotations: Record<string, string> = {};
  let failNext: number | null = null;
  const server = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString()));
    req.on("end", () => {
      const body = data ? JSON.parse(data) : undefined;
      received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        contentType: req.headers["content-type"],
        authorization: req.headers.authorization,
        body,
      });
      const status = (code: number, reason: string, message: string) => {
        res.writeHead(code, { "content-type": "application/json" });
        res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code }));
      };
      if (req.headers.authorization !== `Bearer ${token}`) return status(401, "Unauthorized", "Unauthorized");
      const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)/.exec(req.url ?? "");
      if (req.method !== "PATCH" || !m) return status(404, "NotFound", `no route ${req.method} ${req.url}`);
      if (m[1] !== "llm" || m[2] !== "worker-abc") return status(404, "NotFound", `pods "${m[2]}" not found`);
      if (req.headers["content-type"] !== "application/merge-patch+json") {
        return status(415, "UnsupportedMediaType", `the body of the request was in an unknown format`);
      }
      if (failNext !== null) {
        const code = failNext;
        failNext = null;
        return status(code, "Forbidden", `pods "worker-abc" is forbidden: cannot patch resource "pods"`);
      }
      Object.assign(annotations, (body as { metadata: { annotations: Record<string, string> } }).metadata.annotations);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ kind: "Pod", apiVersion: "v1", metadata: { name: m[2], namespace: m[1], annotations } }));
    });
  });
  return {
    server,
    received,
    annotations,
    failOnce(code: number) {
      failNext = code;
    },
    async listen(): Promise<number> {
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      return (server.address() as AddressInfo).port;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe("in a cluster (real client, stand-in API server over TLS)", { timeout: 60_000 }, () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "pdc-"));
  const token = "test-token-" + Math.random().toString(36).slice(2);
  let api: ReturnType<typeof startFakeApiServer>;
  let port: number;

  before(async () => {
    // A self-signed certificate for 127.0.0.1; its own CA file is what the pod trusts.
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        path.join(tmp, "key.pem"),
        "-out",
        path.join(tmp, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=kubernetes",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "pipe" },
    );
    const cert = { key: readFileSync(path.join(tmp, "key.pem"), "utf8"), cert: readFileSync(path.join(tmp, "cert.pem"), "utf8") };
    const sa = path.join(tmp, SERVICE_ACCOUNT_DIR);
    mkdirSync(sa, { recursive: true });
    writeFileSync(path.join(sa, "ca.crt"), cert.cert);
    writeFileSync(path.join(sa, "token"), token);
    writeFileSync(path.join(sa, "namespace"), "llm");
    api = startFakeApiServer(cert, token);
    port = await api.listen();
  });

  after(async () => {
    await api?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const env = () => ({
    KUBERNETES_SERVICE_HOST: "127.0.0.1",
    KUBERNETES_SERVICE_PORT: String(port),
    POD_NAME: "worker-abc",
    POD_NAMESPACE: "llm",
  });

  it("PATCHes the annotation with a merge patch and the token, and only when the value changes", async () => {
    const { logger, warnings } = memoryLogger();
    let active = 0;
    const pdc = startInCluster({
      logger,
      activeGenerations: () => active,
      env: env(),
      root: tmp,
      intervalMs: 3_600_000, // driven by sync() here
    });
    try {
      await pdc.sync(); // the first value is always sent: the pod starts without the annotation
      assert.equal(api.received.length, 1);
      const first = api.received[0]!;
      assert.equal(first.method, "PATCH");
      assert.equal(first.url, "/api/v1/namespaces/llm/pods/worker-abc");
      assert.equal(first.contentType, "application/merge-patch+json");
      assert.equal(first.authorization, `Bearer ${token}`);
      assert.deepEqual(first.body, { metadata: { annotations: { [POD_DELETION_COST_ANNOTATION]: "0" } } });

      await pdc.sync();
      await pdc.sync();
      assert.equal(api.received.length, 1, "an unchanged value is not sent again");

      active = 3;
      await pdc.sync();
      assert.equal(api.received.length, 2);
      assert.equal(api.annotations[POD_DELETION_COST_ANNOTATION], "3");

      active = 0;
      await Promise.all([pdc.sync(), pdc.sync(), pdc.sync()]);
      assert.equal(api.received.length, 3, "concurrent syncs send one PATCH");
      assert.equal(api.annotations[POD_DELETION_COST_ANNOTATION], "0");
      assert.deepEqual(warnings(), []);
    } finally {
      await pdc.stop();
    }
  });

  it("a refused PATCH is logged once and retried until it goes through", async () => {
    const { logger, warnings } = memoryLogger();
    const before = api.received.length;
    let active = 5;
    const pdc = startInCluster({ logger, activeGenerations: () => active, env: env(), root: tmp, intervalMs: 3_600_000 });
    try {
      await pdc.sync(); // the start-up sync: value 5 goes through
      assert.equal(api.annotations[POD_DELETION_COST_ANNOTATION], "5");
      active = 1;
      api.failOnce(403);
      await pdc.sync();
      assert.equal(api.annotations[POD_DELETION_COST_ANNOTATION], "5", "the refused value did not land");
      const w = warnings();
      assert.equal(w.length, 1);
      assert.match(String(w[0]!.err), /HTTP 403: pods "worker-abc" is forbidden/);
      await pdc.sync(); // retried although the value did not change since the last try
      assert.equal(api.annotations[POD_DELETION_COST_ANNOTATION], "1");
      assert.equal(api.received.length - before, 3);
      assert.equal(warnings().length, 1);
    } finally {
      await pdc.stop();
    }
  });

  it("keeps the annotation up to date on its own timer", async () => {
    const { logger } = memoryLogger();
    let active = 2;
    const pdc = startInCluster({ logger, activeGenerations: () => active, env: env(), root: tmp, intervalMs: 20 });
    try {
      await waitFor(() => api.annotations[POD_DELETION_COST_ANNOTATION] === "2");
      active = 7;
      await waitFor(() => api.annotations[POD_DELETION_COST_ANNOTATION] === "7");
    } finally {
      await pdc.stop();
    }
    const count = api.received.length;
    active = 9;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(api.received.length, count, "nothing is sent after stop()");
  });

  it("a wrong token is refused by the server and reported, not thrown", async () => {
    const { logger, warnings } = memoryLogger();
    const sa = path.join(tmp, "other", SERVICE_ACCOUNT_DIR);
    mkdirSync(sa, { recursive: true });
    writeFileSync(path.join(sa, "ca.crt"), readFileSync(path.join(tmp, SERVICE_ACCOUNT_DIR, "ca.crt")));
    writeFileSync(path.join(sa, "token"), "not-the-token");
    const pdc = startInCluster({
      logger,
      activeGenerations: () => 4,
      env: env(),
      root: path.join(tmp, "other"),
      intervalMs: 3_600_000,
    });
    try {
      await pdc.sync();
      assert.equal(warnings().length, 1);
      assert.match(String(warnings()[0]!.err), /HTTP 401/);
    } finally {
      await pdc.stop();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
