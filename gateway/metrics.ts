/** The gateway's Prometheus metrics, on a registry of its own. */
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

export function createGatewayMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "kafka_llm_gateway_" });
  return {
    registry,
    requestsAccepted: new Counter({
      name: "kafka_llm_gateway_requests_accepted_total",
      help: "Chat requests put on chat.requests",
      registers: [registry],
    }),
    trackedRequests: new Gauge({
      name: "kafka_llm_gateway_tracked_requests",
      help: "Requests whose events this gateway holds",
      registers: [registry],
    }),
  };
}
