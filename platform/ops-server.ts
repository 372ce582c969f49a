/**
 * The small HTTP server a worker exposes for Kubernetes and Prometheus: /startupz (started:
 * the model is loaded), /healthz (alive: not hung), /readyz (ready for work), /metrics, and
 * whatever `route` answers (the worker's conversation reads for the gateways,
 * worker/query-server.ts).
 *
 * Liveness tells a hung process from a busy one: generation runs on llama.cpp's threads, so
 * a busy worker's event loop still answers at once; a blocked event loop does not answer at
 * all (the probe times out), and `live` names what else has stopped (e.g. the request
 * consumer's poll loop), so the kubelet restarts only a worker that would never recover.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface OpsServer {
  readonly port: number;
  /** Adds (or replaces) the extra route, e.g. once what it serves exists. */
  setRoute(route: OpsRoute): void;
  close(): Promise<void>;
}

/**
 * A route besides the built-in ones: returns true when it took the request (and answers
 * it, possibly later), false to let the server answer 404. It must not throw.
 */
export type OpsRoute = (req: http.IncomingMessage, res: http.ServerResponse, path: string) => boolean;

export interface OpsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  ready: () => boolean;
  /** Started (the startup probe's question); true when absent. */
  started?: () => boolean;
  /** Why the process is not alive (hung), or null when it is; alive when absent. */
  live?: () => string | null;
  route?: OpsRoute;
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  let route = options.route ?? null;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { error: "method not allowed" });
    if (path === "/healthz") {
      const hung = options.live?.() ?? null;
      return hung === null ? send(res, 200, { status: "ok" }) : send(res, 503, { status: "hung", reason: hung });
    }
    if (path === "/startupz") {
      const started = options.started?.() ?? true;
      return send(res, started ? 200 : 503, { status: started ? "started" : "starting" });
    }
    if (path === "/readyz") {
      const ready = options.ready();
      return send(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready" });
    }
    if (path === "/metrics") {
      options.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": options.registry.contentType });
          res.end(text);
        },
        (err: Error) => send(res, 500, { error: err.message }),
      );
      return;
    }
    if (route?.(req, res, path)) return;
    send(res, 404, { error: `no route ${path}` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    setRoute(next) {
      route = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Gateways keep connections open for their reads: they would hold close() until they time out.
        server.closeAllConnections();
      }),
  };
}

export function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
