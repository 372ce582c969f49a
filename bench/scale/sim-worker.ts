/**
 * A worker for the scale benchmark whose generation is simulated: each record of the
 * requests topic is "generated" in 50 ms ticks for a random time between 1/3 and 5/3 of
 * SIM_GEN_MS (turns of a GPU worker differ in length: e.g. 1-5 s = 100-500 tokens at 100
 * tokens/s; equal lengths would keep every partition's turns in step and hide any
 * barrier), then committed, through the consumer adapter in
 * kafka-clients.ts. Four real model workers would need four spinning llama.cpp threads on
 * a 2-core machine, which would measure CPU contention instead of the group protocol; what
 * a scale event does to in-flight turns and to partitions is the group protocol's doing.
 *
 * Prints one JSON line per fact on stdout, times in ms since the epoch with sub-ms
 * resolution (performance.timeOrigin + performance.now(), comparable across processes):
 *   {ev:"joining"} {ev:"assigned"|"revoked", partitions} {ev:"start", p, offset}
 *   {ev:"end", p, offset, outcome:"done"|"aborted", maxTickGapMs} {ev:"stopping"} {ev:"stopped"}
 *
 * Env: SIM_CLIENT (a ClientKind of kafka-clients.ts),
 * SIM_BROKERS, SIM_GROUP, SIM_TOPIC, SIM_NAME, SIM_GEN_MS, SIM_SLOTS, SESSION_TIMEOUT_MS,
 * HEARTBEAT_INTERVAL_MS, REBALANCE_TIMEOUT_MS.
 */
import { createSimConsumer, type ClientKind } from "./kafka-clients.js";

const now = () => performance.timeOrigin + performance.now();
const emit = (fact: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ t: now(), ...fact })}\n`);
const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const genMs = Number(env("SIM_GEN_MS"));
const consumer = await createSimConsumer(env("SIM_CLIENT") as ClientKind, {
  brokers: env("SIM_BROKERS"),
  groupId: env("SIM_GROUP"),
  topic: env("SIM_TOPIC"),
  memberName: env("SIM_NAME"),
  sessionTimeoutMs: Number(env("SESSION_TIMEOUT_MS")),
  heartbeatIntervalMs: Number(env("HEARTBEAT_INTERVAL_MS")),
  rebalanceTimeoutMs: Number(env("REBALANCE_TIMEOUT_MS")),
  concurrency: Number(env("SIM_SLOTS")),
});

emit({ ev: "joining" });
await consumer.start(
  async ({ partition, offset, lost }) => {
    const turnMs = genMs * (1 / 3 + (4 / 3) * Math.random());
    emit({ ev: "start", p: partition, offset, turnMs: Math.round(turnMs) });
    const started = now();
    let last = started;
    let maxTickGapMs = 0;
    let outcome = "done";
    while (now() - started < turnMs) {
      if (lost.aborted) {
        // handover: stopped at the drain bound, its reply left for the next owner to continue.
        outcome = (lost.reason as { kind?: string } | undefined)?.kind === "handover" ? "handed_over" : "aborted";
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
      const t = now();
      maxTickGapMs = Math.max(maxTickGapMs, t - last);
      last = t;
    }
    emit({ ev: "end", p: partition, offset, outcome, maxTickGapMs: Math.round(maxTickGapMs) });
  },
  (event, partitions) => emit({ ev: event, partitions }),
);

let stopping = false;
process.on("SIGTERM", () => {
  if (stopping) return;
  stopping = true;
  emit({ ev: "stopping" });
  consumer.stop().then(
    () => {
      emit({ ev: "stopped" });
      process.exit(0);
    },
    (err: Error) => {
      emit({ ev: "stop_failed", error: err.message });
      process.exit(1);
    },
  );
});
