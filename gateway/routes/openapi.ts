/** GET /openapi.json: the OpenAPI document of this gateway, as configured (public, like the page). */
import type { FastifyInstance } from "fastify";
import type { GatewayDeps } from "../deps.js";
import { openApiDocument } from "../openapi/document.js";

export function registerOpenApiRoute(app: FastifyInstance, deps: Pick<GatewayDeps, "config">): void {
  // Built once: the document depends only on the configuration.
  const document = JSON.stringify(openApiDocument({ maxContentChars: deps.config.maxContentChars }));
  app.get("/openapi.json", { config: { public: true } }, async (_request, reply) =>
    reply.header("content-type", "application/json; charset=utf-8").send(document),
  );
}
