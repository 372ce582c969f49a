/**
 * The faults of a chaos run, injected one at a time on a schedule: a random live worker
 * SIGKILLed every killMinMs..killMaxMs (and replaced at once), a random gateway replica
 * SIGKILLed mid-stream every gatewayKillMinMs..gatewayKillMaxMs (and restarted; one is
 * always left running, where its clients resume), one broker restart, and the
 * scale events an autoscaler makes (a worker added; a worker sent SIGTERM and not
 * replaced) at set points of the window. Each fault is recorded with when it happened and
 * when the system had its part back (the replacement or new worker ready, the broker
 * answering, the SIGTERMed worker gone).
 */
import type { StreamBoard } from "./client.js";
import type { Cluster, GatewaySlot } from "./cluster.js";
import type { ChaosOptions } from "./options.js";

export interface FaultRecord {
  readonly kind: "worker_kill" | "gateway_kill" | "broker_restart" | "scale_out" | "scale_in";
  /** The killed worker's WORKER_ID or gateway's name, or "broker". */
  readonly target: string;
  /** When the fault was injected (ms since the epoch). */
  readonly at: number;
  /** When the killed worker's or gateway's replacement was ready, or the broker answered again. */
  restoredAt: number | null;
  /** The replacement's WORKER_ID (worker kills) or gateway name. */
  replacement?: string;
  /** Gateway kills: the clients that were in the middle of a reply from it. */
  midReply?: number;
}

export async function injectFaults(options: {
  cluster: Cluster;
  chaos: ChaosOptions;
  random: () => number;
  startedAt: number;
  /** Which gateways have clients mid-reply (gateway kills wait a little for one that has). */
  board?: StreamBoard;
  /** Faults stop at the end of the window or when this aborts (every client is done). */
  stop: AbortSignal;
  log: (line: string) => void;
}): Promise<FaultRecord[]> {
  const { cluster, chaos, random, startedAt, stop, log, board } = options;
  const faults: FaultRecord[] = [];
  const windowEnd = startedAt + chaos.durationMs;
  const between = () => chaos.killMinMs + random() * (chaos.killMaxMs - chaos.killMinMs);
  const at = (fraction: number) => (fraction > 0 ? startedAt + chaos.durationMs * fraction : Number.POSITIVE_INFINITY);
  let brokerAt = at(chaos.brokerRestartAt);
  let scaleOutAt = at(chaos.scaleOutAt);
  let scaleInAt = at(chaos.scaleInAt);
  let nextKill = chaos.maxKills > 0 ? startedAt + between() : Number.POSITIVE_INFINITY;
  let kills = 0;
  const betweenGatewayKills = () => chaos.gatewayKillMinMs + random() * (chaos.gatewayKillMaxMs - chaos.gatewayKillMinMs);
  let nextGatewayKill = chaos.maxGatewayKills > 0 && chaos.gateways > 1 ? startedAt + betweenGatewayKills() : Number.POSITIVE_INFINITY;
  let gatewayKills = 0;
  const since = (t: number) => `+${((t - startedAt) / 1000).toFixed(1)} s`;

  for (;;) {
    const due = Math.min(brokerAt, nextKill, nextGatewayKill, scaleOutAt, scaleInAt);
    if (due >= windowEnd || stop.aborted) break;
    if (!(await waitUntil(due, stop))) break;

    if (scaleOutAt <= due) {
      scaleOutAt = Number.POSITIVE_INFINITY;
      const fault: FaultRecord = { kind: "scale_out", target: "new worker", at: Date.now(), restoredAt: null };
      faults.push(fault);
      log(`${since(fault.at)} scale-out: a worker joins`);
      const w = await cluster.addWorker();
      fault.restoredAt = Date.now();
      fault.replacement = w.service?.name;
      log(`${since(fault.restoredAt)} ${fault.replacement} ready`);
      continue;
    }
    if (scaleInAt <= due) {
      scaleInAt = Number.POSITIVE_INFINITY;
      const live = cluster.live();
      if (live.length < 2) continue; // never the last one
      const victim = live[Math.floor(random() * live.length)]!;
      const fault: FaultRecord = { kind: "scale_in", target: victim.service!.name, at: Date.now(), restoredAt: null };
      faults.push(fault);
      log(`${since(fault.at)} scale-in: SIGTERM ${fault.target}`);
      const code = await cluster.retire(victim);
      fault.restoredAt = Date.now();
      log(`${since(fault.restoredAt)} ${fault.target} left (exit ${code})`);
      continue;
    }

    if (nextGatewayKill <= due) {
      // One replica always stays, where the killed one's clients resume.
      const live = cluster.liveGateways();
      if (live.length < 2) {
        nextGatewayKill = Date.now() + 1000;
        continue;
      }
      const victim = await midReplyVictim(cluster, live, board, random, stop);
      if (!victim?.service) continue;
      const midReply = board?.midReply(cluster.gateways.indexOf(victim)) ?? 0;
      const fault: FaultRecord = { kind: "gateway_kill", target: victim.service.name, at: Date.now(), restoredAt: null, midReply };
      faults.push(fault);
      await cluster.killGateway(victim);
      gatewayKills++;
      log(`${since(fault.at)} SIGKILL gateway ${fault.target} (kill ${gatewayKills}, ${midReply} clients mid-reply)`);
      void victim.starting?.then(() => {
        fault.restoredAt = Date.now();
        fault.replacement = victim.service?.name;
      });
      nextGatewayKill = gatewayKills >= chaos.maxGatewayKills ? Number.POSITIVE_INFINITY : Date.now() + betweenGatewayKills();
      continue;
    }

    if (brokerAt <= nextKill) {
      brokerAt = Number.POSITIVE_INFINITY;
      const fault: FaultRecord = { kind: "broker_restart", target: "broker", at: Date.now(), restoredAt: null };
      faults.push(fault);
      log(`${since(fault.at)} broker restart (${chaos.brokerSignal}, down ${chaos.brokerDownMs} ms)`);
      await cluster.bounceBroker(chaos.brokerDownMs, chaos.brokerSignal);
      fault.restoredAt = Date.now();
      log(`${since(fault.restoredAt)} broker back`);
      // The next kill no earlier than one interval after the broker is back.
      nextKill = Math.max(nextKill, Date.now() + between());
      continue;
    }

    // Keep one worker running: a kill takes a worker away, not the whole service (a run
    // where every worker is down at once measures restart time, not failover).
    const live = cluster.live();
    if (live.length < 2) {
      nextKill = Date.now() + 1000;
      continue;
    }
    const victim = live[Math.floor(random() * live.length)]!;
    const fault: FaultRecord = { kind: "worker_kill", target: victim.service!.name, at: Date.now(), restoredAt: null };
    faults.push(fault);
    await cluster.kill(victim);
    kills++;
    log(`${since(fault.at)} SIGKILL ${fault.target} (kill ${kills})`);
    void victim.starting?.then(() => {
      fault.restoredAt = Date.now();
      fault.replacement = victim.service?.name;
    });
    nextKill = kills >= chaos.maxKills ? Number.POSITIVE_INFINITY : Date.now() + between();
  }
  return faults;
}

/**
 * The live gateway with the most clients in the middle of a reply, waiting up to 10 s for
 * one to have any (a kill between replies cuts nothing); a random one after that.
 */
async function midReplyVictim(
  cluster: Cluster,
  live: readonly GatewaySlot[],
  board: StreamBoard | undefined,
  random: () => number,
  stop: AbortSignal,
): Promise<GatewaySlot | undefined> {
  const busiest = () => {
    const counts = live.filter((g) => g.service !== null).map((g) => ({ g, n: board?.midReply(cluster.gateways.indexOf(g)) ?? 0 }));
    const top = counts.reduce<(typeof counts)[number] | null>((best, c) => (c.n > (best?.n ?? 0) ? c : best), null);
    return top?.g;
  };
  for (const until = Date.now() + 10_000; board && Date.now() < until && !stop.aborted;) {
    const g = busiest();
    if (g) return g;
    await waitUntil(Date.now() + 100, stop);
  }
  return live[Math.floor(random() * live.length)];
}

/** Resolves true at `t`, false if `stop` aborts first. */
function waitUntil(t: number, stop: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (stop.aborted) return resolve(false);
    const timer = setTimeout(
      () => {
        stop.removeEventListener("abort", onAbort);
        resolve(true);
      },
      Math.max(0, t - Date.now()),
    );
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    stop.addEventListener("abort", onAbort, { once: true });
  });
}
