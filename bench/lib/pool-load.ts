/**
 * Load for the pools scenario (bench/scenarios/pools.ts): a turn through the gateway's native
 * route that names a pool's model, timed at the POST's 202 (accepted: the request is on its
 * pool's topic), at the first delta and at the final of its SSE stream; steady callers that
 * each run one turn after another; a sender that starts turns at a fixed rate whatever the
 * replies do (a burst, when the rate is above what the pool can answer); and a sampler of the
 * gateway's lag per pool (kafka_llm_consumer_group_total_lag{pool}).
 */
import { metricValue } from "../../testkit/metrics.js";
import type http from "node:http";
import { gatewayEvents, gatewayPost, type HttpTimeline } from "./http-clients.js";
import { sleep } from "./scenario.js";

/** One turn's times (performance.now) and outcome; a failed turn has `error`. */
export interface PoolTurn {
  pool: string;
  sentAt: number;
  /** The 202: the request is on the pool's topic. */
  acceptedAt?: number;
  firstTextAt?: number;
  finalAt?: number;
  tokens: number;
  error?: string;
}

/** Where a turn goes: the pool (for the record) and the model name that routes to it. */
export interface PoolTarget {
  pool: string;
  model: string;
}

/** A native POST on a fresh conversation, naming `target.model`: where it goes, what it asks. */
type TurnArgs = [
  baseUrl: string,
  agent: http.Agent,
  target: PoolTarget,
  conversationId: string,
  content: string,
  maxTokens: number,
  headers?: Record<string, string>,
];

/** A native turn, followed on its stream to the final; never throws (a failure is the turn's `error`). */
export function poolTurn(...args: TurnArgs): Promise<PoolTurn> {
  return sendTurn(true, ...args);
}

/** A native POST, not followed: the turn's `acceptedAt` is its 202; never throws. */
export function poolPost(...args: TurnArgs): Promise<PoolTurn> {
  return sendTurn(false, ...args);
}

async function sendTurn(follow: boolean, ...[baseUrl, agent, target, conversationId, content, maxTokens, headers = {}]: TurnArgs): Promise<PoolTurn> {
  const turn: PoolTurn = { pool: target.pool, sentAt: performance.now(), tokens: 0 };
  try {
    const requestId = await gatewayPost(baseUrl, conversationId, content, maxTokens, agent, headers, { model: target.model });
    turn.acceptedAt = performance.now();
    if (follow) {
      const t: HttpTimeline = { sentAt: turn.sentAt, completionTokens: 0, events: 0 };
      await gatewayEvents(baseUrl, requestId, agent, t, { headers, timeoutMs: 300_000 });
      turn.firstTextAt = t.firstTextAt ?? t.finalAt;
      turn.finalAt = t.finalAt;
      turn.tokens = t.completionTokens;
    }
  } catch (err) {
    turn.error = (err as Error).message;
  }
  return turn;
}

/** `n` callers, each running `turn(caller, i)` one after another until stopped. */
export class SteadyCallers {
  readonly turns: PoolTurn[] = [];
  #stopped = false;
  #loops: Promise<void>[] = [];

  constructor(
    private readonly n: number,
    private readonly turn: (caller: number, i: number) => Promise<PoolTurn>,
  ) {}

  start(): void {
    this.#loops = Array.from({ length: this.n }, async (_, caller) => {
      for (let i = 0; !this.#stopped; i++) {
        const t = await this.turn(caller, i);
        this.turns.push(t);
        if (t.error) await sleep(100); // a failing stack must not spin
      }
    });
  }

  /** Stops starting turns; resolves once each caller's turn in flight has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }
}

/**
 * Starts `turn(i)` every 1/rate seconds (on a schedule, not after the previous reply: an
 * open loop, so a pool that cannot keep up builds a backlog) until stopped.
 */
export class FixedRate {
  readonly turns: PoolTurn[] = [];
  #ratePerS: number;
  #stopped = false;
  #pending: Promise<void>[] = [];
  #loop: Promise<void> | null = null;
  #sent = 0;

  constructor(
    ratePerS: number,
    private readonly turn: (i: number) => Promise<PoolTurn>,
  ) {
    this.#ratePerS = ratePerS;
  }

  get sent(): number {
    return this.#sent;
  }

  /** Changes the rate from the next send on. */
  setRate(ratePerS: number): void {
    this.#ratePerS = ratePerS;
  }

  start(): void {
    this.#loop = (async () => {
      let next = performance.now();
      while (!this.#stopped) {
        const i = this.#sent++;
        this.#pending.push(this.turn(i).then((t) => void this.turns.push(t)));
        next += 1000 / this.#ratePerS;
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        else if (wait < -1000) next = performance.now(); // fell behind (a stalled loop): no catch-up storm
      }
    })();
  }

  /** Stops sending; resolves when every turn sent has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await Promise.all(this.#pending);
  }
}

export interface LagSample {
  at: number;
  /** Total lag per pool, as the gateway exports it (absent: not exported yet). */
  lag: Record<string, number>;
}

/** Reads the gateway's kafka_llm_consumer_group_total_lag per pool every `intervalMs`. */
export class LagSampler {
  readonly samples: LagSample[] = [];
  #timer: NodeJS.Timeout | null = null;
  #busy = false;

  constructor(
    private readonly gatewayUrl: string,
    private readonly pools: readonly string[],
    private readonly intervalMs = 250,
  ) {}

  start(): void {
    this.#timer = setInterval(() => void this.#sample(), this.intervalMs);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  async #sample(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const text = await (await fetch(`${this.gatewayUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
      const lag: Record<string, number> = {};
      for (const pool of this.pools) {
        const v = metricValue(text, "kafka_llm_consumer_group_total_lag", { pool });
        if (v !== undefined) lag[pool] = v;
      }
      this.samples.push({ at: performance.now(), lag });
    } catch {
      // a sample missed under load: the next one counts
    } finally {
      this.#busy = false;
    }
  }

  /** A pool's lag samples taken in [from, to). */
  between(pool: string, from: number, to: number): number[] {
    return this.samples.filter((s) => s.at >= from && s.at < to && s.lag[pool] !== undefined).map((s) => s.lag[pool]!);
  }

  /** The pool's latest sample, or undefined. */
  latest(pool: string): number | undefined {
    for (let i = this.samples.length - 1; i >= 0; i--) if (this.samples[i]!.lag[pool] !== undefined) return this.samples[i]!.lag[pool];
    return undefined;
  }
}

/** Waits until the gateway's GET /v1/models lists every one of `models`. */
export async function untilListed(baseUrl: string, models: readonly string[], headers: Record<string, string>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let seen: string[] = [];
  while (performance.now() < deadline) {
    try {
      const res = await fetch(`${baseUrl}/v1/models`, { headers, signal: AbortSignal.timeout(2000) });
      if (res.ok) {
        seen = ((await res.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
        if (models.every((m) => seen.includes(m))) return;
      }
    } catch {
      // not yet
    }
    await sleep(200);
  }
  throw new Error(`the gateway listed ${seen.join(", ") || "no model"} after ${timeoutMs} ms, not every one of ${models.join(", ")}`);
}
