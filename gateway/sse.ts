/**
 * Server-Sent Events over a raw Node response. Each chat event is one SSE message whose
 * id is the event's seq, so a client can resume with Last-Event-ID.
 */
import type { ServerResponse } from "node:http";
import type { ChatEvent } from "../contracts/records.js";

export function openEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    // Tell nginx-style proxies not to buffer the stream.
    "x-accel-buffering": "no",
  });
  res.flushHeaders();
}

/** The SSE id of an event: "<seq>@<attempt>", so a resume can tell attempts apart. */
export function eventId(event: ChatEvent): string {
  return `${event.seq}@${event.attempt}`;
}

export function formatEvent(event: ChatEvent): string {
  return `id: ${eventId(event)}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
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
