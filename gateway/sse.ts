/**
 * Server-Sent Events over a raw Node response: the one SSE writer of both APIs. The native
 * stream sends each chat event as one SSE message whose id is the event's seq, so a client
 * can resume with Last-Event-ID; the OpenAI stream sends bare JSON data frames and
 * `data: [DONE]` (the official client rejects any other data frame).
 */
import type { ServerResponse } from "node:http";
import type { ChatEvent } from "../contracts/records/events.js";

export function openEventStream(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    // Tell nginx-style proxies not to buffer the stream.
    "x-accel-buffering": "no",
    ...headers,
  });
  res.flushHeaders();
}

/**
 * An open event stream with its keepalive comments. `end()` is idempotent; `onClose` runs
 * once when the connection closes, with `early` true when it closed before `end()` (the
 * client left).
 */
export class SseWriter {
  readonly #res: ServerResponse;
  readonly #keepalive: NodeJS.Timeout;
  #deadline: NodeJS.Timeout | null = null;
  #ended = false;

  constructor(res: ServerResponse, keepaliveMs: number, headers: Record<string, string> = {}) {
    this.#res = res;
    openEventStream(res, headers);
    this.#keepalive = setInterval(() => this.#write(KEEPALIVE), keepaliveMs);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** A chat event as a native SSE message (id, event type, JSON data). */
  event(event: ChatEvent): void {
    this.#write(formatEvent(event));
  }

  /** One JSON data frame. */
  data(value: unknown): void {
    this.#write(`data: ${JSON.stringify(value)}\n\n`);
  }

  /**
   * Calls `onExpired` after `ms` unless the stream ended first (GATEWAY_REQUEST_DEADLINE_MS:
   * no wait is endless); `onExpired` says why to the client and ends the stream.
   */
  expireAfter(ms: number, onExpired: () => void): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => {
      if (!this.#ended) onExpired();
    }, ms);
  }

  /** A frame formatted elsewhere (e.g. the gateway's own `queued` notice). */
  frame(text: string): void {
    this.#write(text);
  }

  /** OpenAI's end of stream. */
  done(): void {
    this.#write(SSE_DONE);
  }

  onClose(listener: (early: boolean) => void): void {
    this.#res.on("close", () => {
      const early = !this.#ended;
      this.end();
      listener(early);
    });
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#keepalive);
    if (this.#deadline) clearTimeout(this.#deadline);
    if (!this.#res.writableEnded) this.#res.end();
  }

  #write(text: string): void {
    if (!this.#ended && !this.#res.writableEnded) this.#res.write(text);
  }
}

export const SSE_DONE = "data: [DONE]\n\n";

/** The SSE id of an event: "<seq>@<attempt>", so a resume can tell attempts apart. */
export function eventId(event: ChatEvent): string {
  return `${event.seq}@${event.attempt}`;
}

export function formatEvent(event: ChatEvent): string {
  return `id: ${eventId(event)}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/**
 * A message of the gateway's own (a `queued` notice, the deadline's `error`) without an id:
 * a client resuming with Last-Event-ID resumes after the last chat event it had.
 */
export function formatNotice(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A comment line: keeps idle connections open through proxies without a client-visible event. */
export const KEEPALIVE = ": keepalive\n\n";

export interface ResumePoint {
  seq: number;
  attempt: string | null;
}

/** Parses Last-Event-ID ("<seq>@<attempt>" or a bare seq); null when absent or malformed. */
export function parseLastEventId(header: string | string[] | undefined): ResumePoint | null {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  const match = value === undefined ? null : /^(\d{1,9})(?:@(.+))?$/.exec(value);
  if (!match) return null;
  return { seq: Number(match[1]), attempt: match[2] ?? null };
}
