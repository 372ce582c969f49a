/**
 * The one Server-Sent Events client parser of tests, bench and chaos: eventsource-parser
 * (the WHATWG parsing rules: CRLF, multi-line data, comments, a BOM), wrapped to hand back
 * whole messages, from a whole body or chunk by chunk.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { ChatEvent } from "../contracts/records/events.js";

export type SseMessage = EventSourceMessage;

/** An incremental reader: push bytes as they arrive, get the messages they complete. */
export class SseReader {
  readonly #decoder = new TextDecoder();
  #completed: SseMessage[] = [];
  readonly #parser = createParser({
    onEvent: (message) => this.#completed.push(message),
    onError: (err) => {
      throw err;
    },
  });

  /** Adds a chunk (bytes or text); returns the messages it completes. Comments (keepalives) are skipped. */
  push(chunk: Uint8Array | string): SseMessage[] {
    this.#parser.feed(typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true }));
    const done = this.#completed;
    this.#completed = [];
    return done;
  }
}

/** Every message of a whole SSE body. */
export function parseSse(text: string): SseMessage[] {
  return new SseReader().push(text);
}

/** Reads SSE messages until the server ends the stream or `timeoutMs` passes. */
export async function readSse(url: string, options: { lastEventId?: string; timeoutMs?: number } = {}): Promise<SseMessage[]> {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(options.timeoutMs ?? 60_000) });
  if (res.status !== 200) throw new Error(`SSE ${url}: HTTP ${res.status} ${await res.text()}`);
  return parseSse(await res.text());
}

/**
 * Follows a stream as it arrives: `messages` grows until the server ends it; `done` resolves
 * true then, false when `close()` ended it first. `headers`: e.g. authorization, last-event-id.
 */
export function followSse(url: string, headers: Record<string, string> = {}) {
  const messages: SseMessage[] = [];
  const abort = new AbortController();
  const done = (async () => {
    const res = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: abort.signal });
    if (res.status !== 200) throw new Error(`SSE ${url}: HTTP ${res.status} ${await res.text()}`);
    const reader = new SseReader();
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) messages.push(...reader.push(chunk));
    return true;
  })().catch((err: Error) => {
    if (err.name !== "AbortError") throw err;
    return false;
  });
  return { messages, done, close: () => abort.abort() };
}

/** The chat events of a stream, without the gateway's `queued` notices (not chat events). */
export function chatEvents(messages: SseMessage[]): ChatEvent[] {
  return messages.filter((m) => m.event !== "queued").map((m) => JSON.parse(m.data) as ChatEvent);
}
