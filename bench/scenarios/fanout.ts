/**
 * 6. Gateway fan-out: 1,000 concurrent SSE streams through one gateway: its memory and
 * its CPU time per delivered token.
 *
 * 1,000 turns are accepted while no worker runs (they queue in chat.requests); a client
 * opens all 1,000 event streams and waits until every one is open; then a worker starts
 * and works the backlog off, so all 1,000 streams are open together when the tokens start
 * to flow, and each closes at its final event. The gateway's RSS is sampled every 100 ms
 * (and its VmHWM read at the end); its user+system CPU time is read from /proc before the
 * streams open and after the last closes.
 */
import { gatewayEvents, gatewayPost, keepAliveAgent, type HttpTimeline } from "../lib/http-clients.js";
import { KeyMaker } from "../lib/partitions.js";
import { LOCAL_TENANT } from "../../gateway/auth.js";
import type { Service } from "../../testkit/services.js";
import { type Row, type Scenario, type ScenarioContext, type ScenarioOutput, type TargetCheck, fmt, sleep } from "../lib/scenario.js";
import { createTopics, stackSpec, startGateway, startWorker } from "../lib/stack.js";
import { PROMPTS } from "./route.js";

const PARTITIONS = 8;
const SLOTS = 8;
const MAX_TOKENS = 32;
const MB = 1024 * 1024;

async function inBatches<T>(n: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

export const fanoutScenario: Scenario = {
  id: "fanout",
  title: "6. Gateway fan-out: 1,000 concurrent SSE streams",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const streams = ctx.quick ? 200 : 1000;
    const spec = stackSpec(ctx.brokers, "fanout", PARTITIONS);
    await createTopics(spec);
    const agent = keepAliveAgent(50);
    const workerEnv = { WORKER_SLOTS: String(SLOTS), LOG_LEVEL: "warn" };
    let gateway: Service | null = null;
    let worker: Service | null = null;
    try {
      gateway = await startGateway(spec);
      const gw = gateway;
      const keys = new KeyMaker("fan", PARTITIONS, LOCAL_TENANT);
      // Warm-up: the gateway's code paths, with a worker, then the worker goes away.
      worker = await startWorker(spec, ctx.model, "w-fanout", workerEnv);
      await inBatches(40, 8, async (i) => {
        const t: HttpTimeline = { sentAt: performance.now(), completionTokens: 0, events: 0 };
        return gatewayEvents(gw.baseUrl, await gatewayPost(gw.baseUrl, keys.next(i), PROMPTS[i % PROMPTS.length]!, MAX_TOKENS, agent), agent, t);
      });
      await worker.stop();
      worker = null;
      await sleep(1000);
      const idle = gw.memory();

      ctx.log(`accepting ${streams} turns with no worker running`);
      const requestIds = await inBatches(streams, 50, (i) => gatewayPost(gw.baseUrl, keys.next(i), PROMPTS[i % PROMPTS.length]!, MAX_TOKENS, agent));
      await sleep(500);
      const accepted = gw.memory();

      let peakRss = accepted.rss;
      const sampler = setInterval(() => {
        try {
          peakRss = Math.max(peakRss, gw.memory().rss);
        } catch {
          // gone
        }
      }, 100);
      const cpuBefore = gw.cpuSeconds();
      const wallBefore = performance.now();
      ctx.log(`opening ${streams} SSE streams`);
      let open = 0;
      let allOpen!: () => void;
      const opened = new Promise<void>((resolve) => (allOpen = resolve));
      const timelines = requestIds.map(() => ({ sentAt: performance.now(), completionTokens: 0, events: 0 }) as HttpTimeline);
      // One connection per stream, as 1,000 browsers would have.
      const done = Promise.all(
        requestIds.map((id, i) =>
          gatewayEvents(gw.baseUrl, id, false, timelines[i]!, {
            timeoutMs: 600_000,
            onOpen: () => {
              if (++open === streams) allOpen();
            },
          }),
        ),
      );
      await Promise.race([opened, sleep(120_000).then(() => Promise.reject(new Error(`only ${open} of ${streams} streams opened`)))]);
      const cpuOpen = gw.cpuSeconds();
      const openRss = gw.memory().rss;
      ctx.log(`all ${streams} streams open; starting the worker`);
      const deliveryStart = performance.now();
      worker = await startWorker(spec, ctx.model, "w-fanout", workerEnv);
      await done;
      const deliveryS = (performance.now() - deliveryStart) / 1000;
      clearInterval(sampler);
      const cpuAfter = gw.cpuSeconds();
      const end = gw.memory();
      peakRss = Math.max(peakRss, end.rss);
      const tokens = timelines.reduce((a, t) => a + t.completionTokens, 0);
      const events = timelines.reduce((a, t) => a + t.events, 0);
      const cpuDelivery = cpuAfter - cpuOpen;
      const cpuAll = cpuAfter - cpuBefore;
      const figures = {
        streams,
        tokens,
        events,
        rssIdleMB: idle.rss / MB,
        rssAcceptedMB: accepted.rss / MB,
        rssAllOpenMB: openRss / MB,
        rssPeakMB: peakRss / MB,
        vmHwmMB: end.peak / MB,
        cpuOpenS: cpuOpen - cpuBefore,
        cpuDeliveryS: cpuDelivery,
        cpuPerTokenUs: (cpuAll / tokens) * 1e6,
        cpuPerDeliveredTokenUs: (cpuDelivery / tokens) * 1e6,
        cpuPerEventUs: (cpuDelivery / events) * 1e6,
        deliveryS,
        wallS: (performance.now() - wallBefore) / 1000,
      };
      const rows: Row[] = [
        {
          figure: `${streams} concurrent SSE streams: gateway peak RSS`,
          measured: `${fmt(figures.rssPeakMB, 0)} MB`,
          compared: `idle ${fmt(figures.rssIdleMB, 0)} MB, all streams open ${fmt(figures.rssAllOpenMB, 0)} MB (+${fmt((openRss - accepted.rss) / streams / 1024, 1)} KB per open stream); VmHWM ${fmt(figures.vmHwmMB, 0)} MB`,
        },
        {
          figure: "gateway CPU per delivered token (streams open → all closed)",
          measured: `${fmt(figures.cpuPerTokenUs, 1)} µs/token`,
          compared: `${fmt(cpuAll, 2)} s CPU for ${tokens} tokens in ${events} SSE events (${fmt(figures.cpuPerEventUs, 0)} µs per event after the streams were open; opening ${streams} streams took ${fmt(figures.cpuOpenS, 2)} s CPU)`,
        },
      ];
      const targets: TargetCheck[] = [
        {
          target: `gateway memory under 300 MB with ${streams} concurrent streams`,
          measured: `peak RSS ${fmt(figures.rssPeakMB, 0)} MB`,
          met: figures.rssPeakMB < 300 && figures.vmHwmMB < 300,
          ...(figures.rssPeakMB < 300 && figures.vmHwmMB < 300 ? {} : { why: "see rows: idle vs open vs peak" }),
        },
      ];
      return {
        rows,
        targets,
        notes: [
          `${streams} turns (max_tokens ${MAX_TOKENS}) over ${PARTITIONS} partitions, one worker with WORKER_SLOTS=${SLOTS}; every stream on its own TCP connection; gateway at LOG_LEVEL=info (it logs every accepted request and HTTP call, as in production).`,
          `The backlog took ${fmt(deliveryS, 1)} s to deliver (worker start included); tokens delivered = completion tokens of the final events received on the streams.`,
        ],
        raw: figures,
      };
    } finally {
      await worker?.stop().catch(() => {});
      await gateway?.stop().catch(() => {});
      agent.destroy();
    }
  },
};
