/** A minimal Server-Sent Events reader over fetch, for asserting on streams. */
import type { ChatEvent } from "../../contracts/records.js";

export interface SseMessage {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/** Reads SSE messages until the server ends the stream or `timeoutMs` passes. */
export async function readSse(url: string, options: { lastEventId?: string; timeoutMs?: number } = {}): Promise<SseMessage[]> {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(options.timeoutMs ?? 60_000) });
  if (res.status !== 200) throw new Error(`SSE ${url}: HTTP ${res.status} ${await res.text()}`);
  const text = await res.text();
  return parseSse(text);
}

export function parseSse(text: string): SseMessage[] {
  const messages: SseMessage[] = [];
  for (const block of text.split("\n\n")) {
    let id: string | undefined;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":") || line === "") continue;
      const [field, ...rest] = line.split(":");
      const value = rest.join(":").replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length > 0) messages.push({ id, event, data: data.join("\n") });
  }
  return messages;
}

/** The chat events of a stream, without the gateway's `queued` notices (not chat events). */
export function chatEvents(messages: SseMessage[]): ChatEvent[] {
  return messages.filter((m) => m.event !== "queued").map((m) => JSON.parse(m.data) as ChatEvent);
}
