/**
 * The gateway's HTTP API. Routes validate their input, put a request on chat.requests,
 * and stream its events back from the hub. No route talks to a model.
 */
import { randomUUID } from "node:crypto";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { z } from "zod";
import type { GatewayConfig } from "../contracts/config.js";
import { KafkaLlmError } from "../contracts/errors.js";
import {
  MAX_CONTENT_CHARS,
  SCHEMA_VERSION,
  conversationIdSchema,
  describeIssues,
  isTerminalEvent,
  requestIdSchema,
  type ChatRequest,
} from "../contracts/records.js";
import type { Logger } from "../platform/logger.js";
import { sendError, toKafkaLlmError } from "./errors.js";
import type { EventHub } from "./event-hub.js";
import { KEEPALIVE, formatEvent, openEventStream, parseLastEventId } from "./sse.js";

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  hub: EventHub;
  registry: Registry;
  /** Puts a request on chat.requests; rejects when Kafka does not take it. */
  publishRequest(request: ChatRequest): Promise<void>;
}

/** The tenant of every conversation while the gateway runs without API keys. */
const LOCAL_TENANT = "local";

const postMessageBody = z
  .object({
    content: z.string({ required_error: "is required" }).min(1, "must not be empty").max(MAX_CONTENT_CHARS),
    system: z.string().max(MAX_CONTENT_CHARS).optional(),
  })
  .strict();

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new KafkaLlmError("invalid_request", `${what}: ${describeIssues(result.error)}`);
  return result.data;
}

export function buildGateway(deps: GatewayDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, bodyLimit: deps.config.http.bodyLimitBytes, disableRequestLogging: true });

  // The API speaks JSON only; a text/plain body gets 415 rather than a confusing 400.
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((err, request, reply) => {
    const error = toKafkaLlmError(err);
    if (error.code === "internal") request.log.error({ err }, "unhandled error");
    return sendError(reply, error);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new KafkaLlmError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  );

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", deps.registry.contentType);
    return deps.registry.metrics();
  });

  app.post("/v1/conversations/:id/messages", async (request, reply) => {
    const conversationId = parse(conversationIdSchema, (request.params as { id: string }).id, "conversation id");
    if (typeof request.body !== "object" || request.body === null || Array.isArray(request.body)) {
      throw new KafkaLlmError("invalid_request", 'the body must be a JSON object like {"content": "Hello"}');
    }
    const body = parse(postMessageBody, request.body, "body");
    const chatRequest: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "turn",
      request_id: randomUUID(),
      conversation_id: conversationId,
      tenant: LOCAL_TENANT,
      content: body.content,
      ...(body.system === undefined ? {} : { system: body.system }),
      created_at: Date.now(),
    };
    // Track before publishing, so events can never arrive for a request the hub does not know.
    deps.hub.track(chatRequest.request_id, conversationId, chatRequest.tenant);
    try {
      await deps.publishRequest(chatRequest);
    } catch (err) {
      throw new KafkaLlmError("kafka_unavailable", "Kafka did not accept the request; try again", { cause: err });
    }
    request.log.info({ request_id: chatRequest.request_id, conversation_id: conversationId }, "request accepted");
    return reply.code(202).send({ request_id: chatRequest.request_id, conversation_id: conversationId });
  });

  app.get("/v1/requests/:id/events", async (request, reply) => {
    const requestId = parse(requestIdSchema, (request.params as { id: string }).id, "request id");
    if (!deps.hub.has(requestId)) throw new KafkaLlmError("not_found", `no request ${requestId} is known here`);
    const afterSeq = parseLastEventId(request.headers["last-event-id"]);
    const res = reply.raw;
    reply.hijack();
    openEventStream(res);

    let stop: (() => void) | null = null;
    const keepalive = setInterval(() => res.write(KEEPALIVE), deps.config.sseKeepaliveMs);
    const finish = () => {
      clearInterval(keepalive);
      stop?.();
      if (!res.writableEnded) res.end();
    };
    res.on("close", finish);
    stop = deps.hub.follow(requestId, afterSeq, (event) => {
      res.write(formatEvent(event));
      if (isTerminalEvent(event)) setImmediate(finish);
    });
  });

  return app;
}
