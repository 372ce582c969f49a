/**
 * One chat turn through a running gateway, start to final event: the chart's `helm test`
 * pod runs it, and so does the local check of the autoscaling metrics.
 *
 *   GATEWAY_URL=http://kafka-llm-gateway:8080 GATEWAY_API_KEYS_FILE=/etc/kafka-llm/api-keys \
 *     node dist/scripts/deploy/chat-turn.js
 *
 * The key is the first entry of GATEWAY_API_KEYS_FILE ("tenant:key" lines) or
 * GATEWAY_API_KEY; with neither, no Authorization header is sent (GATEWAY_AUTH=none).
 * CHAT_TURN_MODEL names the model (a release with pools: its first pool's); unset, the
 * default pool answers.
 * Prints one JSON line; exits 0 on a final event, 1 on an error event, an HTTP error or
 * CHAT_TURN_TIMEOUT_MS (default 120000) without a final event.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

export function firstKey(text: string): string | null {
  for (const line of text.split(/[\n,]/)) {
    const entry = line.trim();
    if (!entry || entry.startsWith("#")) continue;
    const colon = entry.indexOf(":");
    if (colon > 0) return entry.slice(colon + 1).trim();
  }
  return null;
}

export interface ChatTurnReply {
  readonly requestId: string;
  readonly conversationId: string;
  readonly type: "final" | "error";
  readonly event: Record<string, unknown>;
}

/** Sends `content` to conversation `conversationId` and reads its events to the end. */
export async function chatTurn(options: {
  baseUrl: string;
  apiKey: string | null;
  content: string;
  conversationId?: string;
  /** The model to answer with (GET /v1/models); absent: the default pool's. */
  model?: string;
  timeoutMs?: number;
}): Promise<ChatTurnReply> {
  const signal = AbortSignal.timeout(options.timeoutMs ?? 120_000);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  const conversationId = options.conversationId ?? `helm-test-${randomUUID()}`;
  const posted = await fetch(`${options.baseUrl}/v1/conversations/${conversationId}/messages`, {
    method: "POST",
    headers,
    body: JSON.stringify({ content: options.content, ...(options.model && { model: options.model }) }),
    signal,
  });
  const accepted = await posted.text();
  if (posted.status !== 202) throw new Error(`POST messages: HTTP ${posted.status}: ${accepted.slice(0, 500)}`);
  const requestId = (JSON.parse(accepted) as { request_id: string }).request_id;

  const stream = await fetch(`${options.baseUrl}/v1/requests/${requestId}/events`, {
    headers: { ...headers, accept: "text/event-stream" },
    signal,
  });
  if (stream.status !== 200 || !stream.body) throw new Error(`GET events: HTTP ${stream.status}: ${(await stream.text()).slice(0, 500)}`);
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const type = /^event: ?(.*)$/m.exec(block)?.[1]?.trim();
      const data = block
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, ""))
        .join("\n");
      if (type === "final" || type === "error") {
        await stream.body.cancel().catch(() => {});
        return { requestId, conversationId, type, event: JSON.parse(data) as Record<string, unknown> };
      }
    }
  }
  throw new Error(`the event stream of ${requestId} ended without a final event`);
}

async function main(): Promise<number> {
  const baseUrl = (process.env.GATEWAY_URL?.trim() || "http://127.0.0.1:8080").replace(/\/+$/, "");
  const file = process.env.GATEWAY_API_KEYS_FILE?.trim();
  const apiKey = file ? firstKey(readFileSync(file, "utf8")) : process.env.GATEWAY_API_KEY?.trim() || null;
  if (file && !apiKey) {
    process.stderr.write(`chat-turn: no "tenant:key" entry in ${file}\n`);
    return 1;
  }
  const timeoutMs = Number(process.env.CHAT_TURN_TIMEOUT_MS || 120_000);
  const started = Date.now();
  const model = process.env.CHAT_TURN_MODEL?.trim() || undefined;
  const result = await chatTurn({ baseUrl, apiKey, content: process.env.CHAT_TURN_CONTENT || "Hello! Who are you?", timeoutMs, ...(model && { model }) });
  const e = result.event;
  process.stdout.write(
    JSON.stringify({
      result: result.type,
      request_id: result.requestId,
      conversation_id: result.conversationId,
      seconds: (Date.now() - started) / 1000,
      ...(result.type === "final"
        ? { reply_chars: String(e.reply ?? "").length, usage: e.usage, timings: e.timings, stop_reason: e.stop_reason }
        : { code: e.code, message: e.message }),
    }) + "\n",
  );
  return result.type === "final" ? 0 : 1;
}

// Run only as a program, not when a test imports chatTurn.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`chat-turn: ${(err as Error).message ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
