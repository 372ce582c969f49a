/**
 * A request after it was accepted: its status (to poll), its events (to stream, resumable
 * with Last-Event-ID) and its cancellation. Any replica answers for any request: each
 * reads every request, and the events of one it does not read while it follows it
 * (gateway/kafka/event-partitions.ts).
 */
import type { FastifyInstance } from "fastify";
import { isTerminalEvent } from "../../contracts/records/events.js";
import { SCHEMA_VERSION, requestIdSchema } from "../../contracts/records/fields.js";
import type { GatewayDeps } from "../deps.js";
import { ApiError, parseInput } from "../errors.js";
import type { RequestSnapshot } from "../event-hub.js";
import { cancel, findRequest, idempotencyKeyOf, requestLinks } from "../intake.js";
import { requestStatus } from "../request-status.js";
import { formatQueued } from "../kafka/queue-watch.js";
import { SseWriter, formatNotice, parseLastEventId } from "../sse.js";
import { cancelBody, emptyQuery, eventsQuery, objectBody } from "./schemas.js";

type IdParams = { id: string };

export function registerRequestRoutes(app: FastifyInstance, deps: GatewayDeps): void {
  app.get<{ Params: IdParams }>("/v1/requests/:id", async (request) => {
    const requestId = parseInput(requestIdSchema, request.params.id, "request id");
    parseInput(emptyQuery, request.query, "query");
    return requestStatus(requestId, await findRequest(deps, requestId, request.tenant));
  });

  app.get<{ Params: IdParams }>("/v1/requests/:id/events", async (request, reply) => {
    const requestId = parseInput(requestIdSchema, request.params.id, "request id");
    const query = parseInput(eventsQuery, request.query, "query");
    const snapshot = await findRequest(deps, requestId, request.tenant);
    const afterSeq = parseLastEventId(request.headers["last-event-id"] ?? query.last_event_id);
    reply.hijack();
    const sse = new SseWriter(reply.raw, deps.config.sseKeepaliveMs);
    let stop: (() => void) | null = null;
    let unwatch: (() => void) | null = null;
    const finish = () => {
      unwatch?.();
      stop?.();
      sse.end();
    };
    // A client that leaves a native stream may come back with Last-Event-ID: no cancel.
    sse.onClose(() => {
      unwatch?.();
      stop?.();
    });
    stop = deps.hub.follow(requestId, afterSeq, (event) => {
      unwatch?.(); // a worker has it: no more queued notices
      unwatch = null;
      sse.event(event);
      if (isTerminalEvent(event)) setImmediate(finish);
    });
    // No wait is endless: past the deadline the stream ends with an error event (without
    // an id, so a resume starts after the last chat event) that says where to look.
    sse.expireAfter(deps.config.requests.deadlineMs, () => {
      if (deps.hub.get(requestId)?.done) return finish(); // its terminal event went out (or the client had it)
      sse.frame(formatNotice("error", deadlineEvent(requestId, deps.hub.get(requestId) ?? snapshot, deps.config.requests.deadlineMs)));
      finish();
    });
    // Evicted between the lookup and now, or done (a client resuming after the terminal
    // event it had gets nothing more): end the stream rather than hang.
    if (stop === null || deps.hub.get(requestId)?.done) finish();
    // Nothing from a worker yet: say every few seconds where the request waits.
    else if (deps.queueWatch && deps.hub.get(requestId)?.events.length === 0 && !sse.ended) {
      unwatch = deps.queueWatch.watch(requestId, (notice) => sse.frame(formatQueued(notice)));
    }
  });

  /**
   * Asks the worker running the request to stop; the request then ends as "cancelled" with
   * the partial reply. Idempotent by itself: a retried cancel (with or without an
   * Idempotency-Key, which is checked like everywhere else) changes nothing more.
   */
  app.post<{ Params: IdParams }>("/v1/requests/:id/cancel", async (request, reply) => {
    idempotencyKeyOf(request.headers);
    const requestId = parseInput(requestIdSchema, request.params.id, "request id");
    parseInput(emptyQuery, request.query, "query");
    const body = parseInput(cancelBody, objectBody(request.body, '{"reason": "user pressed stop"}', true), "body");
    const snapshot = await findRequest(deps, requestId, request.tenant);
    if (!snapshot.done) {
      await cancel(deps, requestId, request.tenant, body.reason ?? "cancelled by the client", "api");
      request.log.info({ request_id: requestId, conversation_id: snapshot.conversationId }, "cancel requested");
    }
    const status = requestStatus(requestId, snapshot);
    return reply.code(202).send({ request_id: requestId, status: status.status });
  });
}

/** The error of a wait that reached GATEWAY_REQUEST_DEADLINE_MS: the request may still end; where to look. */
export function deadlineError(requestId: string, deadlineMs: number): ApiError {
  const { status_url, events_url } = requestLinks(requestId);
  return new ApiError(
    "deadline_exceeded",
    `request ${requestId} did not end within ${deadlineMs / 1000} s (GATEWAY_REQUEST_DEADLINE_MS); it may still be answered: look it up at ${status_url} or follow ${events_url}`,
  );
}

/** The native stream's `error` event for the deadline: a chat error event's fields, with the links. */
function deadlineEvent(requestId: string, snapshot: RequestSnapshot, deadlineMs: number) {
  const error = deadlineError(requestId, deadlineMs);
  return {
    v: SCHEMA_VERSION,
    type: "error",
    request_id: requestId,
    conversation_id: snapshot.conversationId,
    tenant: snapshot.tenant,
    attempt: snapshot.attempt ?? "",
    seq: snapshot.events.length,
    at: Date.now(),
    code: error.code,
    message: error.message,
    retryable: error.retryable,
    ...requestLinks(requestId),
  };
}
