/**
 * The gateway's spans (platform/tracing.ts sets tracing up; nothing here runs while it is off):
 *
 *   POST /v1/chat/completions   the HTTP call (kind server), continuing the caller's traceparent
 *   ├─ send chat.requests       the produce (gateway/kafka/publisher.ts), whose context the record carries
 *   │    … the worker's spans (worker/turn-trace.ts) …
 *   ├─ receive chat.events      from the produce to the request's terminal event read here,
 *   │                           linked to the worker run that wrote it
 *   └─ write sse                a stream's writes, from its first frame to its end
 *
 * A background response's later poll (GET /v1/responses/{id}) joins its request's trace
 * with a `poll response` span, found through the traceparent the hub keeps per request
 * (from this replica's produce, or from the record's headers when another replica took it).
 */
import { SpanKind, SpanStatusCode, context, trace, type Attributes, type Span } from "@opentelemetry/api";
import type { FastifyInstance } from "fastify";
import type { ChatEvent } from "../contracts/records/events.js";
import type { ChatRequest } from "../contracts/records/requests.js";
import { contextOfHeaders, contextOfTraceparent, startSpan, tracingOn } from "../platform/tracing.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The call's server span, while tracing is on. */
    span?: Span;
  }
}

/** Server spans for every call, and each route's handler run inside its call's span. */
export function registerTracing(app: FastifyInstance, options: { model: string }): void {
  if (!tracingOn()) return;
  app.addHook("onRoute", (route) => {
    const handler = route.handler;
    route.handler = function traced(this: unknown, request, reply) {
      const span = request.span;
      if (span === undefined) return handler.call(this as FastifyInstance, request, reply);
      return context.with(trace.setSpan(context.active(), span), () => handler.call(this as FastifyInstance, request, reply));
    };
  });
  app.addHook("onRequest", async (request, reply) => {
    const route = request.routeOptions.url;
    const span = startSpan(route ? `${request.method} ${route}` : request.method, contextOfHeaders(request.headers), {
      kind: SpanKind.SERVER,
      attributes: {
        "http.request.method": request.method,
        "url.path": request.url.split("?")[0],
        "url.scheme": request.protocol,
        ...(route && { "http.route": route }),
        ...(request.headers["user-agent"] && { "user_agent.original": request.headers["user-agent"] }),
        "network.peer.address": request.ip,
        ...(route?.startsWith("/v1/chat/") || route?.startsWith("/v1/responses") ? { "gen_ai.request.model": options.model } : {}),
      },
    });
    request.span = span;
    // 'close' comes when the response is over, whole or streamed, or the client has gone.
    reply.raw.once("close", () => {
      const status = reply.raw.statusCode;
      span.setAttribute("http.response.status_code", status);
      if (request.tenant) span.setAttribute("kafka_llm.tenant", request.tenant);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      if (!reply.raw.writableFinished) span.setAttribute("kafka_llm.client_gone", true);
      span.end();
    });
  });
}

interface Reading {
  readonly span: Span;
  readonly startedAt: number;
  events: number;
}

/**
 * The spans of requests accepted here: the produce's (`send chat.requests`), and
 * `receive chat.events`, one per request from its produce to its terminal event, bounded
 * like the hub (the oldest is ended past `max`, and any past `ttlMs`).
 */
export class RequestTraces {
  readonly #reads = new Map<string, Reading>();
  constructor(
    readonly topics: { readonly requests: string; readonly events: string },
    readonly max: number,
    readonly ttlMs: number,
  ) {}

  /** The produce's span, under the active context (the call's). */
  sendSpan(request: ChatRequest): Span {
    return startSpan(`send ${this.topics.requests}`, context.active(), {
      kind: SpanKind.PRODUCER,
      attributes: {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": this.topics.requests,
        "messaging.message.id": request.request_id,
        "kafka_llm.request.type": request.type,
        "kafka_llm.tenant": request.tenant,
        "gen_ai.conversation.id": request.conversation_id,
      },
    });
  }

  /** A request was produced here, in the active context (its HTTP call's). */
  produced(requestId: string): void {
    if (!tracingOn()) return;
    const now = Date.now();
    for (const [id, read] of this.#reads) {
      if (this.#reads.size < this.max && now - read.startedAt <= this.ttlMs) break;
      read.span.setAttribute("kafka_llm.abandoned", true);
      read.span.end();
      this.#reads.delete(id);
    }
    // A keyed retry produced again: the earlier read gives way to this call's.
    this.#reads.get(requestId)?.span.setAttribute("kafka_llm.superseded", true).end();
    this.#reads.delete(requestId);
    const span = startSpan(`receive ${this.topics.events}`, context.active(), {
      kind: SpanKind.CONSUMER,
      attributes: {
        "messaging.system": "kafka",
        "messaging.operation.type": "receive",
        "messaging.destination.name": this.topics.events,
        "kafka_llm.request.id": requestId,
      },
    });
    this.#reads.set(requestId, { span, startedAt: now, events: 0 });
  }

  /** An event read from chat.events, with its record's headers (the worker run's trace context). */
  event(event: ChatEvent, headers: Readonly<Record<string, Buffer | string>> | undefined): void {
    const read = this.#reads.get(event.request_id);
    if (!read) return;
    read.events++;
    if (event.type === "start") read.span.addEvent("start", { "kafka_llm.worker_id": event.worker_id, "kafka_llm.attempt": event.attempt });
    else if (read.events === 1 || (event.type === "delta" && read.events === 2)) read.span.addEvent("first event", { "kafka_llm.event.type": event.type });
    if (event.type !== "final" && event.type !== "error") return;
    const worker = trace.getSpanContext(contextOfHeaders(headers));
    if (worker) read.span.addLink({ context: worker, attributes: { "kafka_llm.link": "the worker run that wrote the terminal event" } });
    read.span.setAttributes({ "kafka_llm.events": read.events, "kafka_llm.attempt": event.attempt, "kafka_llm.terminal": event.type });
    if (event.type === "error") read.span.setStatus({ code: SpanStatusCode.ERROR, message: event.code });
    read.span.end();
    this.#reads.delete(event.request_id);
  }

  /** Ends what is open (at shutdown). */
  close(): void {
    for (const read of this.#reads.values()) read.span.end();
    this.#reads.clear();
  }
}

/** A `write sse` span under the active context (the call's), or undefined while tracing is off. */
export function sseSpan(): Span | undefined {
  if (!tracingOn()) return undefined;
  return startSpan("write sse", context.active(), { attributes: {} });
}

/**
 * A poll of a request (GET /v1/responses/{id}) as a `poll response` span of that request's
 * trace, from `startedAt` (ms since the epoch) to now, linked to the poll's own call.
 */
export function recordPoll(traceparent: string | null | undefined, startedAt: number, attributes: () => Attributes): void {
  if (!tracingOn() || !traceparent) return;
  const call = trace.getActiveSpan();
  startSpan("poll response", contextOfTraceparent(traceparent), {
    startTime: startedAt,
    attributes: attributes(),
    ...(call && { links: [{ context: call.spanContext(), attributes: { "kafka_llm.link": "the poll's HTTP call" } }] }),
  }).end();
}
