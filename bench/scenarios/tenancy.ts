/**
 * 12. What tenant isolation costs.
 *
 * KV slots: a slot's cache is cleared before another tenant uses it (worker/slot-pool.ts).
 * One worker with one slot, stateless turns (the OpenAI route's: the whole context in the
 * request) with the same ~540-token system prompt, as a shared agent prompt would be:
 *   same tenant   every call by tenant a: the slot keeps the prompt, each call evaluates
 *                 only what differs;
 *   alternating   calls by tenants a and b in turn: each call finds the other tenant's
 *                 tokens, clears the slot and evaluates the whole prompt.
 * The worker's own time to first token (final event timings) and the cached prompt tokens.
 *
 * Kafka security: the same turns on three brokers of this scenario's own, each with one
 * worker logged in as in production: PLAINTEXT without authorization (what the project
 * ran before), SASL/SCRAM with ACLs (the local and test broker), and SASL/SCRAM over TLS
 * with ACLs (production). A turn's fixed cost (the client's final less the worker's
 * generation, one turn at a time) and throughput at 4 concurrent conversations, each on
 * its own partition.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { makeBrokerCertificates } from "../../scripts/kafka/certificates.js";
import type { Service } from "../../testkit/services.js";
import { BENCH_TENANT, BenchChat } from "../lib/kafka-chat.js";
import { KeyMaker } from "../lib/partitions.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, fmt, ms } from "../lib/scenario.js";
import { createTopics, stackSpec, startWorker, type StackSpec } from "../lib/stack.js";
import { median, summarize } from "../lib/stats.js";
import { PROMPTS } from "./route.js";

const SYSTEM = `You are the storyteller of the valley. ${Array.from({ length: 20 }, (_, i) => `Rule ${i + 1}: the fox and the owl share their bread.`).join(" ")}`;
const CONCURRENT = 4;
const MAX_TOKENS = 32;

interface KvSample {
  tenant: string;
  workerTtftMs: number;
  promptTokens: number;
  cachedPromptTokens: number;
}

interface SecuritySample {
  name: string;
  fixedCostMs: number[];
  tokensPerS: number;
  /** Each pass's tokens/s (the raw figures; tokensPerS is their mean). */
  tokensPerSPasses?: number[];
}

export const tenancyScenario: Scenario = {
  id: "tenancy",
  title: "12. Tenant isolation: stateless calls on a slot shared by tenants; Kafka with SASL and TLS against plaintext",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const kv = await kvCost(ctx);
    const security = await securityCost(ctx);
    const same = kv.filter((s) => s.mode === "same tenant");
    const alternating = kv.filter((s) => s.mode === "alternating");
    const ttft = (list: typeof kv) => median(list.map((s) => s.sample.workerTtftMs));
    const cached = (list: typeof kv) => median(list.map((s) => s.sample.cachedPromptTokens));
    const plain = security[0]!;
    const rows: Row[] = [
      {
        figure: `stateless call, ${kv[0]!.sample.promptTokens}-token prompt, one slot: worker time to first token p50, same tenant each call`,
        measured: ms(ttft(same)),
        compared: `${fmt(cached(same), 0)} prompt tokens cached (p50)`,
      },
      {
        figure: "the same, tenants alternating (the slot cleared each call)",
        measured: ms(ttft(alternating)),
        compared: `${fmt(ttft(alternating) / ttft(same), 2)}x same tenant; ${fmt(cached(alternating), 0)} prompt tokens cached (p50)`,
      },
      ...security.map((s) => ({
        figure: `Kafka ${s.name}: a turn's fixed cost p50 (final seen less generation, 1 at a time); tokens/s at ${CONCURRENT} concurrent`,
        measured: `${ms(median(s.fixedCostMs))}; ${fmt(s.tokensPerS, 0)} tok/s`,
        compared:
          s === plain
            ? "baseline"
            : `${fmt(median(s.fixedCostMs) - median(plain.fixedCostMs), 1)} ms and ${fmt(s.tokensPerS / plain.tokensPerS, 2)}x the plaintext broker's`,
      })),
    ];
    return {
      rows,
      targets: [],
      notes: [
        `KV: one worker, WORKER_SLOTS=1, stateless turns with the same system prompt, max_tokens ${MAX_TOKENS}, greedy; ${same.length} calls each way, interleaved in rounds.`,
        `Kafka security: each broker of its own, one worker (WORKER_SLOTS=${CONCURRENT}), stories260K, ${CONCURRENT} partitions; the bench's client logs in as the administrator, the worker as its own principal. Two passes (plaintext, SASL, SASL/TLS, then the reverse order); fixed cost is the p50 of both passes' turns, tokens/s the mean of the two.`,
      ],
      raw: { kv, security: security.map((s) => ({ ...s, fixedCost: summarize(s.fixedCostMs) })) },
    };
  },
};

async function kvCost(ctx: ScenarioContext): Promise<Array<{ mode: "same tenant" | "alternating"; sample: KvSample }>> {
  const spec = stackSpec(ctx.brokers, "tenancy-kv", 1);
  await createTopics(spec);
  const chat = new BenchChat(ctx.brokers, spec.topics);
  let worker: Service | null = null;
  const out: Array<{ mode: "same tenant" | "alternating"; sample: KvSample }> = [];
  try {
    worker = await startWorker(spec, ctx.model, "w-tenancy-kv", { WORKER_SLOTS: "1", CONTEXT_SIZE: "2048" });
    await chat.start();
    let n = 0;
    const call = async (tenant: string): Promise<KvSample> => {
      const context = [{ role: "system" as const, content: SYSTEM }];
      const t = await chat.finished(await chat.turn(`kv-${n++}`, "Tell me a story.", { tenant, context, params: { max_tokens: MAX_TOKENS, temperature: 0 } }));
      return {
        tenant,
        workerTtftMs: t.final.timings.time_to_first_token_ms,
        promptTokens: t.final.usage.prompt_tokens,
        cachedPromptTokens: t.final.usage.cached_prompt_tokens,
      };
    };
    await call("a");
    const rounds = ctx.quick ? 3 : 10;
    for (let r = 0; r < rounds; r++) {
      ctx.log(`kv round ${r + 1}/${rounds}`);
      // Same tenant: a's calls back to back (the first after b's is the alternating kind, not counted).
      await call("a");
      for (let i = 0; i < 3; i++) out.push({ mode: "same tenant", sample: await call("a") });
      for (let i = 0; i < 3; i++) {
        out.push({ mode: "alternating", sample: await call("b") });
        out.push({ mode: "alternating", sample: await call("a") });
      }
    }
    return out;
  } finally {
    await chat.stop().catch(() => {});
    await worker?.stop().catch(() => {});
  }
}

async function securityCost(ctx: ScenarioContext): Promise<SecuritySample[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bench-tenancy-"));
  const out: SecuritySample[] = [];
  try {
    const tls = await makeBrokerCertificates(dir);
    const kinds: Array<{ name: string; start: () => Promise<RunningBroker>; env: Record<string, string> }> = [
      { name: "PLAINTEXT, no ACLs", start: () => startBroker({ security: "none" }), env: {} },
      { name: "SASL/SCRAM, ACLs", start: () => startBroker(), env: {} },
      { name: "SASL/SCRAM over TLS, ACLs", start: () => startBroker({ tls }), env: { KAFKA_TLS: "true", KAFKA_TLS_CA_FILE: tls.ca } },
    ];
    // Two passes, the second in reverse order, so that whatever the machine does meanwhile
    // (and the first broker's warm-up) weighs on every kind alike.
    const samples = new Map<string, Array<Omit<SecuritySample, "name">>>();
    for (const pass of [kinds, [...kinds].reverse()]) {
      for (const kind of pass) {
        ctx.log(`Kafka ${kind.name}`);
        const broker = await kind.start();
        try {
          const spec = stackSpec(broker.brokers, "tenancy-security", CONCURRENT, { credentialsFile: broker.credentialsFile, env: kind.env });
          samples.set(kind.name, [...(samples.get(kind.name) ?? []), await turns(ctx, spec)]);
        } finally {
          await broker.stop();
        }
      }
    }
    for (const kind of kinds) {
      const list = samples.get(kind.name)!;
      out.push({
        name: kind.name,
        fixedCostMs: list.flatMap((s) => s.fixedCostMs),
        tokensPerS: list.reduce((sum, s) => sum + s.tokensPerS, 0) / list.length,
        tokensPerSPasses: list.map((s) => s.tokensPerS),
      });
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One worker on `spec`'s broker: fixed cost one turn at a time, then throughput at CONCURRENT. */
async function turns(ctx: ScenarioContext, spec: StackSpec): Promise<Omit<SecuritySample, "name">> {
  await createTopics(spec);
  const chat = new BenchChat(spec.brokers, spec.topics, spec);
  let worker: Service | null = null;
  try {
    worker = await startWorker(spec, ctx.model, `w-${spec.prefix}`, { WORKER_SLOTS: String(CONCURRENT), DELTA_FLUSH_MS: "10" });
    await chat.start();
    const keys = new KeyMaker("sec", CONCURRENT, BENCH_TENANT);
    const turn = async (lane: number, i: number) =>
      chat.finished(await chat.turn(keys.next(lane), PROMPTS[(lane + i) % PROMPTS.length]!, { params: { max_tokens: MAX_TOKENS, temperature: 0 } }));
    for (let lane = 0; lane < CONCURRENT; lane++) await turn(lane, 0);
    const fixedCostMs: number[] = [];
    for (let i = 0; i < (ctx.quick ? 10 : 40); i++) {
      const t = await turn(i % CONCURRENT, i);
      fixedCostMs.push(t.finalAt - t.sentAt - t.final.timings.generation_ms);
    }
    const perLane = ctx.quick ? 4 : 25;
    const started = performance.now();
    const tokens = await Promise.all(
      Array.from({ length: CONCURRENT }, async (_, lane) => {
        let sum = 0;
        for (let i = 0; i < perLane; i++) sum += (await turn(lane, i)).final.usage.completion_tokens;
        return sum;
      }),
    );
    const tokensPerS = (tokens.reduce((a, b) => a + b, 0) / (performance.now() - started)) * 1000;
    return { fixedCostMs, tokensPerS };
  } finally {
    await chat.stop().catch(() => {});
    await worker?.stop().catch(() => {});
  }
}
