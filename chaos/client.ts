/**
 * One chaos client: a conversation sending its turns through the gateway's HTTP API, one
 * after the other, the way a careful client would:
 *
 * - POST the message; on 503 wait Retry-After and POST again; on a timeout or a broken
 *   connection POST again too. A POST that got 503 (or no answer) may still reach Kafka
 *   later (the gateway's producer keeps retrying after it answered), so every try of a
 *   turn carries the same Idempotency-Key: the gateway derives the request id from it and
 *   all copies name one request, which the worker applies once. Without keys
 *   (useIdempotencyKeys false) each try gets its own content ("… try k") and the
 *   accounting counts the copies that landed anyway as ghost turns.
 * - Follow the request's events over SSE until the final event. A `start` event begins a
 *   new attempt: the partial text of the previous one is thrown away. A stream that drops
 *   (or that the client drops on purpose, see dropRate) is resumed with Last-Event-ID.
 * - Talk to one gateway replica (its home, spread over the replicas) until it fails it: a
 *   POST with no answer or a 503, a stream cut off, a connection refused, or a `reconnect`
 *   message from a draining replica moves the client to the next replica, where it posts the
 *   same turn again or resumes the stream with the last event id it had.
 *
 * It records everything it did and saw; the accounting compares that with Kafka.
 */
import type { ChatEvent, ErrorEvent, FinalEvent } from "../contracts/records/events.js";
import { SseReader } from "../testkit/sse.js";

export type PostOutcome = "accepted" | "unavailable" | "timeout" | "network" | "rejected";

export interface PostTry {
  readonly content: string;
  readonly at: number;
  readonly ms: number;
  readonly outcome: PostOutcome;
  readonly status?: number;
  readonly requestId?: string;
  readonly detail?: string;
}

export interface ClientTurn {
  readonly n: number;
  readonly tries: PostTry[];
  /** The request id of the accepted try. */
  requestId: string | null;
  acceptedAt: number | null;
  /** The terminal event as the client received it. */
  terminal: FinalEvent | ErrorEvent | null;
  terminalAt: number | null;
  /** The attempt whose text the client was assembling when the terminal came, and that text. */
  followedAttempt: string | null;
  streamedText: string;
  /** SSE connections opened, streams dropped on purpose, ended by the server without a terminal, stalled. */
  connects: number;
  drops: number;
  serverEnds: number;
  stalls: number;
  /** Streams cut off by the server's side (a replica killed), and `reconnect` messages (a replica draining). */
  lostStreams: number;
  reconnectMessages: number;
  /** Times the client moved to another gateway replica during this turn. */
  gatewayMoves: number;
  /** Longest time from a stream lost at a replica to a stream open at another, ms (0: none lost). */
  longestResumeMs: number;
  /** Start events that replaced text of an earlier attempt (the client discarded it). */
  discardedAttempts: number;
  /** Something the client found wrong on the wire (not counted as lost or doubled by itself). */
  problems: string[];
}

export interface ClientConversation {
  readonly id: string;
  readonly turns: ClientTurn[];
  /** Why the client stopped before its last turn, if it did. */
  gaveUp: string | null;
}

export interface ClientOptions {
  /** Gateway replica i's URL now (a replaced replica's changes); i is taken modulo `gateways`. */
  gatewayUrl(i: number): string;
  readonly gateways: number;
  /** The replica the client starts at. */
  readonly home: number;
  /** Where the client says which replica it is reading a reply from (the gateway kills aim there). */
  readonly board?: StreamBoard;
  readonly apiKey: string;
  readonly conversationId: string;
  readonly turns: number;
  /** Send an Idempotency-Key with each turn (the same on every try of it). */
  readonly useIdempotencyKeys: boolean;
  readonly startDelayMs: number;
  /** Pause between a final and the next turn, ms. */
  thinkMs(): number;
  /** Chance of dropping the event stream once per turn after its first delta. */
  readonly dropRate: number;
  random(): number;
  /** Aborts everything (the run's deadline). */
  readonly stop: AbortSignal;
}

const POST_TIMEOUT_MS = 15_000;
/** An open stream with no byte (not even a keepalive, sent every 5 s) for this long is treated as dead. */
const STREAM_IDLE_MS = 30_000;

/** The message of a turn: the same on every try when an idempotency key names the turn, else numbered by try. */
export function turnContent(conversationId: string, n: number, tryNo: number | null): string {
  return tryNo === null ? `${conversationId} turn ${n}` : `${conversationId} turn ${n} try ${tryNo}`;
}

/** Parses turnContent's text back; null for anything else. */
export function parseTurnContent(content: string): { conversationId: string; n: number; tryNo: number | null } | null {
  const m = /^(\S+) turn (\d+)(?: try (\d+))?$/.exec(content);
  return m ? { conversationId: m[1]!, n: Number(m[2]), tryNo: m[3] === undefined ? null : Number(m[3]) } : null;
}

/**
 * Which replicas have clients in the middle of a reply now: a stream counts from its first
 * chat event to its end. A gateway kill aims at one that has some, so it cuts replies.
 */
export class StreamBoard {
  readonly #midReply = new Map<number, number>();
  enter(gateway: number): void {
    this.#midReply.set(gateway, (this.#midReply.get(gateway) ?? 0) + 1);
  }
  leave(gateway: number): void {
    this.#midReply.set(gateway, (this.#midReply.get(gateway) ?? 1) - 1);
  }
  midReply(gateway: number): number {
    return this.#midReply.get(gateway) ?? 0;
  }
}

/** Which replica a client talks to; it moves to the next one when its own fails it. */
class Route {
  #at: number;
  constructor(
    private readonly o: ClientOptions,
    home: number,
  ) {
    this.#at = home;
  }
  get url(): string {
    return this.o.gatewayUrl(this.#at);
  }
  /** The replica's index (0..gateways-1). */
  get index(): number {
    return this.#at % this.o.gateways;
  }
  move(turn: ClientTurn): void {
    if (this.o.gateways < 2) return;
    this.#at = (this.#at + 1) % this.o.gateways;
    turn.gatewayMoves++;
  }
}

export async function runConversation(o: ClientOptions): Promise<ClientConversation> {
  const conversation: ClientConversation = { id: o.conversationId, turns: [], gaveUp: null };
  const auth = { authorization: `Bearer ${o.apiKey}` };
  const route = new Route(o, o.home);
  try {
    await sleep(o.startDelayMs, o.stop);
    for (let n = 1; n <= o.turns; n++) {
      const turn: ClientTurn = {
        n,
        tries: [],
        requestId: null,
        acceptedAt: null,
        terminal: null,
        terminalAt: null,
        followedAttempt: null,
        streamedText: "",
        connects: 0,
        drops: 0,
        serverEnds: 0,
        stalls: 0,
        lostStreams: 0,
        reconnectMessages: 0,
        gatewayMoves: 0,
        longestResumeMs: 0,
        discardedAttempts: 0,
        problems: [],
      };
      conversation.turns.push(turn);
      const eventsUrl = await post(o, route, turn, auth);
      await follow(o, route, turn, eventsUrl, auth);
      if (n < o.turns) await sleep(o.thinkMs(), o.stop);
    }
  } catch (err) {
    conversation.gaveUp = o.stop.aborted ? "the run's deadline passed" : `client error: ${(err as Error).message}`;
  }
  return conversation;
}

/** POSTs the turn until the gateway accepts it; returns its events URL. */
async function post(o: ClientOptions, route: Route, turn: ClientTurn, auth: Record<string, string>): Promise<string> {
  for (let tryNo = 1; ; tryNo++) {
    o.stop.throwIfAborted();
    const content = turnContent(o.conversationId, turn.n, o.useIdempotencyKeys ? null : tryNo);
    const idempotency: Record<string, string> = o.useIdempotencyKeys ? { "idempotency-key": `${o.conversationId}-turn-${turn.n}` } : {};
    const at = Date.now();
    let waitMs: number;
    try {
      const signal = AbortSignal.any([o.stop, AbortSignal.timeout(POST_TIMEOUT_MS)]);
      const res = await unlessAborted(
        fetch(`${route.url}/v1/conversations/${o.conversationId}/messages`, {
          method: "POST",
          headers: { ...auth, ...idempotency, "content-type": "application/json" },
          body: JSON.stringify({ content }),
          signal,
        }),
        signal,
      );
      const body = (await unlessAborted(
        res.json().catch(() => null),
        signal,
      )) as { request_id?: string; events_url?: string; error?: { message?: string } } | null;
      if (res.status === 202 && body?.request_id && body.events_url) {
        turn.tries.push({ content, at, ms: Date.now() - at, outcome: "accepted", status: 202, requestId: body.request_id });
        turn.requestId = body.request_id;
        turn.acceptedAt = Date.now();
        return body.events_url;
      }
      const outcome: PostOutcome = res.status === 503 ? "unavailable" : "rejected";
      turn.tries.push({ content, at, ms: Date.now() - at, outcome, status: res.status, detail: body?.error?.message ?? "" });
      // Anything but 503 is the client's fault or a bug: retrying cannot help, the turn is not sent.
      if (outcome === "rejected") throw new Error(`POST answered ${res.status}: ${body?.error?.message ?? ""}`);
      waitMs = 1000 * Number(res.headers.get("retry-after") ?? "2");
      // Unavailable here (a draining replica answers 503 too): the next try goes to another.
      route.move(turn);
    } catch (err) {
      if (o.stop.aborted) throw err;
      if (turn.tries.at(-1)?.outcome === "rejected") throw err;
      const timedOut = (err as Error).name === "TimeoutError";
      turn.tries.push({
        content,
        at,
        ms: Date.now() - at,
        outcome: timedOut ? "timeout" : "network",
        detail: String((err as Error).cause ?? (err as Error).message),
      });
      // No answer: the replica may be gone. The same Idempotency-Key names the same request at any replica.
      route.move(turn);
      waitMs = 200;
    }
    await sleep(waitMs, o.stop);
  }
}

/** Follows the request's events until its terminal event, resuming dropped streams. */
async function follow(o: ClientOptions, route: Route, turn: ClientTurn, eventsUrl: string, auth: Record<string, string>): Promise<void> {
  let lastEventId: string | undefined;
  let dropPending = o.random() < o.dropRate;
  /** When the stream was lost at a replica, until one opens at another. */
  let lostAt: number | null = null;
  const lost = () => {
    lostAt ??= Date.now();
    route.move(turn);
  };
  while (turn.terminal === null) {
    o.stop.throwIfAborted();
    const local = new AbortController();
    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => local.abort(new StallError()), STREAM_IDLE_MS);
    };
    turn.connects++;
    /** The replica this connection is on the board for, once its stream is open. */
    let onBoard: number | null = null;
    try {
      touch();
      const signal = AbortSignal.any([o.stop, local.signal]);
      const res = await unlessAborted(
        fetch(route.url + eventsUrl, {
          headers: { ...auth, accept: "text/event-stream", ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }) },
          signal,
        }),
        signal,
      );
      if (res.status !== 200) {
        turn.problems.push(`events answered HTTP ${res.status}`);
        void res.body?.cancel().catch(() => {});
        if (res.status === 503) lost();
        await sleep(1000, o.stop);
        continue;
      }
      if (lostAt !== null) {
        turn.longestResumeMs = Math.max(turn.longestResumeMs, Date.now() - lostAt);
        lostAt = null;
      }
      const parser = new SseReader();
      const reader = res.body!.getReader();
      let moved = false;
      for (;;) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await unlessAborted(reader.read(), signal);
        } catch (err) {
          void reader.cancel().catch(() => {});
          throw err;
        }
        if (next.done) break;
        touch();
        for (const message of parser.push(next.value)) {
          if (message.event === "queued") continue; // the gateway's notice while it waits, not a chat event
          if (message.event === "reconnect") {
            // A draining replica: resume at another with the last event id.
            turn.reconnectMessages++;
            lost();
            moved = true;
            break;
          }
          if (message.id !== undefined) lastEventId = message.id;
          take(turn, JSON.parse(message.data) as ChatEvent);
          if (onBoard === null) {
            onBoard = route.index;
            o.board?.enter(onBoard);
          }
          if (turn.terminal !== null) break;
          if (dropPending && message.event === "delta") {
            // Gone: what else this chunk held is never read.
            dropPending = false;
            turn.drops++;
            local.abort(new DropError());
            break;
          }
        }
        if (turn.terminal !== null || moved) break;
      }
      void reader.cancel().catch(() => {});
      if (turn.terminal === null && !moved) {
        turn.serverEnds++;
        await sleep(200, o.stop);
      }
    } catch (err) {
      if (o.stop.aborted) throw err;
      if (local.signal.reason instanceof StallError) {
        turn.stalls++;
        lost();
      } else if (!(local.signal.reason instanceof DropError)) {
        // Cut off or refused: the replica is gone (killed). Resume at another.
        turn.lostStreams++;
        lost();
        await sleep(100, o.stop);
      }
    } finally {
      clearTimeout(idle);
      if (!local.signal.aborted) local.abort();
      if (onBoard !== null) o.board?.leave(onBoard);
    }
  }
}

/** Applies one event to what the client shows: a start resets the text, deltas append, a terminal ends. */
function take(turn: ClientTurn, event: ChatEvent): void {
  if (event.request_id !== turn.requestId) {
    turn.problems.push(`an event of request ${event.request_id} on the stream of ${turn.requestId}`);
    return;
  }
  switch (event.type) {
    case "start":
      if (turn.followedAttempt !== null && turn.followedAttempt !== event.attempt) turn.discardedAttempts++;
      turn.followedAttempt = event.attempt;
      turn.streamedText = "";
      break;
    case "delta":
      if (event.attempt === turn.followedAttempt) turn.streamedText += event.text;
      else turn.problems.push(`a delta of attempt ${event.attempt} while following ${turn.followedAttempt}`);
      break;
    case "final":
    case "error":
      turn.terminal = event;
      turn.terminalAt = Date.now();
      break;
  }
}

/**
 * `work`, or a rejection with the signal's reason as soon as it aborts. An aborted fetch
 * does not always settle a pending body read (seen on Node 20): never wait on one alone.
 */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

class StallError extends Error {}
class DropError extends Error {}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
