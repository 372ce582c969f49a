/**
 * KEDA on a control plane (lib/control-plane.ts): its CRDs (and the Prometheus Operator's,
 * for the PodMonitors the chart's KEDA values ask for), its operator and its metrics server,
 * the latter registered as the external.metrics.k8s.io APIService. Built by
 * scripts/deploy/k8s/build.sh; the tests that scale with KEDA share this start.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { freePort } from "../../helpers/services.js";
import { bin, crdFiles, makeServingCert, registerExternalMetrics, type ControlPlane } from "./control-plane.js";

/** Starts KEDA on `cp`, its certificates under `tmp`; resolves once its metrics server is Available. */
export async function startKeda(cp: ControlPlane, tmp: string): Promise<void> {
  const keda = cp.parts.keda;
  if (!keda) throw new Error("KEDA is not built: run bash scripts/deploy/k8s/build.sh (without KAFKA_LLM_SKIP_KEDA=1)");
  for (const f of [...crdFiles(cp.parts["keda-crds"]), ...crdFiles(cp.parts["prometheus-operator-crds"])]) cp.kc(["apply", "--server-side", "-f", f]);
  cp.kc(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  cp.kc(["create", "namespace", "keda"]);
  // One certificate from the control plane's CA for the operator's gRPC metrics service,
  // the metrics server's client of it, and the metrics server's own HTTPS.
  const certs = path.join(tmp, "certs");
  mkdirSync(certs);
  makeServingCert(cp, certs, "keda");
  const kedaEnv = { KUBECONFIG: cp.kubeconfig, WATCH_NAMESPACE: "", POD_NAMESPACE: "keda", KEDA_CLUSTER_OBJECT_NAMESPACE: "keda" };
  const grpcPort = await freePort();
  cp.startExtra(
    "keda-operator",
    bin(keda, "keda-operator"),
    [
      "--leader-elect=false",
      `--metrics-bind-address=127.0.0.1:${await freePort()}`,
      `--health-probe-bind-address=127.0.0.1:${await freePort()}`,
      `--metrics-service-bind-address=127.0.0.1:${grpcPort}`,
      `--cert-dir=${certs}`,
      "--enable-cert-rotation=false",
      "--enable-webhook-patching=false",
      "--enable-apiservice-patching=false",
      "--zap-log-level=info",
    ],
    kedaEnv,
  );
  const metricsPort = await freePort();
  cp.startExtra(
    "keda-metrics-apiserver",
    bin(keda, "keda-metrics-apiserver"),
    [
      "--bind-address=127.0.0.1",
      `--secure-port=${metricsPort}`,
      `--port=${await freePort()}`,
      `--cert-dir=${certs}`,
      `--tls-cert-file=${path.join(certs, "tls.crt")}`,
      `--tls-private-key-file=${path.join(certs, "tls.key")}`,
      `--lister-kubeconfig=${cp.kubeconfig}`,
      `--authentication-kubeconfig=${cp.kubeconfig}`,
      `--authorization-kubeconfig=${cp.kubeconfig}`,
      `--metrics-service-address=127.0.0.1:${grpcPort}`,
      "--zap-log-level=info",
    ],
    kedaEnv,
  );
  await registerExternalMetrics(
    cp,
    { name: "keda-operator-metrics-apiserver", namespace: "keda", port: metricsPort },
    "KEDA's metrics server Available as the external metrics APIService",
  );
}
