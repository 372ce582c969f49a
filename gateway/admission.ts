/**
 * What a call must pass before a route does work for it, as one Fastify hook rather than a
 * line in every route: a gateway shutting down takes no new work and opens no new stream
 * (503: another replica answers the retry); and the tenants' quotas (gateway/quotas.ts): a
 * call that creates work is counted against its tenant's requests and tokens per minute and
 * the requests it may have in flight, and an event stream (a request's events, or a streamed
 * chat completion) holds one of the tenant's open streams until its connection closes. A
 * refusal is a 429 in the route's own error dialect, with Retry-After and OpenAI's
 * x-ratelimit-* headers, which an admitted call carries too.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ApiError } from "./errors.js";
import { QuotaExceeded, type TenantQuotas } from "./quotas.js";

/** The calls that create work (a turn, a completion, a response, a conversation, a change to one). */
const CREATES_WORK = new Set([
  "POST /v1/chat/completions",
  "POST /v1/responses",
  "POST /v1/conversations",
  "POST /v1/conversations/:id",
  "POST /v1/conversations/:id/messages",
  "POST /v1/conversations/:id/history",
  "POST /v1/conversations/:id/items",
  "DELETE /v1/conversations/:id/items/:item",
]);

function isStream(route: string, request: FastifyRequest): boolean {
  if (route === "GET /v1/requests/:id/events") return true;
  if (route === "GET /v1/responses/:id") return (request.query as { stream?: unknown } | undefined)?.stream === "true";
  if (route !== "POST /v1/chat/completions" && route !== "POST /v1/responses") return false;
  return (request.body as { stream?: unknown } | undefined)?.stream === true;
}

export function registerAdmission(
  app: FastifyInstance,
  options: {
    /** The tenants' quotas; absent: none. */
    quotas?: TenantQuotas;
    /** The tenant's requests accepted and not ended (waiting or generating), as this replica knows them. */
    inFlight(tenant: string): number;
    /** True once the gateway is shutting down. */
    draining(): boolean;
  },
): void {
  app.addHook("preHandler", async (request, reply) => {
    const tenant = request.tenant;
    if (!tenant) return; // a public route
    const route = `${request.method} ${request.routeOptions.url ?? ""}`;
    const creates = CREATES_WORK.has(route);
    const streams = isStream(route, request);
    if (!creates && !streams) return;
    if (options.draining()) throw new ApiError("overloaded", "this gateway is shutting down and takes no new work; retry, and another replica answers");
    const quotas = options.quotas;
    if (!quotas) return;
    try {
      if (creates) {
        const most = quotas.limits(tenant).concurrentRequests;
        if (most > 0 && options.inFlight(tenant) >= most)
          quotas.refuse(
            tenant,
            "concurrentRequests",
            `tenant ${tenant} has ${most} requests waiting or running on this gateway, its limit; wait for one to end`,
          );
      }
      // The stream first: a refused stream does not spend a request of the minute.
      const release = streams ? quotas.hold(tenant, "openStreams") : null;
      if (release) reply.raw.once("close", release);
      if (creates) {
        try {
          reply.headers(quotas.admit(tenant));
        } catch (err) {
          release?.();
          throw err;
        }
      }
    } catch (err) {
      throw asRateLimited(err);
    }
  });
}

/** A QuotaExceeded as the API's 429 (rate_limited, with Retry-After and the x-ratelimit-* headers); any other error as it is. */
export function asRateLimited(err: unknown): unknown {
  return err instanceof QuotaExceeded ? new ApiError("rate_limited", err.message, { headers: err.headers }) : err;
}
