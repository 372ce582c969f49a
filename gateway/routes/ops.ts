/** Liveness, readiness and metrics: served without an API key (a cluster's probes and Prometheus call them). */
import type { FastifyInstance } from "fastify";
import type { GatewayDeps } from "../deps.js";

export function registerOpsRoutes(app: FastifyInstance, deps: GatewayDeps): void {
  const open = { config: { public: true } };

  /** Fails only when the process cannot recover by itself, so that a restart is the cure. */
  app.get("/healthz", open, async (_request, reply) => {
    const failure = deps.failure();
    return failure === null ? { status: "ok" } : reply.code(503).send({ status: "failed", reason: failure });
  });

  /**
   * Ready once the replica has read the recent requests and events (so it can answer for
   * requests other replicas accepted) and the memory topic. Kafka going away later does
   * not make it unready: clients then get a 503 that says so, not a dropped connection.
   */
  app.get("/readyz", open, async (_request, reply) => {
    const ready = deps.ready();
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "starting" });
  });

  app.get("/metrics", open, async (_request, reply) => {
    reply.header("content-type", deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}
