/**
 * Server-Sent Events over a raw Node response: the one SSE writer of both APIs. The native
 * stream sends each chat event as one SSE message whose id is the event's seq, so a client
 * can resume with Last-Event-ID; the OpenAI stream sends bare JSON data frames and
 * `data: [DONE]` (the official client rejects any other data frame).
 */
import type { ServerResponse } from "node:http";
import type { Span } from "@opentelemetry/api";
import { sseSpan } from "./tracing.js";
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
  /** Which API the stream speaks, from what it has sent: OpenAI's bare data frames, or native messages. */
  #openai = false;
  /** The stream's `write sse` span (gateway/tracing.ts), while tracing is on; frames and bytes counted for it. */
  readonly #span: Span | undefined = sseSpan();
  #frames = 0;
  #bytes = 0;

  constructor(res: ServerResponse, keepaliveMs: number, headers: Record<string, string> = {}) {
    this.#res = res;
    openEventStream(res, headers);
    this.#keepalive = setInterval(() => this.#write(KEEPALIVE), keepaliveMs);
    OPEN.add(this);
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
    this.#openai = true;
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

  /**
   * The gateway is shutting down: says so in the stream's own terms, then ends it. A native
   * stream is resumed elsewhere: its client reconnects to the same URL with Last-Event-ID
   * (EventSource does by itself, after `retry`) and another replica answers from the log. An
   * OpenAI stream cannot be resumed: an error frame says where the reply can be read.
   */
  shutDown(): void {
    if (this.#ended) return;
    if (this.#openai) this.data(SHUTDOWN_OPENAI);
    else this.#write(`retry: ${SHUTDOWN_RETRY_MS}\n${formatNotice("reconnect", SHUTDOWN_NATIVE)}`);
    this.end();
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    OPEN.delete(this);
    clearInterval(this.#keepalive);
    if (this.#deadline) clearTimeout(this.#deadline);
    if (!this.#res.writableEnded) this.#res.end();
    this.#span?.setAttributes({ "kafka_llm.sse.frames": this.#frames, "kafka_llm.sse.bytes": this.#bytes, "kafka_llm.sse.openai": this.#openai }).end();
  }

  #write(text: string): void {
    if (this.#ended || this.#res.writableEnded) return;
    this.#res.write(text);
    if (this.#span === undefined || text === KEEPALIVE) return;
    if (this.#frames++ === 0) this.#span.addEvent("first frame");
    this.#bytes += Buffer.byteLength(text);
  }
}

export const SSE_DONE = "data: [DONE]\n\n";

/** Every stream this process has open (a gateway is one process). */
const OPEN = new Set<SseWriter>();

/** How soon a client of an ended native stream should reconnect, ms (SSE's `retry`). */
const SHUTDOWN_RETRY_MS = 500;
const SHUTDOWN_NATIVE = {
  code: "gateway_shutting_down",
  message: "this gateway is shutting down: reconnect to the same URL with Last-Event-ID, and another replica goes on from the last event you had",
  retryable: true,
};
const SHUTDOWN_OPENAI = {
  error: {
    message:
      "this gateway shut down before the reply ended; the request goes on: read its reply with GET /v1/requests/{id}, where id is this completion's id without its chatcmpl- prefix",
    type: "server_error",
    param: null,
    code: "gateway_shutting_down",
  },
};

/** Streams open now. */
export function openStreams(): number {
  return OPEN.size;
}

/** Ends every open stream with the word on where to resume (SseWriter.shutDown); returns how many. */
export function shutDownStreams(): number {
  const writers = [...OPEN];
  for (const writer of writers) writer.shutDown();
  return writers.length;
}

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
