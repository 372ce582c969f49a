/**
 * Poison on chat.requests: records no worker can apply, written straight to the topic (as a
 * buggy producer, or a gateway of another version in a rolling upgrade, would) at even
 * points of the window. Three kinds, in turn:
 *
 * - `bad_field`: JSON naming a request id, tenant and conversation, but no valid request
 *   (its content is a number). Its request can be named: the worker must dead-letter it and
 *   end it with an `error` event (request_dead_lettered).
 * - `misplaced`: a valid turn request on a partition its key does not belong to. Also
 *   named, and the gateways track it (it decodes), so its client can follow it over HTTP
 *   and must get that error event there.
 * - `not_json`: bytes that are not JSON. Nobody can be told; it must reach the dead letter
 *   topic and the partition must go on.
 *
 * The accounting then finds, on the topics, each one's dead letter and each named one's
 * error event, and the turns of the clients on the same partitions answered as ever.
 */
import { randomUUID } from "node:crypto";
import { conversationKey } from "../contracts/conversation-key.js";
import { DLQ_HEADERS } from "../contracts/records/dead-letter.js";
import { chatEventSchema, type ChatEvent } from "../contracts/records/events.js";
import { SCHEMA_VERSION } from "../contracts/records/fields.js";
import { decodeRecord } from "../contracts/records/codec.js";
import { keyPartition } from "../platform/kafka/partitioner.js";
import { produceRecords } from "../testkit/kafka.js";
import { SseReader } from "../testkit/sse.js";
import type { Cluster } from "./cluster.js";
import { API_KEY, TENANT } from "./cluster.js";
import type { LoggedRecord } from "./kafka-log.js";
import { readerConfig } from "./kafka-log.js";
import type { ChaosOptions } from "./options.js";
import { topicNames } from "../contracts/topics.js";

export type PoisonKind = "bad_field" | "misplaced" | "not_json";
const KINDS: readonly PoisonKind[] = ["bad_field", "misplaced", "not_json"];

export interface PoisonRecord {
  readonly kind: PoisonKind;
  /** The request id it names; null for one that names none. */
  readonly requestId: string | null;
  /** When it was written (first tried, until then): its error event is timed from here. */
  at: number;
  /** Where it landed on chat.requests; null when it could not be written (the broker away). */
  partition: number | null;
  offset: number | null;
  writeError?: string;
  /** For a misplaced one: the terminal event its client got from a gateway, or why none. */
  followed?: { readonly type: string; readonly code?: string } | { readonly failed: string };
}

export interface PoisonTally {
  readonly sent: number;
  /** Written, and naming a request whose client can be told. */
  readonly named: number;
  /** Named ones with an error event (request_dead_lettered) on chat.events. */
  readonly endedWithError: number;
  /** Ones found on chat.requests.dlq. */
  readonly deadLettered: number;
  /** Misplaced ones whose client, following it at a gateway, got that error event; of how many. */
  readonly followedToError: number;
  readonly followed: number;
  /** Longest time from a named one's write to its error event, ms. */
  readonly longestEndMs: number | null;
  readonly problems: string[];
  readonly ok: boolean;
}

/** Writes options.poisonRecords poison records over the window; resolves once all are written and followed. */
export async function injectPoison(options: {
  cluster: Cluster;
  chaos: ChaosOptions;
  startedAt: number;
  stop: AbortSignal;
  log: (line: string) => void;
}): Promise<PoisonRecord[]> {
  const { cluster, chaos, startedAt, stop, log } = options;
  const topics = topicNames(cluster.prefix);
  const written: PoisonRecord[] = [];
  const follows: Promise<void>[] = [];
  for (let i = 0; i < chaos.poisonRecords && !stop.aborted; i++) {
    const due = startedAt + (chaos.durationMs * (i + 1)) / (chaos.poisonRecords + 1);
    await sleepUntil(due, stop);
    if (stop.aborted) break;
    const kind = KINDS[i % KINDS.length]!;
    const conversationId = `poison${String(i).padStart(3, "0")}`;
    const key = conversationKey({ tenant: TENANT, conversation_id: conversationId });
    const requestId = kind === "not_json" ? null : randomUUID();
    const base = { v: SCHEMA_VERSION, request_id: requestId, conversation_id: conversationId, tenant: TENANT, created_at: Date.now(), type: "turn" };
    const value =
      kind === "bad_field"
        ? JSON.stringify({ ...base, content: 42 })
        : kind === "misplaced"
          ? JSON.stringify({ ...base, content: "a valid turn on the wrong partition" })
          : "\u0000not json {";
    const home = keyPartition(key, chaos.partitions);
    const record: PoisonRecord = { kind, requestId, at: Date.now(), partition: null, offset: null };
    written.push(record);
    // While the broker restarts a write fails: try again until it is back (a minute at most).
    for (let tries = 1; record.partition === null; tries++) {
      try {
        const [delivered] = await produceRecords(readerConfig(cluster.brokers, cluster.credentials), topics.requests, [
          { key, value: Buffer.from(value), ...(kind === "misplaced" && { partition: (home + 1) % chaos.partitions }) },
        ]);
        record.partition = delivered!.partition;
        record.offset = delivered!.offset;
        record.at = Date.now();
        log(`+${((Date.now() - startedAt) / 1000).toFixed(1)} s poison (${kind}) at ${record.partition}@${record.offset}`);
      } catch (err) {
        record.writeError = (err as Error).message;
        log(`poison (${kind}) not written (try ${tries}): ${record.writeError}`);
        if (tries >= 12) break;
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
    if (record.partition === null) continue;
    delete record.writeError;
    if (kind === "misplaced") follows.push(followToEnd(cluster, record, i));
  }
  await Promise.all(follows);
  return written;
}

/** How long a misplaced request's client follows it before it counts as not ended (ms). */
const FOLLOW_MS = 150_000;

/** Follows a misplaced request's events at a gateway (the i-th replica, or the next if that one is away) until its terminal event. */
async function followToEnd(cluster: Cluster, record: PoisonRecord, i: number): Promise<void> {
  // As long as a client's turn may take across the run's faults: a record written just
  // before the broker's restart is dead-lettered once the broker is back (a full run saw 57 s
  // from write to error event, and the follower's earlier 60 s bound ran out at its gateway).
  const deadline = Date.now() + FOLLOW_MS;
  let lastError = "";
  for (let at = i; Date.now() < deadline; at++) {
    try {
      const res = await fetch(`${cluster.gatewayUrl(at)}/v1/requests/${record.requestId}/events`, {
        headers: { authorization: `Bearer ${API_KEY}`, accept: "text/event-stream" },
        signal: AbortSignal.timeout(Math.max(1000, deadline - Date.now())),
      });
      if (res.status !== 200) {
        lastError = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      const parser = new SseReader();
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        for (const m of parser.push(chunk)) {
          if (m.id === undefined) continue;
          const event = JSON.parse(m.data) as ChatEvent;
          if (event.type === "final" || event.type === "error") {
            record.followed = { type: event.type, ...(event.type === "error" && { code: event.code }) };
            return;
          }
        }
      }
      lastError = "the stream ended without a terminal event";
    } catch (err) {
      lastError = (err as Error).message;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  record.followed = { failed: lastError || `no terminal event within ${FOLLOW_MS / 1000} s` };
}

/** What became of the poison, from the topics: each one's dead letter, each named one's error event. */
export function tallyPoison(poison: readonly PoisonRecord[], events: readonly LoggedRecord[], deadLetters: readonly LoggedRecord[]): PoisonTally {
  const problems: string[] = [];
  const errors = new Map<string, { code: string; timestamp: number }>();
  for (const record of events) {
    const decoded = decodeRecord(chatEventSchema, record.value);
    if (decoded.ok && decoded.value.type === "error" && !errors.has(decoded.value.request_id))
      errors.set(decoded.value.request_id, { code: decoded.value.code, timestamp: record.timestamp });
  }
  const dead = new Set(deadLetters.map((r) => `${r.headers[DLQ_HEADERS.partition]}@${r.headers[DLQ_HEADERS.offset]}`));
  const sent = poison.filter((p) => p.partition !== null);
  for (const p of poison) if (p.writeError) problems.push(`note: poison (${p.kind}) not written: ${p.writeError}`);
  let endedWithError = 0;
  let deadLettered = 0;
  let longestEndMs: number | null = null;
  for (const p of sent) {
    const where = `poison (${p.kind}) at ${p.partition}@${p.offset}`;
    if (dead.has(`${p.partition}@${p.offset}`)) deadLettered++;
    else problems.push(`${where}: not on the dead letter topic`);
    if (p.requestId === null) continue;
    const error = errors.get(p.requestId);
    if (error?.code === "request_dead_lettered") {
      endedWithError++;
      longestEndMs = Math.max(longestEndMs ?? 0, error.timestamp - p.at);
    } else problems.push(`${where}: request ${p.requestId} ${error ? `ended with ${error.code}` : "has no error event"}`);
  }
  const misplaced = sent.filter((p) => p.kind === "misplaced");
  const followedToError = misplaced.filter((p) => p.followed && "code" in p.followed && p.followed.code === "request_dead_lettered").length;
  for (const p of misplaced)
    if (!(p.followed && "code" in p.followed && p.followed.code === "request_dead_lettered"))
      problems.push(`poison (misplaced) request ${p.requestId}: its client at a gateway got ${JSON.stringify(p.followed ?? null)}`);
  const named = sent.filter((p) => p.requestId !== null).length;
  return {
    sent: sent.length,
    named,
    endedWithError,
    deadLettered,
    followedToError,
    followed: misplaced.length,
    longestEndMs,
    problems,
    ok: endedWithError === named && deadLettered === sent.length && followedToError === misplaced.length,
  };
}

/** The positions of the poison on chat.requests, so the turn accounting can leave them out. */
export function poisonPositions(poison: readonly PoisonRecord[]): Set<string> {
  return new Set(poison.filter((p) => p.partition !== null).map((p) => `${p.partition}@${p.offset}`));
}

function sleepUntil(t: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (stop.aborted) return resolve();
    const timer = setTimeout(
      () => {
        stop.removeEventListener("abort", done);
        resolve();
      },
      Math.max(0, t - Date.now()),
    );
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    stop.addEventListener("abort", done, { once: true });
  });
}
