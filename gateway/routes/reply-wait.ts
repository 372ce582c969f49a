/**
 * What the OpenAI-compatible routes share while a client waits for a whole reply: the wait
 * for the request's terminal event, bounded by the client (a connection that closes stops
 * it) and by GATEWAY_REQUEST_DEADLINE_MS (no wait is endless: past it, 504 naming the
 * request, which goes on), and the cancel of a request whose client left.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FinalEvent } from "../../contracts/records/events.js";
import type { TurnRequest } from "../../contracts/records/requests.js";
import type { GatewayDeps } from "../deps.js";
import { ApiError } from "../errors.js";
import { awaitTerminal, cancel, errorOfEvent } from "../intake.js";
import { deadlineError } from "./requests.js";

type RequestRef = Pick<TurnRequest, "request_id" | "tenant">;

/**
 * The request's final event. Throws its error event as an API error, a 504 past the
 * deadline, and generation_failed when the client left (the request is then cancelled,
 * unless the client can retry it) or the request is no longer tracked.
 */
export async function awaitReply(deps: GatewayDeps, request: FastifyRequest, reply: FastifyReply, turn: RequestRef): Promise<FinalEvent> {
  const left = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) left.abort();
  };
  reply.raw.on("close", onClose);
  let expired = false;
  const deadline = setTimeout(() => {
    expired = true;
    left.abort();
  }, deps.config.requests.deadlineMs);
  const terminal = await awaitTerminal(deps, turn.request_id, left.signal);
  clearTimeout(deadline);
  reply.raw.off("close", onClose);
  if (terminal === null) {
    if (expired) throw deadlineError(turn.request_id, deps.config.requests.deadlineMs);
    if (left.signal.aborted) await cancelForDisconnect(deps, request, turn);
    // The client is gone (or the request was evicted): there is nobody to answer.
    throw new ApiError("generation_failed", "the request ended without a reply");
  }
  if (terminal.type === "error") throw errorOfEvent(terminal);
  return terminal;
}

/**
 * Cancels the request of a client that left mid-reply, unless it ended or the client sent
 * an Idempotency-Key: such a client retries (the openai SDK does on a timeout or a dropped
 * connection), and the request goes on for the retry to find.
 */
export async function cancelForDisconnect(deps: GatewayDeps, request: FastifyRequest, turn: RequestRef): Promise<void> {
  if (deps.hub.get(turn.request_id)?.done) return;
  if (request.headers["idempotency-key"] !== undefined) return;
  try {
    await cancel(deps, turn.request_id, turn.tenant, "the client disconnected", "disconnect");
    request.log.info({ request_id: turn.request_id }, "client left mid-reply: request cancelled");
  } catch (err) {
    request.log.warn({ request_id: turn.request_id, err: (err as Error).message }, "client left mid-reply; the cancel could not be written");
  }
}
