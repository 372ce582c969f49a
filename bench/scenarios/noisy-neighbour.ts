/**
 * 14. A noisy neighbour: while tenant b floods at its quota, what happens to tenant a's time
 * to first token. One worker (WORKER_SLOTS=2) and one gateway with API keys for a and b, b
 * held to 16 requests in flight by the keys file's limits. Tenant a sends short turns
 * (max_tokens 8), one at a time, in one conversation, through the gateway's native route
 * (POST the message, follow its SSE stream); its time to first token is from before the POST
 * to the first delta at this client. Two phases, each with a conversation of its own and the
 * same prompts: a alone, then a while b keeps its quota's worth of 128-token turns in flight:
 * more callers than the quota (each its own conversation, one turn at a time), so b is
 * always at its limit and its extra calls get 429s, which a caller retries after a short
 * pause, as a client that backs off would.
 *
 * Partitions: a's conversations and a quarter of b's hash to the same partition of
 * chat.requests (KeyMaker), the rest of b's to the others. So a's turns meet b's in their
 * own partition, which tests whether the worker runs different conversations of one
 * partition side by side, and in the worker's slots, which tests whether it shares them
 * fairly among tenants. Target: a's p99 under the flood within 1.5x of its p99 alone.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type http from "node:http";
import os from "node:os";
import path from "node:path";
import type { Service } from "../../testkit/services.js";
import { GatewayStatusError, gatewayEvents, gatewayPost, gatewayTurn, keepAliveAgent, type HttpTimeline } from "../lib/http-clients.js";
import { KeyMaker } from "../lib/partitions.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, type TargetCheck, fmt, ms, sleep } from "../lib/scenario.js";
import { createTopics, stackSpec, startGateway, startWorker } from "../lib/stack.js";
import { summarize } from "../lib/stats.js";
import { PROMPTS } from "./route.js";

const PARTITIONS = 4;
/** The partition a's conversations are on, and b's every PARTITIONS-th. */
const SHARED_PARTITION = 0;
const SLOTS = 2;
/** Tenant b's requests in flight (its keys-file limit). */
const B_QUOTA = 16;
/** Tenant b's callers: more than its quota, so it stays at the quota and its extra calls are refused. */
const B_CALLERS = B_QUOTA + 4;
const A_MAX_TOKENS = 8;
const B_MAX_TOKENS = 128;
/** A refused caller of b waits this long before it tries again, ms. */
const B_RETRY_MS = 100;
/** Between two of a's turns, ms (a user reading the reply). */
const A_PAUSE_MS = 100;
const TARGET_RATIO = 1.5;
const KEYS = { a: "noisy-a-key", b: "noisy-b-key" };
const auth = (tenant: keyof typeof KEYS) => ({ authorization: `Bearer ${KEYS[tenant]}` });

interface ATurns {
  /** Time to first token of each answered turn, ms. */
  ttftMs: number[];
  sent: number;
  answered: number;
  failures: string[];
}

/** Tenant a's turns, one at a time in one conversation, until `n` are sent or `deadline` (performance.now) passes. */
async function tenantATurns(baseUrl: string, agent: http.Agent, conversationId: string, n: number, deadline: number): Promise<ATurns> {
  const out: ATurns = { ttftMs: [], sent: 0, answered: 0, failures: [] };
  for (let i = 0; i < n && performance.now() < deadline; i++) {
    out.sent++;
    try {
      const t = await gatewayTurn(baseUrl, conversationId, PROMPTS[i % PROMPTS.length]!, A_MAX_TOKENS, agent, auth("a"));
      out.ttftMs.push((t.firstTextAt ?? t.finalAt!) - t.sentAt);
      out.answered++;
    } catch (err) {
      out.failures.push((err as Error).message);
    }
    await sleep(A_PAUSE_MS);
  }
  return out;
}

interface FloodCounts {
  completed: number;
  tokens: number;
  refused: number;
  failures: string[];
}

/** Tenant b's callers, each its own conversation, one turn at a time, until stopped. */
class Flood {
  readonly counts: FloodCounts = { completed: 0, tokens: 0, refused: 0, failures: [] };
  /** b's turns accepted (202) and not yet ended, as this client counts them. */
  inFlight = 0;
  #stopped = false;
  #callers: Promise<void>[] = [];

  constructor(
    private readonly baseUrl: string,
    private readonly agent: http.Agent,
  ) {}

  start(conversations: readonly string[]): void {
    this.#callers = conversations.map((id, i) => this.#caller(id, i));
  }

  async #caller(conversationId: string, i: number): Promise<void> {
    for (let turn = 0; !this.#stopped; turn++) {
      const t: HttpTimeline = { sentAt: performance.now(), completionTokens: 0, events: 0 };
      let requestId: string;
      try {
        requestId = await gatewayPost(
          this.baseUrl,
          conversationId,
          `${PROMPTS[(i + turn) % PROMPTS.length]} Tell it long.`,
          B_MAX_TOKENS,
          this.agent,
          auth("b"),
        );
      } catch (err) {
        if (err instanceof GatewayStatusError && err.status === 429) this.counts.refused++;
        else this.counts.failures.push((err as Error).message);
        await sleep(B_RETRY_MS);
        continue;
      }
      this.inFlight++;
      let failed = false;
      try {
        await gatewayEvents(this.baseUrl, requestId, this.agent, t, { headers: auth("b") });
        this.counts.completed++;
        this.counts.tokens += t.completionTokens;
      } catch (err) {
        this.counts.failures.push((err as Error).message);
        failed = true;
      } finally {
        this.inFlight--;
      }
      if (failed) await sleep(B_RETRY_MS);
    }
  }

  /** Stops sending; resolves once every caller's turn in flight has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#callers);
  }
}

/** The gateway's count of b's calls refused for requests in flight (kafka_llm_gateway_rate_limited_total). */
async function gatewayRefusals(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = /^kafka_llm_gateway_rate_limited_total\{tenant="b",limit="concurrentRequests"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

export const noisyNeighbourScenario: Scenario = {
  id: "noisy",
  title: "14. Noisy neighbour: tenant a's time to first token while tenant b floods at its quota",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const turns = ctx.quick ? 15 : 100;
    // Bounds each phase (today's worker may keep a's turns waiting for seconds under the flood).
    const phaseLimitMs = ctx.quick ? 40_000 : 120_000;
    const spec = stackSpec(ctx.brokers, "noisy", PARTITIONS);
    await createTopics(spec);
    const dir = await mkdtemp(path.join(os.tmpdir(), "bench-noisy-"));
    const keysFile = path.join(dir, "keys.json");
    await writeFile(
      keysFile,
      JSON.stringify([
        { tenant: "a", key: KEYS.a },
        { tenant: "b", key: KEYS.b, limits: { concurrent_requests: B_QUOTA } },
      ]),
    );
    // Separate connection pools: b's callers never hold the sockets a's turns wait for.
    const aAgent = keepAliveAgent(8);
    const bAgent = keepAliveAgent(2 * B_CALLERS);
    let worker: Service | null = null;
    let gateway: Service | null = null;
    let flood: Flood | null = null;
    try {
      worker = await startWorker(spec, ctx.model, "w-noisy", { WORKER_SLOTS: String(SLOTS) });
      gateway = await startGateway(spec, { GATEWAY_AUTH: "keys", GATEWAY_API_KEYS_FILE: keysFile, LOG_LEVEL: "warn" });
      const base = gateway.baseUrl;
      const aKeys = new KeyMaker("a", PARTITIONS, "a");
      const bKeys = new KeyMaker("b", PARTITIONS, "b");
      const bConversations = Array.from({ length: B_CALLERS }, (_, i) => bKeys.next((SHARED_PARTITION + i) % PARTITIONS));
      const sharing = bConversations.filter((_, i) => i % PARTITIONS === 0).length;

      ctx.log("warm-up");
      await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => gatewayTurn(base, bKeys.next(p), PROMPTS[p]!, B_MAX_TOKENS, bAgent, auth("b"))));
      await tenantATurns(base, aAgent, aKeys.next(SHARED_PARTITION), 4, Infinity);

      ctx.log(`a alone: ${turns} turns`);
      const alone = await tenantATurns(base, aAgent, aKeys.next(SHARED_PARTITION), turns, performance.now() + phaseLimitMs);

      ctx.log(`b floods (${B_CALLERS} callers, quota ${B_QUOTA}); a: ${turns} turns`);
      flood = new Flood(base, bAgent);
      const refusedBefore = await gatewayRefusals(base);
      flood.start(bConversations);
      const rampUntil = performance.now() + 10_000;
      while (flood.inFlight < B_QUOTA && performance.now() < rampUntil) await sleep(20);
      await sleep(1000); // b's turns queue up on the worker
      const at = { ...flood.counts };
      const inFlight: number[] = [];
      const sampler = setInterval(() => inFlight.push(flood!.inFlight), 50);
      const started = performance.now();
      const flooded = await tenantATurns(base, aAgent, aKeys.next(SHARED_PARTITION), turns, performance.now() + phaseLimitMs);
      const windowMs = performance.now() - started;
      clearInterval(sampler);
      const during = { completed: flood.counts.completed - at.completed, tokens: flood.counts.tokens - at.tokens, refused: flood.counts.refused - at.refused };
      ctx.log("stopping the flood");
      await flood.stop();
      const gatewayRefused = (await gatewayRefusals(base)) - refusedBefore;

      const a0 = summarize(alone.ttftMs);
      const a1 = summarize(flooded.ttftMs);
      const ratio = a1.p99 / a0.p99;
      const meanInFlight = inFlight.reduce((x, y) => x + y, 0) / Math.max(1, inFlight.length);
      const meanBTokens = during.completed ? during.tokens / during.completed : NaN;
      const rows: Row[] = [
        {
          figure: `tenant a: time to first token p50 / p99, alone (${alone.answered} turns of max_tokens ${A_MAX_TOKENS}, one at a time, through the gateway)`,
          measured: `${fmt(a0.p50)} / ${fmt(a0.p99)} ms`,
          compared: "baseline",
        },
        {
          figure: `the same while tenant b floods at its quota (${B_QUOTA} turns of max_tokens ${B_MAX_TOKENS} in flight; ${sharing} of b's ${B_CALLERS} conversations on a's partition)`,
          measured: `${fmt(a1.p50)} / ${fmt(a1.p99)} ms`,
          compared: `p99 ${fmt(ratio, 2)}x alone (target <= ${TARGET_RATIO}x); p50 ${fmt(a1.p50 / a0.p50, 2)}x`,
        },
        {
          figure: "tenant b while a's flood turns ran: turns completed, calls refused (429)",
          measured: `${during.completed} turns (${fmt((during.tokens / windowMs) * 1000, 0)} tok/s, ${fmt(meanBTokens, 0)} tokens each), ${during.refused} refused`,
          compared: `in flight: mean ${fmt(meanInFlight, 1)}, most ${Math.max(0, ...inFlight)} (quota ${B_QUOTA}); the gateway refused ${gatewayRefused} for requests in flight over the whole flood (this client: ${flood.counts.refused})`,
        },
        {
          figure: "tenant a's turns answered of those sent, alone and under the flood",
          measured: `${alone.answered}/${alone.sent} and ${flooded.answered}/${flooded.sent}`,
          compared:
            flooded.sent < turns || alone.sent < turns
              ? `a phase's time limit (${phaseLimitMs / 1000} s) came before its ${turns} turns were sent`
              : `all ${turns} sent in each phase`,
        },
      ];
      const met = ratio <= TARGET_RATIO;
      const targets: TargetCheck[] = [
        {
          target: `a's TTFT p99 within ${TARGET_RATIO}x of alone while b floods at its quota`,
          measured: `${fmt(ratio, 2)}x (${ms(a1.p99)} vs ${ms(a0.p99)})`,
          met,
          ...(met
            ? {}
            : {
                why: `a's turn waits for b's: behind the b turns queued on its partition when the worker runs a partition's records one at a time (${sharing} of b's conversations share it), and for a slot while b's ${B_MAX_TOKENS}-token turns hold both; a scheduler that runs a partition's conversations side by side and gives a waiting tenant the next free slot ahead of b's queue bounds the wait by one b turn's remaining generation`,
              }),
        },
      ];
      const broken = [
        ...(alone.failures.length + flooded.failures.length > 0
          ? [`tenant a's turns failed: ${[...alone.failures, ...flooded.failures].slice(0, 3).join("; ")}`]
          : []),
        ...(flood.counts.failures.length > 0 ? [`tenant b's turns failed (not 429): ${flood.counts.failures.slice(0, 3).join("; ")}`] : []),
      ];
      return {
        rows,
        targets,
        notes: [
          `One worker (WORKER_SLOTS=${SLOTS}, stories260K, one CPU thread), one gateway with API keys; tenant b's keys-file limit concurrent_requests=${B_QUOTA}, tenant a none. ${PARTITIONS} partitions: a's conversations and ${sharing} of b's ${B_CALLERS} on partition ${SHARED_PARTITION} (KeyMaker), the rest of b's on the others.`,
          `Tenant a: ${turns} turns per phase, one at a time with ${A_PAUSE_MS} ms between them, in one conversation per phase (the same prompts both phases); time to first token from before the POST to the first delta on the SSE stream. p99 of ${turns} samples is close to their maximum.`,
          `Tenant b: ${B_CALLERS} callers, each its own conversation one turn at a time (max_tokens ${B_MAX_TOKENS}); a refused call (429) is retried after ${B_RETRY_MS} ms. a's flood turns start once b has ${B_QUOTA} in flight and 1 s more; b's figures count the turns that ended while a's flood turns ran.`,
        ],
        raw: {
          partitions: PARTITIONS,
          slots: SLOTS,
          bQuota: B_QUOTA,
          bCallers: B_CALLERS,
          bConversationsOnSharedPartition: sharing,
          alone: { ...alone, ttft: a0 },
          flood: { ...flooded, ttft: a1 },
          ratioP99: ratio,
          b: { during, windowMs, meanInFlight, inFlightSamples: inFlight.length, wholeFlood: flood.counts, gatewayRefused },
        },
        ...(broken.length > 0 && { broken }),
      };
    } finally {
      await flood?.stop().catch(() => {});
      await gateway?.stop().catch(() => {});
      await worker?.stop().catch(() => {});
      aAgent.destroy();
      bAgent.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
