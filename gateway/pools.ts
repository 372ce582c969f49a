/**
 * Where each request goes when several pools serve models behind this gateway
 * (contracts/pools.ts). The pools, and the model names each serves, come from chat.models
 * (platform/kafka/pool-registry.ts); until that topic declares any pool, the default pool
 * serves MODEL_NAME, as a single-model install always did. The default pool also always
 * answers to MODEL_NAME while it is declared, so a release whose workers name their model
 * differently keeps the name its clients use.
 *
 * A conversation lives in one pool at a time (its memory is that pool's: chat.memory of the
 * pool, docs/architecture.md "Model pools"). The router keeps, bounded and per tenant, the
 * pool each conversation was last sent to; a turn that names a model of another pool is a
 * move (gateway/intake.ts).
 */
import { DEFAULT_POOL, poolGroup, poolTopics } from "../contracts/pools.js";
import type { PoolRecord } from "../contracts/records/models.js";
import { ApiError } from "./errors.js";

/** A pool as the gateway sends to it. */
export interface PoolLane {
  readonly pool: string;
  /** Its request topic. */
  readonly topic: string;
  /** Its workers' consumer group. */
  readonly group: string;
  /** Its model names: the base model first, then adapters. */
  readonly models: readonly string[];
  /** Adapter name → base model, for those of `models` that are adapters. */
  readonly adapters: Readonly<Record<string, string>>;
}

/** A model as /v1/models lists it. */
export interface ListedModel {
  readonly id: string;
  readonly pool: string;
  /** The base model, for an adapter. */
  readonly parent?: string;
}

export class PoolRouter {
  readonly #prefix: string;
  readonly #workerGroup: string;
  readonly #defaultModel: string;
  #lanes = new Map<string, PoolLane>();
  #byModel = new Map<string, PoolLane>();
  #declared = false;

  constructor(options: { topicPrefix: string; workerGroup: string; defaultModel: string }) {
    this.#prefix = options.topicPrefix;
    this.#workerGroup = options.workerGroup;
    this.#defaultModel = options.defaultModel;
    this.update(new Map());
  }

  /** Takes chat.models' declarations; returns the pools that are new since the last update. */
  update(declarations: ReadonlyMap<string, PoolRecord>): PoolLane[] {
    this.#declared = this.#declared || declarations.size > 0;
    const records = this.#declared ? [...declarations.values()] : [{ pool: DEFAULT_POOL, models: [this.#defaultModel], adapters: undefined, at: 0 }];
    const lanes = new Map<string, PoolLane>();
    const byModel = new Map<string, PoolLane>();
    // The latest declaration wins a model name two pools claim (a pool renamed, the old one not yet withdrawn).
    for (const r of [...records].sort((a, b) => a.at - b.at)) {
      const models = r.pool === DEFAULT_POOL && !r.models.includes(this.#defaultModel) ? [...r.models, this.#defaultModel] : [...r.models];
      const lane: PoolLane = { pool: r.pool, ...poolAddress(this.#prefix, this.#workerGroup, r.pool), models, adapters: r.adapters ?? {} };
      lanes.set(r.pool, lane);
      for (const m of models) {
        byModel.set(m, lane);
      }
    }
    const added = [...lanes.values()].filter((l) => !this.#lanes.has(l.pool));
    this.#lanes = lanes;
    this.#byModel = byModel;
    return added;
  }

  /** Every pool known now. */
  lanes(): PoolLane[] {
    return [...this.#lanes.values()];
  }

  lane(pool: string): PoolLane | undefined {
    return this.#lanes.get(pool);
  }

  /** The models /v1/models lists, sorted by name. */
  models(): ListedModel[] {
    return [...this.#byModel.entries()]
      .map(([id, lane]) => ({ id, pool: lane.pool, ...(lane.adapters[id] !== undefined && { parent: lane.adapters[id] }) }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The pool serving `model`; no model: the default pool (or the only one). 404 naming the models when none serves it. */
  route(model: string | undefined): PoolLane {
    if (model === undefined) {
      const lane = this.#lanes.get(DEFAULT_POOL) ?? (this.#lanes.size === 1 ? [...this.#lanes.values()][0] : undefined);
      if (lane) return lane;
      throw new ApiError("not_found", `no model was named and there is no default pool; name one of: ${this.#names()}`, { param: "model" });
    }
    const lane = this.#byModel.get(model);
    if (!lane) throw new ApiError("not_found", `no model ${model} is served here; GET /v1/models lists them: ${this.#names()}`, { param: "model" });
    return lane;
  }

  #names(): string {
    const names = [...this.#byModel.keys()].sort();
    return names.length === 0 ? "(none is deployed)" : names.join(", ");
  }
}

/** A pool's request topic and group. */
export function poolAddress(topicPrefix: string, workerGroup: string, pool: string): { topic: string; group: string } {
  return { topic: poolTopics(topicPrefix, pool).requests, group: poolGroup(workerGroup, pool) };
}

/**
 * The pool each conversation was last sent to, per tenant, bounded: a tenant's oldest entry
 * goes when it holds `maxPerTenant`, and an entry unused for `ttlMs` is forgotten. What is
 * forgotten falls back to the default pool (or the pool the request's model names).
 */
export class ConversationPools {
  readonly #maxPerTenant: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #byTenant = new Map<string, Map<string, { pool: string; at: number }>>();

  constructor(options: { maxPerTenant: number; ttlMs: number; now?: () => number }) {
    this.#maxPerTenant = Math.max(1, options.maxPerTenant);
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  get(tenant: string, conversationId: string): string | undefined {
    const entry = this.#byTenant.get(tenant)?.get(conversationId);
    if (!entry) return undefined;
    if (this.#now() - entry.at > this.#ttlMs) {
      this.forget(tenant, conversationId);
      return undefined;
    }
    return entry.pool;
  }

  note(tenant: string, conversationId: string, pool: string): void {
    let conversations = this.#byTenant.get(tenant);
    if (!conversations) this.#byTenant.set(tenant, (conversations = new Map()));
    conversations.delete(conversationId);
    conversations.set(conversationId, { pool, at: this.#now() });
    while (conversations.size > this.#maxPerTenant) conversations.delete(conversations.keys().next().value!);
  }

  forget(tenant: string, conversationId: string): void {
    const conversations = this.#byTenant.get(tenant);
    conversations?.delete(conversationId);
    if (conversations?.size === 0) this.#byTenant.delete(tenant);
  }

  /** Entries held, all tenants. */
  get size(): number {
    let n = 0;
    for (const c of this.#byTenant.values()) n += c.size;
    return n;
  }
}
