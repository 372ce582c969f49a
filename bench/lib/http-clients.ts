/**
 * HTTP clients for the routes that have one: the bench-only REST worker (NDJSON stream)
 * and the gateway (POST a message, then follow its Server-Sent Events). Both stamp times
 * with performance.now() in this process, like BenchChat does for the Kafka route. A gateway
 * with API keys takes the caller's `authorization` header in `headers`.
 */
import http from "node:http";
import { SseReader } from "../../testkit/sse.js";
import type { ChatMessage } from "../../worker/generator.js";

export interface HttpTimeline {
  sentAt: number;
  firstTextAt?: number;
  finalAt?: number;
  completionTokens: number;
  events: number;
  /** The worker's generation time, from the final's timings (the gateway's stream). */
  generationMs?: number;
}

/** A call the gateway answered with another status than the route's own (429 past a tenant's quota, say). */
export class GatewayStatusError extends Error {
  constructor(
    readonly status: number,
    body: string,
  ) {
    super(`gateway answered ${status}: ${body}`);
    this.name = "GatewayStatusError";
  }
}

export function keepAliveAgent(maxSockets = 64): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets });
}

function post(url: string, body: unknown, agent: http.Agent, headers: Record<string, string> = {}): Promise<http.IncomingMessage> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: "POST", agent, headers: { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      resolve,
    );
    req.setTimeout(120_000, () => req.destroy(new Error(`POST ${url}: timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** One call to the REST worker; resolves when its reply has ended. */
export async function restGenerate(
  baseUrl: string,
  body: { conversation_id: string; messages: readonly ChatMessage[]; max_tokens: number },
  agent: http.Agent,
): Promise<HttpTimeline> {
  const t: HttpTimeline = { sentAt: performance.now(), completionTokens: 0, events: 0 };
  const res = await post(`${baseUrl}/generate`, body, agent);
  if (res.statusCode !== 200) throw new Error(`REST worker answered ${res.statusCode}`);
  let buffered = "";
  for await (const chunk of res) {
    const at = performance.now();
    buffered += (chunk as Buffer).toString();
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      if (!line) continue;
      const msg = JSON.parse(line) as { text?: string; final?: { completion_tokens: number }; error?: string };
      t.events++;
      if (msg.error) throw new Error(`REST worker: ${msg.error}`);
      if (msg.text !== undefined) t.firstTextAt ??= at;
      if (msg.final) {
        t.finalAt = at;
        t.completionTokens = msg.final.completion_tokens;
      }
    }
  }
  if (t.finalAt === undefined) throw new Error("REST worker ended the reply without its final line");
  return t;
}

/**
 * POSTs a message to the gateway; returns the request id, or throws GatewayStatusError for any
 * answer but 202. `extra`: more fields of the body (the `model` a pool serves, say).
 */
export async function gatewayPost(
  baseUrl: string,
  conversationId: string,
  content: string,
  maxTokens: number,
  agent: http.Agent,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): Promise<string> {
  const body = { ...extra, content, max_tokens: maxTokens };
  const res = await post(`${baseUrl}/v1/conversations/${encodeURIComponent(conversationId)}/messages`, body, agent, headers);
  let text = "";
  for await (const chunk of res) text += (chunk as Buffer).toString();
  if (res.statusCode !== 202) throw new GatewayStatusError(res.statusCode ?? 0, text);
  return (JSON.parse(text) as { request_id: string }).request_id;
}

/**
 * Follows a request's SSE stream until its final (or error) event. `onOpen` is called once
 * the response headers are in (the stream is open).
 */
export function gatewayEvents(
  baseUrl: string,
  requestId: string,
  agent: http.Agent | false,
  t: HttpTimeline,
  options: { timeoutMs?: number; onOpen?: () => void; headers?: Record<string, string> } = {},
): Promise<HttpTimeline> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers, accept: "text/event-stream" };
    const req = http.get(`${baseUrl}/v1/requests/${requestId}/events`, { agent, headers }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`SSE for ${requestId}: HTTP ${res.statusCode}`));
        res.resume();
        return;
      }
      options.onOpen?.();
      const sse = new SseReader();
      res.on("data", (chunk: Buffer) => {
        const at = performance.now();
        for (const message of sse.push(chunk)) {
          const type = message.event;
          if (!type || type === "queued") continue; // the gateway's waiting notice is not a chat event
          t.events++;
          if (type === "delta") t.firstTextAt ??= at;
          else if (type === "final" && t.finalAt === undefined) {
            t.finalAt = at;
            const final = JSON.parse(message.data) as { usage: { completion_tokens: number }; timings?: { generation_ms?: number } };
            t.completionTokens = final.usage.completion_tokens;
            if (final.timings?.generation_ms !== undefined) t.generationMs = final.timings.generation_ms;
          } else if (type === "error") {
            reject(new Error(`request ${requestId} ended with an error event: ${message.data}`));
          }
        }
      });
      res.on("end", () => (t.finalAt === undefined ? reject(new Error(`SSE for ${requestId} ended without a final event`)) : resolve(t)));
      res.on("error", reject);
    });
    req.setTimeout(options.timeoutMs ?? 120_000, () => req.destroy(new Error(`SSE for ${requestId}: timed out`)));
    req.on("error", reject);
  });
}

/** A turn through the gateway: POST, then the SSE stream to the final event. */
export async function gatewayTurn(
  baseUrl: string,
  conversationId: string,
  content: string,
  maxTokens: number,
  agent: http.Agent,
  headers: Record<string, string> = {},
): Promise<HttpTimeline> {
  const t: HttpTimeline = { sentAt: performance.now(), completionTokens: 0, events: 0 };
  const requestId = await gatewayPost(baseUrl, conversationId, content, maxTokens, agent, headers);
  return gatewayEvents(baseUrl, requestId, agent, t, { headers });
}
