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

export function formatEvent(event: ChatEvent): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** A comment line: keeps idle connections open through proxies without a client-visible event. */
export const KEEPALIVE = ": keepalive\n\n";

/** Parses Last-Event-ID; -1 (replay everything) when absent or not a sequence number. */
export function parseLastEventId(header: string | string[] | undefined): number {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^\d{1,9}$/.test(value.trim())) return -1;
  return Number(value.trim());
}
