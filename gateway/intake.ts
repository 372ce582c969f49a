/**
 * What every route that changes something shares: checking a request against the record
 * schema workers read, tracking it, putting it on Kafka, and finding requests and
 * conversations for a tenant. Another tenant's request is "not found", never "forbidden":
 * its existence is not theirs to learn; a conversation is named by tenant and id together
 * (contracts/conversation-key.ts), so another tenant's is simply another conversation.
 */
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { FastifyBaseLogger } from "fastify";
import { SCHEMA_VERSION } from "../contracts/records/fields.js";
import { chatRequestSchema, type ChatRequest } from "../contracts/records/requests.js";
import { describeIssues, requiredMessage } from "../contracts/records/codec.js";
import { isTerminalEvent, type ErrorEvent, type FinalEvent } from "../contracts/records/events.js";
import type { ConversationState } from "../contracts/records/memory.js";
import { conversationKey } from "../contracts/conversation-key.js";
import type { GatewayDeps } from "./deps.js";
import { ERROR_CODES, type ErrorCode } from "../contracts/errors.js";
import { ApiError, HTTP_STATUS, notFound } from "./errors.js";
import type { RequestSnapshot } from "./event-hub.js";
import { LookupUnavailable } from "./kafka/owners.js";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { startSpan, traceHeaders, tracingOn } from "../platform/tracing.js";

export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Scopes of keyed POSTs that name no conversation (a conversation id never holds a space),
 * so each names its own request: one key may open a conversation and run a stateless
 * completion without the two meeting.
 */
export const KEY_SCOPES = { open: "POST /v1/conversations", completion: "POST /v1/chat/completions", response: "POST /v1/responses" } as const;

/** The request's Idempotency-Key, checked; undefined when it has none. */
export function idempotencyKeyOf(headers: IncomingHttpHeaders): string | undefined {
  const value = headers["idempotency-key"];
  const key = Array.isArray(value) ? value[0] : value;
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new ApiError("invalid_request", "header Idempotency-Key: use 1 to 128 letters, digits, '.', '_', ':' or '-'", { param: "Idempotency-Key" });
  }
  return key;
}

/**
 * The request id of a request made under an Idempotency-Key: derived from (tenant, scope,
 * key), the scope being its conversation or one of KEY_SCOPES. Every replica derives the
 * same id, so a POST retried after a timeout or a 503, here or at another replica, names
 * the request the first made; the worker, which remembers the requests it applied,
 * applies it once however many copies reach Kafka, and answers each with the same final.
 */
export function keyedRequestId(tenant: string, scope: string, key: string): string {
  const h = createHash("sha256").update(`${tenant}\0${scope}\0${key}`).digest("hex");
  // Shaped as a UUID (version 8, RFC 9562's custom version) so it looks like any other request id.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * What this replica remembers of the requests made under a key: a fingerprint of what was
 * asked, so a key used again for a different request is refused (422) rather than answered
 * with the first one's reply. Bounded like the hub and kept as long as a request's state;
 * a replica that never saw the first request cannot tell, and answers as for a retry.
 */
export class KeyedRequests {
  readonly #fingerprints = new Map<string, { fingerprint: string; at: number }>();
  constructor(
    readonly max: number,
    readonly ttlMs: number,
  ) {}

  /** Throws when `requestId` was asked here for something else; remembers it otherwise. */
  claim(requestId: string, fingerprint: string, now = Date.now()): void {
    const known = this.#fingerprints.get(requestId);
    if (known !== undefined && now - known.at <= this.ttlMs && known.fingerprint !== fingerprint) {
      throw new ApiError(
        "idempotency_key_reused",
        "this Idempotency-Key was used for a different request; a retry must repeat the request unchanged (use a new key for a new request)",
        { param: "Idempotency-Key" },
      );
    }
    this.#fingerprints.delete(requestId);
    this.#fingerprints.set(requestId, { fingerprint, at: now });
    while (this.#fingerprints.size > this.max) this.#fingerprints.delete(this.#fingerprints.keys().next().value!);
  }
}

const keyedRequests = new WeakMap<GatewayDeps, KeyedRequests>();

/** What a request asks, without what differs between copies of it (its id, time and events partition). */
export function requestFingerprint(request: ChatRequest): string {
  const { request_id: _id, created_at: _at, events_partition: _partition, ...asked } = request;
  return createHash("sha256").update(JSON.stringify(asked)).digest("base64url");
}

/** Request ids this gateway makes; only these are worth waiting for when unknown. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Puts a request on chat.requests. The request is tracked before it is published, so its
 * events can never arrive for a request the hub does not know; a failed publish forgets it.
 */
export async function submit(deps: GatewayDeps, request: ChatRequest, log: FastifyBaseLogger, options: { keyed?: boolean } = {}): Promise<void> {
  // Its events come to this replica: a partition of chat.events it reads (none while it owns none).
  const eventsPartition = request.events_partition ?? deps.events?.pick(conversationKey(request));
  if (eventsPartition !== undefined) request = { ...request, events_partition: eventsPartition };
  // Workers dead-letter what does not match the schema: catch it here, as a 400.
  const checked = chatRequestSchema.safeParse(request, { error: requiredMessage });
  if (!checked.success) throw new ApiError("invalid_request", `the request cannot be queued: ${describeIssues(checked.error)}`);
  // The pool it goes to: 404 for a model no pool serves.
  const lane = laneOf(deps, request);
  if (lane.moveTo !== undefined) request = { ...request, move_to: lane.moveTo } as ChatRequest;
  if (options.keyed) {
    let keyed = keyedRequests.get(deps);
    if (!keyed) keyedRequests.set(deps, (keyed = new KeyedRequests(deps.config.requests.maxTracked, deps.config.requests.stateTtlMs)));
    keyed.claim(request.request_id, requestFingerprint(request));
  }
  // A retry (same Idempotency-Key) of a request this replica knows was accepted: nothing to send.
  if (deps.hub.get(request.request_id)?.tenant === request.tenant) {
    log.info({ request_id: request.request_id }, "idempotent retry of an accepted request");
    return;
  }
  // The produce's span: its context goes with the record, so the worker's spans join the call's trace.
  const send = deps.traces?.sendSpan(request);
  const headers = send && traceHeaders(send);
  deps.hub.track(request.request_id, request.conversation_id, request.tenant, request.events_partition, request.type === "open", headers?.traceparent);
  try {
    await deps.publisher.publishRequest(request, headers, lane.topic);
  } catch (err) {
    deps.hub.forget(request.request_id);
    deps.metrics.kafkaSendFailures.inc();
    send?.setStatus({ code: SpanStatusCode.ERROR, message: String(err) }).end();
    throw err;
  }
  send?.end();
  if (lane.pool !== undefined && !isStateless(request)) {
    if (request.type === "delete") deps.conversationPools?.forget(request.tenant, request.conversation_id);
    else deps.conversationPools?.note(request.tenant, request.conversation_id, lane.moveTo ?? lane.pool);
  }
  deps.traces?.produced(request.request_id);
  deps.metrics.requestsAccepted.inc({ type: request.type });
  log.info({ request_id: request.request_id, conversation_id: request.conversation_id, type: request.type }, "request accepted");
}

/** A turn whose context is all it needs: no conversation memory, so it may run in any pool. */
function isStateless(request: ChatRequest): boolean {
  return request.type === "turn" && request.context !== undefined;
}

/**
 * The pool a request goes to (gateway/pools.ts) and the topic it is put on. A stateless turn
 * goes to its model's pool. Anything else belongs to a conversation, which lives in one pool
 * at a time: it goes to the pool the conversation is in; a turn there that names a model of
 * another pool is a move (`move_to`): the conversation's current owner applies what came
 * before it, then hands the turn and the conversation's state to the new pool
 * (worker/move.ts). Without pools (unit tests' deps): the default topic.
 */
export function laneOf(deps: GatewayDeps, request: ChatRequest): { topic?: string; pool?: string; moveTo?: string } {
  const pools = deps.pools;
  if (!pools) return {};
  const target = request.model === undefined ? undefined : pools.route(request.model);
  if (isStateless(request)) {
    const lane = target ?? pools.route(undefined);
    return { topic: lane.topic, pool: lane.pool };
  }
  const held = deps.conversationPools?.get(request.tenant, request.conversation_id);
  const current = held === undefined ? undefined : pools.lane(held);
  if (current && target && current.pool !== target.pool && request.type === "turn") return { topic: current.topic, pool: current.pool, moveTo: target.pool };
  const lane = current ?? target ?? pools.route(undefined);
  return { topic: lane.topic, pool: lane.pool };
}

/** Writes a cancel for a request to chat.control. */
export async function cancel(deps: GatewayDeps, requestId: string, tenant: string, reason: string, origin: "api" | "disconnect"): Promise<void> {
  try {
    await deps.publisher.publishCancel({ v: SCHEMA_VERSION, type: "cancel", request_id: requestId, tenant, reason, at: Date.now() });
  } catch (err) {
    deps.metrics.kafkaSendFailures.inc();
    throw err;
  }
  deps.metrics.cancels.inc({ origin });
}

/**
 * The tenant's request, waiting briefly for one this replica has not read yet (accepted
 * by another replica a few ms ago); 404 when unknown or another tenant's. Its events are
 * read up to now first when they are on a partition this replica was not reading.
 */
export async function findRequest(deps: GatewayDeps, requestId: string, tenant: string): Promise<RequestSnapshot> {
  if (!deps.hub.has(requestId) && UUID.test(requestId)) await deps.hub.whenKnown(requestId, deps.config.requests.unknownWaitMs);
  const known = deps.hub.get(requestId);
  if (known && known.tenant === tenant) await deps.events?.prepare(known);
  const snapshot = deps.hub.get(requestId);
  if (!snapshot || snapshot.tenant !== tenant)
    throw notFound(`no request ${requestId} is known here (requests are kept ${Math.round(deps.config.requests.stateTtlMs / 1000)} s after their last event)`);
  return snapshot;
}

/**
 * The stored state of the tenant's conversation, as the worker owning its partition has it
 * now (gateway/kafka/owners.ts): 404 when the owner has none (another tenant's conversation
 * of the same id is another conversation), 503 when no owner answered in time (no workers
 * running, or a rebalance past the bound).
 */
/** How long a response in a named conversation waits for that conversation's open, known here and not applied yet. */
export const READ_YOUR_WRITES_MS = 2000;

export async function findConversation(
  deps: GatewayDeps,
  conversationId: string,
  tenant: string,
  options: { waitForOpen?: boolean } = {},
): Promise<ConversationState> {
  const conversations = deps.conversations;
  if (!conversations) throw new ApiError("kafka_unavailable", "conversation reads are not available yet; try again shortly");
  const read = async () => {
    // A span of the call's trace: a read asks the worker owning the partition (and may wait for it).
    const span = tracingOn()
      ? startSpan("read conversation", undefined, { kind: SpanKind.CLIENT, attributes: { "gen_ai.conversation.id": conversationId } })
      : undefined;
    try {
      const state = await conversations.get({ tenant, conversation_id: conversationId });
      span?.setAttribute("kafka_llm.found", state !== undefined);
      return state;
    } catch (err) {
      span?.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      if (err instanceof LookupUnavailable) throw new ApiError("kafka_unavailable", `cannot read conversation ${conversationId}: ${err.message}`);
      throw err;
    } finally {
      span?.end();
    }
  };
  let state = await read();
  // Read your writes, where asked: a conversation opened a moment ago, whose open this
  // replica knows and no worker has applied yet, is waited for, briefly (a worker applies
  // an open in milliseconds).
  const pending = state || !options.waitForOpen ? undefined : deps.hub.pendingOpen(tenant, conversationId);
  if (pending !== undefined && deps.config.applyWaitMs > 0) {
    const wait = new AbortController();
    const timer = setTimeout(() => wait.abort(), Math.min(deps.config.applyWaitMs, READ_YOUR_WRITES_MS));
    try {
      await awaitTerminal(deps, pending, wait.signal);
    } finally {
      clearTimeout(timer);
    }
    state = await read();
  }
  if (!state) throw notFound(`no conversation ${conversationId}`);
  return state;
}

/**
 * Resolves with the request's terminal event; with null when `signal` aborts first or the
 * request is no longer tracked.
 */
export function awaitTerminal(deps: GatewayDeps, requestId: string, signal?: AbortSignal): Promise<FinalEvent | ErrorEvent | null> {
  return new Promise((resolve) => {
    let stop: (() => void) | null = null;
    let settled = false;
    const finish = (result: FinalEvent | ErrorEvent | null) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      stop?.();
      resolve(result);
    };
    const onAbort = () => finish(null);
    if (signal?.aborted) return finish(null);
    signal?.addEventListener("abort", onAbort);
    stop = deps.hub.follow(requestId, null, (event) => {
      if (isTerminalEvent(event)) finish(event);
    });
    if (stop === null) finish(null);
    else if (settled) stop();
  });
}

/** The API error for a worker's error event (a code the gateway does not know becomes generation_failed). */
export function errorOfEvent(event: ErrorEvent): ApiError {
  const code = (Object.keys(ERROR_CODES) as ErrorCode[]).find((c) => c === event.code && HTTP_STATUS[c] !== 500) ?? "generation_failed";
  return new ApiError(code, event.message);
}

/** Paths a client uses to follow a request. */
export function requestLinks(requestId: string) {
  return { status_url: `/v1/requests/${requestId}`, events_url: `/v1/requests/${requestId}/events` };
}
