/**
 * The system under test, as real processes: one Kafka broker with a data dir of its own
 * (so it can be restarted on the same port with the same data), G gateway replicas, N
 * workers. Workers and gateways can be killed and replaced; the broker can be bounced.
 * The gateways read their keys from a keys file: the clients' tenant without limits, and a
 * flooding tenant held to its requests per minute.
 */
import { rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startBroker, type BrokerCredentials, type RunningBroker } from "../scripts/kafka-broker.js";
import { stackEnv, startGateway, startWorker } from "../testkit/stack.js";
import { uniquePrefix } from "../testkit/kafka.js";
import { freePort, type Service } from "../testkit/services.js";
import type { ChaosOptions } from "./options.js";

export const API_KEY = "chaos-key-0123456789";
export const TENANT = "chaos";
/** The flooding tenant's key: it sends as fast as its requests-per-minute quota lets it. */
export const FLOOD_API_KEY = "chaos-flood-key-0123456789";
export const FLOOD_TENANT = "flood";

export interface GatewaySlot {
  /** Stable slot name (g1, g2); each incarnation is named `<slot>.<n>`. */
  readonly slot: string;
  incarnation: number;
  /** Null while killed and its replacement starts. */
  service: Service | null;
  starting: Promise<void> | null;
  /** Where its clients find it: the last incarnation's URL (a killed one refuses connections). */
  baseUrl: string;
}

export interface WorkerSlot {
  /** Stable slot name (w1, w2, …); each incarnation gets WORKER_ID `<slot>.<n>`. */
  readonly slot: string;
  incarnation: number;
  service: Service | null;
  /** Set while a replacement is starting. */
  starting: Promise<void> | null;
  /** Scaled in: stopped for good, never restarted. */
  retired?: boolean;
}

export interface UnexpectedExit {
  /** The worker's WORKER_ID or the gateway's name (g1.2, …). */
  readonly worker: string;
  readonly at: number;
  readonly code: number | null;
  readonly signal: string | null;
}

/** Worker liveness seen by the harness; reported, not part of the pass/fail accounting. */
export interface WorkerHealth {
  /** Workers that exited without being killed (restarted by the harness). */
  readonly unexpectedExits: readonly UnexpectedExit[];
  /** Workers alive at the end whose /readyz said no: out of the group without exiting. */
  readonly notReadyAtEnd: readonly string[];
}

export class Cluster {
  readonly prefix = uniquePrefix("chaos");
  readonly workers: WorkerSlot[] = [];
  /** Workers and gateways that exited without being killed (each is restarted, as Kubernetes would). */
  readonly unexpectedExits: UnexpectedExit[] = [];
  /** Logs of every service incarnation, by WORKER_ID or gateway name (g1.1, …), kept for the result file. */
  readonly logs = new Map<string, string>();
  readonly gateways: GatewaySlot[] = [];
  #broker: RunningBroker | null = null;
  #dataDir = "";
  #port = 0;
  #controllerPort = 0;
  #common: Record<string, string> = {};
  #gatewayEnv: Record<string, string> = {};
  #keysDir = "";
  #stopped = false;

  constructor(
    private readonly options: ChaosOptions,
    private readonly log: (line: string) => void,
  ) {}

  get brokers(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** The broker's principals (the accounting reads the topics as the administrator). */
  get credentials(): BrokerCredentials | null {
    return this.#broker?.credentials ?? null;
  }

  /** Gateway slot i's URL now (its replacement's once restarted). */
  gatewayUrl(i: number): string {
    return this.gateways[i % this.gateways.length]!.baseUrl;
  }

  async start(): Promise<void> {
    this.#dataDir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-chaos-"));
    this.#port = await freePort();
    this.#controllerPort = await freePort();
    this.#broker = await this.#startBroker();
    // An interrupted run (process.exit from a signal) still removes the broker's data.
    const dataDir = this.#dataDir;
    process.once("exit", () => rmSync(dataDir, { recursive: true, force: true }));
    this.#common = stackEnv(this.#broker, this.prefix, this.options.partitions);
    this.#keysDir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-chaos-keys-"));
    const keysDir = this.#keysDir;
    process.once("exit", () => rmSync(keysDir, { recursive: true, force: true }));
    const keysFile = path.join(this.#keysDir, "keys.json");
    const flood = this.options.floodRequestsPerMinute;
    await writeFile(
      keysFile,
      JSON.stringify([
        { tenant: TENANT, key: API_KEY },
        ...(flood > 0 ? [{ tenant: FLOOD_TENANT, key: FLOOD_API_KEY, limits: { requests_per_minute: flood } }] : []),
      ]),
    );
    this.#gatewayEnv = {
      GATEWAY_API_KEYS_FILE: keysFile,
      // Each replica enforces its share of a tenant's limit.
      GATEWAY_REPLICAS: String(this.options.gateways),
      SSE_KEEPALIVE_MS: "5000",
      LAG_REFRESH_MS: "5000",
    };
    for (let i = 1; i <= this.options.gateways; i++) this.gateways.push({ slot: `g${i}`, incarnation: 0, service: null, starting: null, baseUrl: "" });
    await Promise.all(this.gateways.map((g) => this.#startGateway(g)));
    for (let i = 1; i <= this.options.workers; i++) this.workers.push({ slot: `w${i}`, incarnation: 0, service: null, starting: null });
    // One at a time: three model loads at once on two cores only slow each other down.
    for (const w of this.workers) await this.#startWorker(w);
  }

  /** Live workers (started and not killed). */
  live(): WorkerSlot[] {
    return this.workers.filter((w) => !w.retired && w.service !== null && w.service.proc.exitCode === null && w.service.proc.signalCode === null);
  }

  /** Gateway replicas running (started and not killed). */
  liveGateways(): GatewaySlot[] {
    return this.gateways.filter((g) => g.service !== null && g.service.proc.exitCode === null && g.service.proc.signalCode === null);
  }

  /** SIGKILLs the gateway (its streams drop mid-reply) and starts its replacement in the background. */
  async killGateway(g: GatewaySlot): Promise<string> {
    const service = g.service!;
    g.service = null;
    await service.stop("SIGKILL");
    this.logs.set(service.name, service.output());
    g.starting = this.#startGateway(g).finally(() => {
      g.starting = null;
    });
    return service.name;
  }

  /** A scale-out: one more worker joins the group. Resolves once it is ready. */
  async addWorker(): Promise<WorkerSlot> {
    const w: WorkerSlot = { slot: `w${this.workers.length + 1}`, incarnation: 0, service: null, starting: null };
    this.workers.push(w);
    w.starting = this.#startWorker(w).finally(() => {
      w.starting = null;
    });
    await w.starting;
    return w;
  }

  /** A scale-in: SIGTERM (the worker drains, hands over and leaves), never replaced. Resolves on its exit code. */
  async retire(w: WorkerSlot): Promise<number | null> {
    const service = w.service!;
    w.retired = true;
    w.service = null;
    const code = await service.stop("SIGTERM");
    this.logs.set(service.name, service.output());
    return code;
  }

  /** SIGKILLs the worker and starts its replacement in the background. */
  async kill(w: WorkerSlot): Promise<string> {
    const service = w.service!;
    w.service = null;
    await service.stop("SIGKILL");
    this.logs.set(service.name, service.output());
    w.starting = this.#startWorker(w).finally(() => {
      w.starting = null;
    });
    return service.name;
  }

  /** Stops the broker (SIGTERM: controlled shutdown, SIGKILL: crash), waits, starts it again. */
  async bounceBroker(downMs: number, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const broker = this.#broker!;
    this.#broker = null;
    if (signal === "SIGKILL") {
      try {
        process.kill(-broker.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await broker.stop();
    await new Promise((r) => setTimeout(r, downMs));
    // Every service reconnecting at once competes with the broker's start for two cores (a
    // gateway's librdkafka client was seen using most of one while the broker was away):
    // more time than a first start gets, so that a slow start is measured, not a failed run.
    this.#broker = await this.#startBroker(180_000);
  }

  /**
   * Live workers that say they are not ready (/readyz: model loaded and a member of the
   * group). After the run every worker should be back in the group; one that is not has
   * stopped consuming without exiting.
   */
  async notReady(): Promise<string[]> {
    const names: string[] = [];
    for (const w of this.live()) {
      const ok = await fetch(`${w.service!.baseUrl}/readyz`, { signal: AbortSignal.timeout(5000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (!ok) names.push(w.service!.name);
    }
    return names;
  }

  /** Every service's log so far: the stopped ones' last words and the running ones' output. */
  snapshotLogs(): Map<string, string> {
    const logs = new Map(this.logs);
    for (const g of this.gateways) if (g.service) logs.set(g.service.name, g.service.output());
    for (const w of this.workers) if (w.service) logs.set(w.service.name, w.service.output());
    return logs;
  }

  /** Waits for replacements still starting, so the run ends with every worker up. */
  async settle(): Promise<void> {
    await Promise.all([...this.workers, ...this.gateways].flatMap((w) => (w.starting ? [w.starting] : [])));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    // A replacement that fails to start is already logged by #startWorker.
    await Promise.all([...this.workers, ...this.gateways].flatMap((w) => (w.starting ? [w.starting.catch(() => {})] : [])));
    await Promise.all(
      this.workers.map(async (w) => {
        if (!w.service) return;
        await w.service.stop("SIGTERM");
        this.logs.set(w.service.name, w.service.output());
      }),
    );
    await Promise.all(
      this.gateways.map(async (g) => {
        if (!g.service) return;
        await g.service.stop("SIGTERM");
        this.logs.set(g.service.name, g.service.output());
      }),
    );
    await this.#broker?.stop();
    if (this.#dataDir) await rm(this.#dataDir, { recursive: true, force: true });
    if (this.#keysDir) await rm(this.#keysDir, { recursive: true, force: true });
  }

  #startBroker(startTimeoutMs?: number): Promise<RunningBroker> {
    return startBroker({
      ...(startTimeoutMs !== undefined && { startTimeoutMs }),
      port: this.#port,
      // The same controller port every time, so the restarted broker is the same cluster.
      controllerPort: this.#controllerPort,
      dataDir: this.#dataDir,
      serverProperties: {
        // The workers' group runs the consumer protocol (KIP-848), whose session is the broker's.
        "group.consumer.session.timeout.ms": String(this.options.sessionTimeoutMs),
        "group.consumer.min.session.timeout.ms": String(Math.min(this.options.sessionTimeoutMs, 1000)),
      },
    });
  }

  /** Starts the gateway slot's next incarnation; retries while the broker is away. */
  async #startGateway(g: GatewaySlot): Promise<void> {
    for (let tries = 1; !this.#stopped; tries++) {
      g.incarnation++;
      const name = `${g.slot}.${g.incarnation}`;
      try {
        const service = await startGateway(this.#common, this.#gatewayEnv, name);
        if (this.#stopped) {
          await service.stop("SIGTERM");
          return;
        }
        g.service = service;
        g.baseUrl = service.baseUrl;
        service.proc.once("exit", (code, signal) => {
          if (g.service !== service || this.#stopped) return; // killed or stopped by us
          // A replica that exits by itself is restarted, as Kubernetes would, and counted.
          this.unexpectedExits.push({ worker: name, at: Date.now(), code, signal });
          this.logs.set(name, service.output());
          this.log(`gateway ${name} exited by itself (code ${code}, signal ${signal}); restarting it`);
          g.service = null;
          g.starting = this.#startGateway(g).finally(() => {
            g.starting = null;
          });
        });
        return;
      } catch (err) {
        this.logs.set(name, (err as Error).message);
        this.log(`${name} did not start (try ${tries}): ${(err as Error).message.split("\n")[0]}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Starts the slot's next incarnation; retries while the broker is away (a worker cannot start without it). */
  async #startWorker(w: WorkerSlot): Promise<void> {
    for (let tries = 1; !this.#stopped; tries++) {
      w.incarnation++;
      const name = `${w.slot}.${w.incarnation}`;
      try {
        w.service = await startWorker(
          this.#common,
          {
            WORKER_SLOTS: String(this.options.slots),
            DEFAULT_MAX_TOKENS: String(this.options.maxTokens),
            // Nothing is trimmed: the memory check expects every turn.
            MEMORY_MAX_TOKENS: "100000",
            SYSTEM_PROMPT: "Be brief.",
            SESSION_TIMEOUT_MS: String(this.options.sessionTimeoutMs),
            HEARTBEAT_INTERVAL_MS: "1000",
            REBALANCE_TIMEOUT_MS: "20000",
            DRAIN_TIMEOUT_MS: "10000",
            DELTA_FLUSH_MS: "20",
            SHUTDOWN_GRACE_MS: "2000",
            WORKER_TRANSACTIONS: String(this.options.transactions),
          },
          name,
        );
        const service = w.service;
        if (this.#stopped) {
          await service.stop("SIGTERM");
          return;
        }
        service.proc.once("exit", (code, signal) => {
          if (w.service !== service || this.#stopped || w.retired) return; // killed or stopped by us
          this.unexpectedExits.push({ worker: name, at: Date.now(), code, signal });
          this.logs.set(name, service.output());
          this.log(`${name} exited by itself (code ${code}, signal ${signal}); restarting it`);
          w.service = null;
          w.starting = this.#startWorker(w).finally(() => {
            w.starting = null;
          });
        });
        return;
      } catch (err) {
        this.logs.set(name, (err as Error).message);
        this.log(`${name} did not start (try ${tries}): ${(err as Error).message.split("\n")[0]}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}
