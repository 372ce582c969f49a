/**
 * What the chart's topics Job (create-topics.ts) does about model pools (contracts/pools.ts),
 * without Kafka: the pools a release declares (KAFKA_POOLS, rendered by the chart), the
 * topics they need, and the records that make chat.models say what the release has: one
 * PoolRecord per declared pool (key = pool name), and a tombstone for every pool chat.models
 * still lists that the release no longer declares.
 *
 *   KAFKA_POOLS='[{"pool":"small","models":["small"]},{"pool":"large","models":["large","large-sql"],"adapters":{"large-sql":"large"}}]'
 */
import { z } from "zod";
import { ConfigError } from "../../contracts/config/env.js";
import { DEFAULT_POOL, modelNameSchema, poolNameSchema } from "../../contracts/pools.js";
import { describeIssues, requiredMessage } from "../../contracts/records/codec.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { MAX_POOL_MODELS, poolRecordSchema, type PoolRecord } from "../../contracts/records/models.js";
import { topicNames, topicSpecs, type TopicSettings, type TopicSpec } from "../../contracts/topics.js";

/** One pool as the release declares it: a PoolRecord without who wrote it and when. */
export const poolDeclarationSchema = z
  .object({
    pool: poolNameSchema,
    models: z.array(modelNameSchema).min(1).max(MAX_POOL_MODELS),
    adapters: z.record(modelNameSchema, modelNameSchema).optional(),
  })
  .strict();
export type PoolDeclaration = z.infer<typeof poolDeclarationSchema>;

/** Who the Job's records say wrote them (PoolRecord.by). */
export const TOPICS_JOB = "topics-job";

/**
 * KAFKA_POOLS: a JSON array of {pool, models, adapters?}. Unset or empty: null (the Job then
 * creates the default pool's topics and declares nothing: the workers declare their pool
 * when they start). Throws ConfigError naming what is wrong: not JSON, a pool or model name
 * the contracts refuse, a pool named twice, a model name served by two pools.
 */
export function parsePools(text: string | undefined): PoolDeclaration[] | null {
  if (text === undefined || text.trim() === "") return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError(["KAFKA_POOLS: must be a JSON array of {pool, models, adapters?}"]);
  }
  const parsed = z.array(poolDeclarationSchema).min(1, "declares no pool").safeParse(json, { error: requiredMessage });
  if (!parsed.success) throw new ConfigError([`KAFKA_POOLS: ${describeIssues(parsed.error)}`]);
  const problems: string[] = [];
  const pools = new Set<string>();
  const servedBy = new Map<string, string>();
  for (const [i, d] of parsed.data.entries()) {
    if (pools.has(d.pool)) problems.push(`KAFKA_POOLS: pool ${d.pool} is declared twice`);
    pools.add(d.pool);
    // What a PoolRecord must be (a model named twice, an adapter that is not one of the models).
    const record = poolRecordSchema.safeParse(toRecord(d, 0, TOPICS_JOB));
    if (!record.success) problems.push(`KAFKA_POOLS: ${i}: ${describeIssues(record.error)}`);
    for (const model of d.models) {
      const other = servedBy.get(model);
      if (other !== undefined && other !== d.pool) problems.push(`KAFKA_POOLS: model ${model} is served by pool ${other} and by pool ${d.pool}`);
      servedBy.set(model, d.pool);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed.data;
}

/** The pools' topics: the default pool's always (the gateways check them), then each other pool's requests and memory; each topic once. */
export function poolTopicSpecs(prefix: string, pools: readonly PoolDeclaration[] | null, settings: TopicSettings): TopicSpec[] {
  const specs = new Map<string, TopicSpec>();
  for (const pool of [DEFAULT_POOL, ...(pools ?? []).map((p) => p.pool)]) {
    for (const spec of topicSpecs(topicNames(prefix, pool), settings)) if (!specs.has(spec.name)) specs.set(spec.name, spec);
  }
  return [...specs.values()];
}

/** A declaration as the record chat.models keeps of it. */
export function toRecord(d: PoolDeclaration, at: number, by: string): PoolRecord {
  return { v: SCHEMA_VERSION, pool: d.pool, models: [...d.models], ...(d.adapters ? { adapters: { ...d.adapters } } : {}), at, by };
}

/** What chat.models holds for a pool now: its latest record, "invalid" when that record is not a PoolRecord, null when it was removed (a tombstone). */
export type CurrentPool = PoolRecord | "invalid" | null;

/** One record to write to chat.models: key = pool name; value null = a tombstone. */
export interface ModelsRecord {
  readonly key: string;
  readonly value: PoolRecord | null;
}

export interface DeclarationPlan {
  /** Tombstones first (a model that moves to another pool is briefly unknown, never routed to a pool that is going), then the declarations. */
  readonly records: readonly ModelsRecord[];
  /** Pools declared whose record already says the same (not written again). */
  readonly unchanged: readonly string[];
  /** Pools removed (tombstoned). */
  readonly removed: readonly string[];
}

/**
 * The records that make chat.models what the release declares, given its latest record per
 * key (`current`): a PoolRecord for each declared pool whose record differs (models or
 * adapters) or is missing, and a tombstone for each key chat.models still holds (a record,
 * valid or not) that the release does not declare.
 */
export function declarationPlan(pools: readonly PoolDeclaration[], current: ReadonlyMap<string, CurrentPool>, at: number, by = TOPICS_JOB): DeclarationPlan {
  const declared = new Set(pools.map((p) => p.pool));
  const removed = [...current]
    .filter(([key, value]) => value !== null && !declared.has(key))
    .map(([key]) => key)
    .sort();
  const unchanged: string[] = [];
  const writes: ModelsRecord[] = [];
  for (const d of pools) {
    const now = current.get(d.pool);
    if (now && now !== "invalid" && sameModels(now, d)) unchanged.push(d.pool);
    else writes.push({ key: d.pool, value: toRecord(d, at, by) });
  }
  return { records: [...removed.map((key) => ({ key, value: null })), ...writes], unchanged, removed };
}

function sameModels(r: PoolRecord, d: PoolDeclaration): boolean {
  const adapters = (a: Record<string, string> | undefined) => JSON.stringify(Object.entries(a ?? {}).sort(([x], [y]) => x.localeCompare(y)));
  return JSON.stringify(r.models) === JSON.stringify(d.models) && adapters(r.adapters) === adapters(d.adapters);
}
