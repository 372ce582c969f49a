/**
 * The gateway's HTTP server: error mapping, authentication, metrics per response, and
 * the route modules. Routes validate their input, put requests on Kafka and answer from
 * the hub and the conversations' owning workers; no route talks to a model.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import { KafkaLlmError } from "../contracts/errors.js";
import type { GatewayDeps } from "./deps.js";
import { clientErrorHandler, sendError, toKafkaLlmError, type Dialect } from "./errors.js";
import { registerConversationRoutes } from "./routes/conversations.js";
import { registerOpenAiRoutes } from "./routes/openai.js";
import { registerOpenApiRoute } from "./routes/openapi.js";
import { registerAdmission } from "./admission.js";
import { registerHttpMetrics } from "./http-metrics.js";
import { registerOpsRoutes } from "./routes/ops.js";
import { registerRequestRoutes } from "./routes/requests.js";
import { registerResponseRoutes } from "./routes/responses.js";
import { registerWebRoutes } from "./routes/web.js";
import { registerTracing } from "./tracing.js";

export type { GatewayDeps } from "./deps.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's tenant, set by the auth hook ("" on public routes). */
    tenant: string;
  }
  interface FastifyContextConfig {
    /** Served without an API key (health, metrics, the web page). */
    public?: boolean;
    /** The error body the route speaks; native unless said. */
    dialect?: Dialect;
  }
}

/** How often Node checks open connections against the header and request timeouts, ms (its own default is 30 s). */
const TIMEOUT_CHECK_MS = 1000;

export function buildGateway(deps: GatewayDeps): FastifyInstance {
  const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, maxConnections } = deps.config.http;
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.config.http.bodyLimitBytes,
    disableRequestLogging: true,
    // Ids in paths are at most 128 characters; anything longer is not ours.
    routerOptions: { maxParamLength: 256 },
    // A client has this long to send its headers, and its whole request: one that sends a
    // byte a second (slow loris) is cut with a 408. Node bounds only receiving the request,
    // never the response, so a stream (SSE) lasts as long as it has to.
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    http: { headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, headersTimeoutMs) },
    clientErrorHandler,
    // URLs the router rejects before any route runs (bad %-encoding, an over-long id) get
    // the same error body as everything else.
    frameworkErrors: (err, request, reply) => {
      const message =
        err.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? "an id in the path is too long (ids are at most 128 characters)"
          : "the URL is malformed (check its %-encoding)";
      void sendError(reply, new KafkaLlmError("invalid_request", message), dialectOfUrl(request.url));
    },
  });

  // The API speaks JSON only; a text/plain body gets 415 rather than a confusing 400.
  app.removeContentTypeParser("text/plain");
  // Many HTTP clients send content-type: application/json on every call, DELETE and
  // body-less POSTs included: an empty body is no body, not invalid JSON.
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (body === "") return done(null, undefined);
    return json(request, body as string, done);
  });
  app.decorateRequest("tenant", "");

  app.setErrorHandler((err, request, reply) => {
    const error = toKafkaLlmError(err);
    if (error.code === "internal") request.log.error({ err }, "unhandled error");
    return sendError(reply, error, request.routeOptions.config?.dialect ?? "native");
  });
  app.setNotFoundHandler((request, reply) => {
    return sendError(reply, new KafkaLlmError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`), dialectOfUrl(request.url));
  });

  // Server spans (first, so that refused calls are traced too) and each handler in its call's span.
  registerTracing(app, { model: deps.config.modelName });
  registerHttpMetrics(app, deps.metrics);

  // At onRequest, before any of the body is read: a request without a valid key is answered
  // at once, and its connection closed rather than drained of a body nobody will read.
  app.addHook("onRequest", async (request, reply) => {
    if (request.routeOptions.config?.public) return;
    try {
      request.tenant = deps.authenticate(request.headers.authorization);
    } catch (err) {
      if (hasBody(request.headers)) reply.header("connection", "close");
      throw err;
    }
  });

  app.addHook("onResponse", async (request, reply) => {
    deps.metrics.httpResponses.inc({ route: request.routeOptions.url ?? "unknown", status: String(reply.statusCode) });
  });

  registerAdmission(app, {
    ...(deps.quotas && { quotas: deps.quotas }),
    inFlight: (tenant) => deps.hub.inFlight(tenant),
    draining: () => deps.draining?.() ?? false,
  });

  registerOpsRoutes(app, deps);
  registerOpenApiRoute(app, deps);
  registerWebRoutes(app, deps.logger);
  registerConversationRoutes(app, deps);
  registerRequestRoutes(app, deps);
  registerOpenAiRoutes(app, deps);
  registerResponseRoutes(app, deps);
  // Past the cap Node closes a new connection as it arrives (each open stream holds one).
  app.server.maxConnections = maxConnections;
  return app;
}

/** The error body of a URL no route has taken yet: OpenAI's under the OpenAI-compatible paths (/v1/chat/, /v1/models). */
function dialectOfUrl(url: string): Dialect {
  return /^\/v1\/(chat\/|responses(\/|\?|$)|models(\/|\?|$))/.test(url) ? "openai" : "native";
}

function hasBody(headers: FastifyRequest["headers"]): boolean {
  return headers["transfer-encoding"] !== undefined || (headers["content-length"] !== undefined && headers["content-length"] !== "0");
}
