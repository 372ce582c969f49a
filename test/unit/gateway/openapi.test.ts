/**
 * The OpenAPI document: served at /openapi.json as generated for the running config, and
 * describing exactly the routes the gateway has (a route added without its entry in
 * gateway/openapi/document.ts fails here).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { loadGatewayConfig } from "../../../contracts/config/gateway.js";
import { buildGateway } from "../../../gateway/app.js";
import type { GatewayDeps } from "../../../gateway/deps.js";
import { createGatewayMetrics } from "../../../gateway/metrics.js";
import { openApiDocument } from "../../../gateway/openapi/document.js";

function gateway(env: Record<string, string> = {}) {
  const config = loadGatewayConfig({ GATEWAY_API_KEYS: "acme:k1", ...env });
  // Only the config (and the metrics every call counts in) is used by the routes this file calls; the rest must not be reached.
  const unused = new Proxy({}, { get: () => assert.fail("not used by these routes") });
  const deps = {
    config,
    logger: pino({ level: "silent" }),
    hub: unused,
    memory: null,
    metrics: createGatewayMetrics({ trackedRequests: () => 0, recentTurns: () => ({ meanSeconds: 0, count: 0 }) }),
    publisher: unused,
    authenticate: () => "acme",
    ready: () => true,
    failure: () => null,
  };
  return buildGateway(deps as unknown as GatewayDeps);
}

/** "METHOD /path/{param}" for every route fastify has, from its route tree. */
function routesOf(tree: string): Set<string> {
  const routes = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split("\n")) {
    const match = /^([│ ├└─]*)(\S.*) \(([A-Z, ]+)\)$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    stack.push(match[2]!);
    const url = stack
      .join("")
      .replace(/\/\//g, "/")
      .replace(/:([A-Za-z]+)/g, "{$1}");
    const path = url.startsWith("/") ? url : `/${url}`;
    for (const method of match[3]!.split(", ")) if (method !== "HEAD") routes.add(`${method} ${path === "/" ? "/" : path.replace(/\/$/, "")}`);
  }
  return routes;
}

describe("OpenAPI document", () => {
  it("is served without an API key, as generated for the gateway's config", async () => {
    const app = gateway({ GATEWAY_MAX_CONTENT_CHARS: "1234" });
    const res = await app.inject({ method: "GET", url: "/openapi.json" });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^application\/json/);
    const served = res.json();
    assert.deepEqual(served, JSON.parse(JSON.stringify(openApiDocument({ maxContentChars: 1234 }))));
    assert.equal(served.openapi, "3.1.0");
    const body = served.paths["/v1/conversations/{id}/messages"].post.requestBody.content["application/json"].schema;
    assert.equal(body.properties.content.maxLength, 1234, "the bound of GATEWAY_MAX_CONTENT_CHARS is the one documented");
    assert.deepEqual(body.required, ["content"]);
    assert.equal(body.additionalProperties, false);
  });

  it("describes every route the gateway has, and no other", async () => {
    const app = gateway();
    await app.ready();
    const routes = routesOf(app.printRoutes({ commonPrefix: false }));
    assert.ok(routes.has("POST /v1/chat/completions") && routes.has("GET /v1/requests/{id}/events"), `route tree parsed: ${[...routes].join(", ")}`);
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(openApiDocument({ maxContentChars: 100 }).paths ?? {})) {
      for (const method of ["get", "post", "put", "patch", "delete"])
        if ((item as Record<string, unknown>)[method]) documented.add(`${method.toUpperCase()} ${path}`);
    }
    assert.deepEqual([...routes].sort(), [...documented].sort());
  });

  it("takes the generation bounds and OpenAI parameters from the schemas the routes validate with", () => {
    const doc = openApiDocument({ maxContentChars: 100 });
    const chat = (doc.paths!["/v1/chat/completions"]!.post!.requestBody as any).content["application/json"].schema;
    assert.deepEqual(chat.required, ["model", "messages"]);
    assert.equal(chat.properties.max_tokens.maximum, 8192);
    assert.equal(chat.properties.top_p.exclusiveMinimum, 0);
    const history = doc.paths!["/v1/conversations/{id}/messages"]!.get!.parameters as any[];
    assert.deepEqual(history.find((p) => p.name === "limit").schema, { type: "integer", minimum: 1, maximum: 500, default: 50 });
    const errors = doc.paths!["/v1/requests/{id}"]!.get!.responses!;
    assert.ok(errors["401"] && errors["404"], "error bodies are described");
  });
});
