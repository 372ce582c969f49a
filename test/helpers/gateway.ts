/**
 * Gateway tests' shared setup: the services of testkit/stack.ts (a gateway and a worker as
 * real processes, each logged in as its own principal), and a small HTTP client that sends
 * the API key.
 */
import { parseSse, type SseMessage } from "../../testkit/sse.js";

export { loggedIn, stackEnv, startGateway, startWorker, type Stack } from "../../testkit/stack.js";
export { metricValue } from "../../testkit/metrics.js";

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A JSON client for one gateway and (optionally) one API key. */
export function apiClient(baseUrl: string, key?: string) {
  return async function call<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const h: Record<string, string> = { ...headers };
    if (key !== undefined) h.authorization = `Bearer ${key}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === "string" ? body : JSON.stringify(body);
      h["content-type"] ??= "application/json";
    }
    const res = await fetch(baseUrl + path, { method, headers: h, body: payload, signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  };
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** A request's status once it runs and has streamed text (the moment a takeover test kills its worker). */
export function untilStreaming(api: ReturnType<typeof apiClient>, requestId: string, timeoutMs = 60_000): Promise<{ worker_id: string; reply: string }> {
  return eventually(
    async () => {
      const status = (await api("GET", `/v1/requests/${requestId}`)).body;
      return status.status === "running" && status.reply.length > 0 ? status : undefined;
    },
    timeoutMs,
    "the request streaming",
  );
}

/** A background response once it is neither queued nor in progress, polled as a client does. */
export function untilResponseEnds<R extends { status?: string | null }>(retrieve: () => Promise<R>, timeoutMs = 120_000): Promise<R> {
  return eventually(
    async () => {
      const r = await retrieve();
      return r.status === "queued" || r.status === "in_progress" ? undefined : r;
    },
    timeoutMs,
    "the response ending",
  );
}

/** Reads a gateway SSE stream to its end, sending the API key (and Last-Event-ID when given). */
export async function readEvents(url: string, key: string | undefined, lastEventId?: string, timeoutMs = 60_000): Promise<SseMessage[]> {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`SSE ${url}: HTTP ${res.status} ${await res.text()}`);
  return parseSse(await res.text());
}
