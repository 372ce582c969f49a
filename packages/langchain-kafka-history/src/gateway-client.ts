/**
 * The gateway's history API over fetch: one JSON request with the API key, the
 * gateway's error body turned into a KafkaChatHistoryError, a retry for what the
 * gateway marks retryable (a POST keeps its Idempotency-Key, so a retried append is
 * applied once), and the wait for a 202 (a change queued behind the conversation's
 * turns) until a worker has applied it.
 */
import { KafkaChatHistoryError } from "./errors.js";
import type { HistoryInput, HistoryRecord } from "./message-mapping.js";

export interface GatewayClientOptions {
  /** The gateway's base URL, e.g. http://kafka-llm-gateway:8080. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`; the key names the tenant. */
  apiKey?: string;
  /** Per request, milliseconds (default 30,000). */
  timeoutMs: number;
  /** Retries of a request the gateway says may succeed later (default 2). */
  maxRetries: number;
  /** How long an append or a clear may wait to be applied after a 202, milliseconds (default 60,000). */
  applyTimeoutMs: number;
  fetch: typeof fetch;
}

/** A page of GET /v1/conversations/{id}/messages. */
export interface HistoryPage {
  conversation_id: string;
  messages: HistoryRecord[];
  first_cursor: string | null;
  last_cursor: string | null;
  has_more_before: boolean;
  has_more_after: boolean;
  total: number;
}

export type HistoryQuery = Record<string, string | number | undefined>;

interface Accepted {
  request_id: string;
  status_url: string;
}

const RETRY_BASE_MS = 250;
const POLL_MS = 100;

export class GatewayClient {
  constructor(private readonly options: GatewayClientOptions) {}

  /** One page of the history; null when the gateway knows no such conversation for this tenant (404). */
  async readPage(conversationId: string, query: HistoryQuery): Promise<HistoryPage | null> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const res = await this.request("GET", `${conversationPath(conversationId)}/messages?${params}`, { allow404: true });
    return res === null ? null : (res.body as HistoryPage);
  }

  /** Appends messages without a reply and waits until a worker applied them. */
  async append(conversationId: string, messages: HistoryInput[]): Promise<void> {
    const res = await this.request("POST", `${conversationPath(conversationId)}/history`, { body: { messages }, idempotencyKey: crypto.randomUUID() });
    if (res?.status === 202) await this.awaitApplied(res.body as Accepted);
  }

  /** Deletes the conversation and waits until it is gone; false when there was none (404). */
  async delete(conversationId: string): Promise<boolean> {
    const res = await this.request("DELETE", conversationPath(conversationId), { allow404: true });
    if (res === null) return false;
    if (res.status === 202) await this.awaitApplied(res.body as Accepted);
    return true;
  }

  private async awaitApplied(accepted: Accepted): Promise<void> {
    const deadline = Date.now() + this.options.applyTimeoutMs;
    while (true) {
      const res = await this.request("GET", accepted.status_url, {});
      const status = res?.body as { status: string; error: { code: string; message: string } | null } | undefined;
      if (status?.status === "completed") return;
      if (status?.status === "failed" || status?.status === "cancelled") {
        throw new KafkaChatHistoryError(`request ${accepted.request_id} ${status.status}: ${status.error?.message ?? "no reason given"}`, {
          status: 200,
          code: status.error?.code ?? null,
        });
      }
      if (Date.now() >= deadline) {
        throw new KafkaChatHistoryError(
          `request ${accepted.request_id} was not applied within ${this.options.applyTimeoutMs} ms; it is queued and will still be applied`,
          {
            status: 202,
            retryable: true,
          },
        );
      }
      await sleep(POLL_MS);
    }
  }

  private async request(
    method: string,
    path: string,
    opts: { body?: unknown; idempotencyKey?: string; allow404?: boolean },
  ): Promise<{ status: number; body: unknown } | null> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (opts.idempotencyKey !== undefined) headers["idempotency-key"] = opts.idempotencyKey;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const url = new URL(path, this.options.baseUrl).toString();
    for (let attempt = 0; ; attempt++) {
      let error: KafkaChatHistoryError;
      try {
        const res = await this.options.fetch(url, {
          method,
          headers,
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: AbortSignal.timeout(this.options.timeoutMs),
        });
        const text = await res.text();
        const body = parseJson(text);
        if (res.ok) return { status: res.status, body };
        if (res.status === 404 && opts.allow404) return null;
        error = errorOf(method, path, res.status, body, text);
      } catch (err) {
        error = new KafkaChatHistoryError(`${method} ${url}: no answer from the gateway (${err instanceof Error ? err.message : String(err)})`, {
          status: 0,
          retryable: true,
          cause: err,
        });
      }
      if (!error.retryable || attempt >= this.options.maxRetries) throw error;
      await sleep(RETRY_BASE_MS * 2 ** attempt);
    }
  }
}

function conversationPath(conversationId: string): string {
  return `/v1/conversations/${encodeURIComponent(conversationId)}`;
}

function errorOf(method: string, path: string, status: number, body: unknown, text: string): KafkaChatHistoryError {
  const error = (body as { error?: { code?: unknown; message?: unknown; retryable?: unknown } } | undefined)?.error;
  const message = typeof error?.message === "string" ? error.message : text.slice(0, 300) || `HTTP ${status}`;
  return new KafkaChatHistoryError(`${method} ${path.split("?")[0]}: ${message} (HTTP ${status})`, {
    status,
    code: typeof error?.code === "string" ? error.code : null,
    retryable: typeof error?.retryable === "boolean" ? error.retryable : status === 503,
  });
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
