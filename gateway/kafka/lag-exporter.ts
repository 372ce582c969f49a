/**
 * The scaling signal: how many requests wait for the worker group, per partition of
 * chat.requests and in total. Every LAG_REFRESH_MS the gateway asks Kafka for the topic's
 * end offsets and the group's committed offsets; lag = end - committed.
 *
 * It needs no member of the group, so it keeps working while the workers are scaled to
 * zero. A partition the group has never committed counts all its retained records
 * (end - low watermark), because workers start a new group from the oldest request.
 * When Kafka cannot be asked the last values stay (a scaler should not see a backlog
 * vanish because of a network blip) and the error counter moves.
 *
 * Every replica exports the same numbers: aggregate with max(), not sum().
 */
import { DEFAULT_POOL } from "../../contracts/pools.js";
import type { KafkaAdmin, PartitionOffsets } from "../../platform/kafka/admin.js";
import type { Logger } from "../../platform/logger.js";
import type { GatewayMetrics } from "../metrics.js";
import { groupPositions } from "./group-positions.js";

export interface PartitionLag {
  partition: number;
  lag: number;
}

/** Lag per partition from the partitions' offsets and the group's committed offsets (a partition absent: none committed). */
export function computeLag(ends: readonly PartitionOffsets[], committed: ReadonlyMap<number, number>): PartitionLag[] {
  return ends
    .map(({ partition, high, low }) => {
      const from = committed.get(partition) ?? low;
      return { partition, lag: Math.max(0, high - from) };
    })
    .sort((a, b) => a.partition - b.partition);
}

export class LagExporter {
  readonly #admin: KafkaAdmin;
  readonly #topic: string;
  readonly #groupId: string;
  readonly #pool: string;
  readonly #metrics: GatewayMetrics;
  readonly #refreshMs: number;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | null = null;
  #failing = false;

  constructor(options: { admin: KafkaAdmin; topic: string; groupId: string; pool?: string; metrics: GatewayMetrics; refreshMs: number; logger: Logger }) {
    this.#admin = options.admin;
    this.#pool = options.pool ?? DEFAULT_POOL;
    this.#topic = options.topic;
    this.#groupId = options.groupId;
    this.#metrics = options.metrics;
    this.#refreshMs = options.refreshMs;
    this.#logger = options.logger.child({ component: "lag-exporter" });
  }

  start(): void {
    const tick = async () => {
      await this.refresh();
      if (this.#timer !== null) this.#timer = setTimeout(tick, this.#refreshMs);
    };
    this.#timer = setTimeout(tick, 0);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** One refresh; never throws. */
  async refresh(): Promise<void> {
    try {
      const budget = Math.max(1000, this.#refreshMs);
      const { ends, committed } = await groupPositions(this.#admin, this.#topic, this.#groupId, budget);
      const lags = computeLag(ends, committed);
      let total = 0;
      for (const { partition, lag } of lags) {
        this.#metrics.consumerGroupLag.set({ topic: this.#topic, partition: String(partition), pool: this.#pool }, lag);
        total += lag;
      }
      this.#metrics.consumerGroupTotalLag.set({ pool: this.#pool }, total);
      this.#metrics.lagRefreshedAt.set(Date.now() / 1000);
      if (this.#failing) this.#logger.info({ total_lag: total }, "lag refresh works again");
      this.#failing = false;
    } catch (err) {
      this.#metrics.lagRefreshErrors.inc();
      if (!this.#failing) this.#logger.warn({ err }, "cannot refresh consumer group lag; keeping the last values");
      this.#failing = true;
    }
  }
}
