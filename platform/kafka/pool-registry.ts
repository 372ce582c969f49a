/**
 * chat.models (contracts/records/models.ts): declaring a pool, and following every pool's
 * declaration. Workers declare their own pool when they start; the chart's topics Job
 * declares the release's pools and removes those it no longer has; the gateways read the
 * topic whole and follow it (a compacted topic of one record per pool: a few KiB).
 */
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { decodeRecord, encodeRecord } from "../../contracts/records/codec.js";
import { poolRecordSchema, type PoolRecord } from "../../contracts/records/models.js";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import type { KafkaAdmin } from "./admin.js";
import { AssignedReader } from "./assigned-reader.js";
import type { OutgoingRecord } from "./producer.js";
import type { Logger } from "../logger.js";

/** What declaring needs of a producer. */
export interface RecordSender {
  send(batch: { topic: string; messages: readonly OutgoingRecord[] }): Promise<unknown>;
}

/** Writes a pool's declaration (its latest record is what the gateways know of it). */
export async function declarePool(
  sender: RecordSender,
  topic: string,
  declaration: { pool: string; models: readonly string[]; adapters?: Readonly<Record<string, string>>; by: string },
): Promise<PoolRecord> {
  const record = poolRecordSchema.parse({
    v: SCHEMA_VERSION,
    pool: declaration.pool,
    models: [...declaration.models],
    ...(declaration.adapters && Object.keys(declaration.adapters).length > 0 && { adapters: { ...declaration.adapters } }),
    at: Date.now(),
    by: declaration.by,
  });
  await sender.send({ topic, messages: [{ key: record.pool, value: encodeRecord(record) }] });
  return record;
}

/** Removes a pool's declaration (a tombstone: compaction then forgets the pool). */
export async function withdrawPool(sender: RecordSender, topic: string, pool: string): Promise<void> {
  await sender.send({ topic, messages: [{ key: pool, value: null }] });
}

/** The pools as chat.models declares them now, by pool name. */
export type PoolDeclarations = ReadonlyMap<string, PoolRecord>;

/**
 * Applies one chat.models record to the declarations: a valid record replaces its pool's, a
 * tombstone removes it; a record that is neither (not JSON, not the schema, a key that is not
 * its pool) changes nothing and is returned as the reason.
 */
export function applyPoolRecord(pools: Map<string, PoolRecord>, key: string | null, value: Buffer | null): string | null {
  if (key === null) return "a record without a key";
  if (value === null) {
    pools.delete(key);
    return null;
  }
  const decoded = decodeRecord(poolRecordSchema, value);
  if (!decoded.ok) return decoded.reason;
  if (decoded.value.pool !== key) return `the record of pool ${decoded.value.pool} is keyed ${key}`;
  pools.set(key, decoded.value);
  return null;
}

export interface PoolRegistry {
  /** The declarations read so far. */
  pools(): PoolDeclarations;
  /** True once the topic was read up to its end as it was at start (or that timed out). */
  caughtUp(): boolean;
  stop(): Promise<void>;
}

/** How long the first read of chat.models may take before the gateway serves with what it has. */
const CATCH_UP_TIMEOUT_MS = 30_000;

/** Reads chat.models from its start and follows it; `onChange` after each batch that changed something. */
export async function startPoolRegistry(options: {
  kafka: KafkaConfig;
  admin: KafkaAdmin;
  topic: string;
  groupId: string;
  logger: Logger;
  onChange?(pools: PoolDeclarations): void;
}): Promise<PoolRegistry> {
  const log = options.logger.child({ component: "pool-registry" });
  const pools = new Map<string, PoolRecord>();
  const reader = new AssignedReader({
    kafka: options.kafka,
    topic: options.topic,
    name: "pool-registry",
    groupId: options.groupId,
    logger: options.logger,
    ends: async () => new Map((await options.admin.offsets(options.topic, 3000)).map((o) => [o.partition, o.high])),
    onRecords(records) {
      let changed = false;
      for (const record of records) {
        const key = record.key === null ? null : record.key.toString("utf8");
        const problem = applyPoolRecord(pools, key, record.value);
        if (problem !== null) log.warn({ offset: record.offset, reason: problem }, "skipped a chat.models record");
        else changed = true;
      }
      if (changed) {
        log.info({ pools: [...pools.values()].map((p) => ({ pool: p.pool, models: p.models })) }, "pools");
        options.onChange?.(pools);
      }
    },
  });
  const offsets = await options.admin.offsets(options.topic, 3000);
  await reader.start();
  for (const o of offsets) reader.add(o.partition, o.low);
  let caughtUp = false;
  void Promise.all(offsets.map((o) => reader.waitFor(o.partition, o.high, CATCH_UP_TIMEOUT_MS))).then(() => {
    caughtUp = true;
  });
  return { pools: () => pools, caughtUp: () => caughtUp, stop: () => reader.stop() };
}
