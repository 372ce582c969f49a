/**
 * The chaos run: a real broker, gateway replicas and N workers as processes; concurrent
 * clients each holding a conversation through the gateways' HTTP API; workers SIGKILLed and
 * restarted every few seconds, gateways SIGKILLed mid-stream (their clients resume at
 * another replica with Last-Event-ID); one broker restart mid-run; a second tenant flooding
 * at its quota; poison records on chat.requests. At the end, an accounting against what is
 * on the topics, a table, and a JSON result in chaos/results/.
 *
 *   npm run chaos                                   # the full form: 100 x 5 turns, 3 workers
 *   npm run chaos -- --conversations 20 --turns 3   # flags (or CHAOS_* env) change it
 *
 * Exits 1 when any turn was lost, answered twice, reordered, undelivered or misremembered,
 * a poison request did not end with an error event, or a flood refusal had no Retry-After.
 */
import { setMaxListeners } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { landedAsExpected } from "../contracts/records/memory.js";
import { topicNames } from "../contracts/topics.js";
import { account, type Accounting } from "./accounting.js";
import { runConversation, StreamBoard, type ClientConversation } from "./client.js";
import { API_KEY, Cluster, type WorkerHealth } from "./cluster.js";
import { flood, type FloodTally } from "./flood.js";
import { injectPoison, poisonPositions, tallyPoison, type PoisonRecord, type PoisonTally } from "./poison.js";
import { injectFaults, type FaultRecord } from "./faults.js";
import { KafkaAdmin } from "../platform/kafka/admin.js";
import { readTopic, readerConfig } from "./kafka-log.js";
import { ChaosOptionsError, parseChaosOptions, seededRandom, type ChaosOptions } from "./options.js";
import { formatReport } from "./report.js";

/** What the clients saw of the gateway kills. */
export interface GatewayTally {
  readonly kills: number;
  /** Kills with clients in the middle of a reply from that replica, and those clients. */
  readonly killsMidReply: number;
  readonly repliesCut: number;
  /** Streams cut off or refused under a client, and `reconnect` messages. */
  readonly lostStreams: number;
  readonly reconnectMessages: number;
  /** Times a client moved to another replica (a POST or a stream). */
  readonly moves: number;
  /** Longest time from a stream lost at a replica to one open at another, ms. */
  readonly longestResumeMs: number;
}

export interface ChaosResult {
  readonly options: ChaosOptions;
  readonly accounting: Accounting;
  readonly gateways: GatewayTally;
  readonly flood: FloodTally;
  readonly poison: PoisonTally;
  /** The accounting's verdict, every poison request ended and every flood refusal with Retry-After. */
  readonly ok: boolean;
  readonly faults: readonly FaultRecord[];
  readonly health: WorkerHealth;
  readonly report: string;
  /** The JSON result's path. */
  readonly file: string;
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function runChaos(options: ChaosOptions, log: (line: string) => void = () => {}): Promise<ChaosResult> {
  const began = Date.now();
  const cluster = new Cluster(options, log);
  let conversations: ClientConversation[];
  let faults: FaultRecord[];
  let floodTally: FloodTally;
  let poison: PoisonRecord[];
  try {
    log(`starting a broker, ${options.gateways} gateway(s) and ${options.workers} workers`);
    await cluster.start();
    log(`started in ${((Date.now() - began) / 1000).toFixed(0)} s; ${options.conversations} clients for ${options.durationMs / 1000} s`);

    const startedAt = Date.now();
    const deadline = new AbortController();
    // Every client's requests listen on it: far more than the default 10 listeners.
    setMaxListeners(0, deadline.signal);
    const deadlineTimer = setTimeout(() => deadline.abort(new Error("deadline")), options.durationMs + options.drainMs);
    const clientsDone = new AbortController();
    // Each client spreads its turns over ~80% of the window; starts are staggered over the first 20%.
    const spacing = (0.8 * options.durationMs) / options.turns;
    const board = new StreamBoard();
    const clients = Array.from({ length: options.conversations }, (_, i) => {
      const random = seededRandom(options.seed + 1 + i);
      return runConversation({
        gatewayUrl: (g) => cluster.gatewayUrl(g),
        gateways: options.gateways,
        home: i % options.gateways,
        board,
        apiKey: API_KEY,
        conversationId: `c${String(i).padStart(3, "0")}`,
        turns: options.turns,
        useIdempotencyKeys: options.idempotencyKeys,
        startDelayMs: random() * 0.2 * options.durationMs,
        thinkMs: () => spacing * (0.5 + random()),
        dropRate: options.sseDropRate,
        random,
        stop: deadline.signal,
      });
    });
    const progress = setInterval(() => {
      log(
        `+${((Date.now() - startedAt) / 1000).toFixed(0)} s: ${cluster.live().length}/${options.workers} workers, ${cluster.liveGateways().length}/${options.gateways} gateways up`,
      );
    }, 15_000);
    const faulting = injectFaults({ cluster, chaos: options, random: seededRandom(options.seed), startedAt, stop: clientsDone.signal, log, board });
    // The flood runs through the window; the poison is spread over it.
    const windowOver = AbortSignal.any([clientsDone.signal, AbortSignal.timeout(options.durationMs)]);
    const flooding = flood({ cluster, requestsPerMinute: options.floodRequestsPerMinute, stop: windowOver });
    const poisoning = injectPoison({ cluster, chaos: options, startedAt, stop: clientsDone.signal, log });
    // Awaited below, once the clients are done: a failure meanwhile is not an unhandled rejection.
    for (const work of [faulting, flooding, poisoning]) work.catch(() => {});
    try {
      conversations = await Promise.all(clients);
    } finally {
      clientsDone.abort();
      clearTimeout(deadlineTimer);
      clearInterval(progress);
      faults = await faulting;
      floodTally = await flooding;
      poison = await poisoning;
    }
    log(`clients done after ${((Date.now() - startedAt) / 1000).toFixed(0)} s; waiting for the workers to commit everything`);
    await cluster.settle();
    await waitForCommits(cluster, 60_000, log);
    const health: WorkerHealth = { unexpectedExits: [...cluster.unexpectedExits], notReadyAtEnd: await cluster.notReady() };

    const kafka = readerConfig(cluster.brokers, cluster.credentials);
    const topics = topicNames(cluster.prefix);
    // The poison is not the clients' turns: its own tally finds it.
    const poisoned = poisonPositions(poison);
    const [requests, events, memory, history, deadLetters] = [
      (await readTopic(kafka, topics.requests)).filter((r) => !poisoned.has(`${r.partition}@${r.offset}`)),
      await readTopic(kafka, topics.events),
      // What every reader takes: a replaced worker's records, which landed where they did not expect, are skipped.
      (await readTopic(kafka, topics.memory)).filter((r) => landedAsExpected({ offset: Number(r.offset), headers: r.headers })),
      await readTopic(kafka, topics.history),
      await readTopic(kafka, topics.deadLetter),
    ];
    const accounting = account({
      conversations,
      turnsPerConversation: options.turns,
      idempotencyKeys: options.idempotencyKeys,
      faults,
      requests,
      events,
      memory,
      history,
    });
    const poisonTally = tallyPoison(poison, events, deadLetters);
    const gateways = tallyGateways(faults, conversations);
    const ok = accounting.ok && poisonTally.ok && floodTally.refused === floodTally.refusedWithRetryAfter;
    const report = formatReport(options, accounting, faults, health, Date.now() - began, { gateways, flood: floodTally, poison: poisonTally, ok });
    const file = await writeResult(options, {
      accounting,
      faults,
      health,
      conversations,
      cluster,
      report,
      extra: { gateways, flood: floodTally, poison, poisonTally },
    });
    return { options, accounting, gateways, flood: floodTally, poison: poisonTally, ok, faults, health, report, file };
  } finally {
    await cluster.stop();
  }
}

function tallyGateways(faults: readonly FaultRecord[], conversations: readonly ClientConversation[]): GatewayTally {
  const turns = conversations.flatMap((c) => c.turns);
  return {
    kills: faults.filter((f) => f.kind === "gateway_kill").length,
    killsMidReply: faults.filter((f) => f.kind === "gateway_kill" && (f.midReply ?? 0) > 0).length,
    repliesCut: faults.reduce((n, f) => n + (f.kind === "gateway_kill" ? (f.midReply ?? 0) : 0), 0),
    lostStreams: turns.reduce((n, t) => n + t.lostStreams, 0),
    reconnectMessages: turns.reduce((n, t) => n + t.reconnectMessages, 0),
    moves: turns.reduce((n, t) => n + t.gatewayMoves, 0),
    longestResumeMs: turns.reduce((n, t) => Math.max(n, t.longestResumeMs), 0),
  };
}

/** Waits until the worker group has committed every request: nothing can be run again after that. */
async function waitForCommits(cluster: Cluster, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const admin = new KafkaAdmin(readerConfig(cluster.brokers, cluster.credentials), { timeoutMs: 10_000 });
  const topic = topicNames(cluster.prefix).requests;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const ends = await admin.offsets(topic);
      const committed = await admin.committed(
        `${cluster.prefix}workers`,
        topic,
        ends.map((e) => e.partition),
      );
      const behind = ends.filter((e) => e.high > 0 && (committed.get(e.partition) ?? -1) < e.high);
      if (behind.length === 0) return;
      if (Date.now() > deadline) {
        log(`the workers still had uncommitted requests on partitions ${behind.map((b) => b.partition).join(",")}; accounting anyway`);
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    admin.close();
  }
}

async function writeResult(
  options: ChaosOptions,
  r: {
    accounting: Accounting;
    faults: readonly FaultRecord[];
    health: WorkerHealth;
    conversations: ClientConversation[];
    cluster: Cluster;
    report: string;
    extra: Record<string, unknown>;
  },
): Promise<string> {
  const dir = path.resolve(REPO_ROOT, options.resultsDir);
  await mkdir(dir, { recursive: true });
  const stem = `${options.name}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  const file = path.join(dir, `${stem}.json`);
  // Turns worth a look: anything retried, resumed, re-run or wrong. The rest are counted only.
  const notable = r.conversations
    .map((c) => ({
      ...c,
      turns: c.turns.filter(
        (t) =>
          t.tries.length > 1 ||
          t.connects > 1 ||
          t.gatewayMoves > 0 ||
          t.discardedAttempts > 0 ||
          t.problems.length > 0 ||
          t.terminal?.type !== "final" ||
          t.streamedText !== t.terminal.reply,
      ),
    }))
    .filter((c) => c.turns.length > 0 || c.gaveUp);
  const { anomalies, ...summary } = r.accounting;
  await writeFile(
    file,
    JSON.stringify(
      { options, summary, anomalies, ...r.extra, faults: r.faults, health: r.health, notableTurns: notable, report: r.report.split("\n") },
      (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v),
      2,
    ),
  );
  // The services' own logs (the last 200 kB of each), for finding out what happened.
  const logs = [...r.cluster.snapshotLogs()].map(([name, text]) => `===== ${name}\n${text}`).join("\n");
  await writeFile(path.join(dir, `${stem}.logs.txt`), logs);
  return file;
}

async function main(): Promise<void> {
  const options = parseChaosOptions(process.argv.slice(2), process.env);
  // Ctrl-C or a kill: exit through process.exit, whose hooks stop the broker and every service.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`[chaos] ${signal}: stopping everything\n`);
      process.exit(130);
    });
  }
  const log = (line: string) => {
    if (options.verbose) process.stderr.write(`[chaos] ${line}\n`);
  };
  const result = await runChaos(options, log);
  process.stdout.write(`${result.report}\n\nresult: ${path.relative(process.cwd(), result.file)}\n`);
  process.exit(result.ok ? 0 : 1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof ChaosOptionsError ? err.message : ((err as Error).stack ?? String(err))}\n`);
    process.exit(2);
  });
}
