/**
 * HTTP latency by route, as Prometheus and OpenTelemetry name it
 * (kafka_llm_gateway_http_request_duration_seconds{method,route,status_code}). The route is
 * Fastify's template (/v1/conversations/:id/messages), never the URL, so ids in paths cannot
 * grow the series; a call no route took counts as route="unmatched".
 *
 * The time runs until the response's connection is done with it ("close"), not until
 * Fastify's onResponse: a streamed reply (SSE, which the routes hijack) is timed to its end,
 * and one whose client leaves mid-stream, which never finishes and so never reaches
 * onResponse, is timed to the moment it left. A client that leaves before any response
 * began gets 499, as nginx counts it. Register this before any hook that may answer
 * (authentication), so refused calls are timed too.
 */
import type { FastifyInstance } from "fastify";
import type { GatewayMetrics } from "./metrics.js";

/** The route label of a call no route matched (a 404, a URL the router refused). */
export const UNMATCHED_ROUTE = "unmatched";
/** The status of a call whose client left before a response began. */
const CLIENT_LEFT = "499";

export function registerHttpMetrics(app: FastifyInstance, metrics: Pick<GatewayMetrics, "httpRequestDuration">): void {
  app.addHook("onRequest", async (request, reply) => {
    const started = performance.now();
    reply.raw.once("close", () => {
      metrics.httpRequestDuration.observe(
        {
          method: request.method,
          route: request.routeOptions.url ?? UNMATCHED_ROUTE,
          status_code: reply.raw.headersSent ? String(reply.raw.statusCode) : CLIENT_LEFT,
        },
        (performance.now() - started) / 1000,
      );
    });
  });
}
