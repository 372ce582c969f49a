/**
 * chat.models: which pools are deployed and the model names each serves (./../pools.ts).
 * Compacted, keyed by pool name: the latest record of each pool is its declaration, a
 * tombstone (null value) removes it. Written by the chart's topics Job from the release's
 * pools (it also tombstones pools the release no longer has) and by every worker when it
 * starts (KAFKA_ENSURE_TOPICS or not: its own pool's record, so a pool started by hand is
 * listed too). The gateways read it whole and follow it: it is what /v1/models lists and
 * where each `model` is routed, so a pool scaled to zero stays listed and routable.
 */
import { z } from "zod";
import { SCHEMA_VERSION } from "./fields.js";
import { DEFAULT_POOL, modelNameSchema, poolNameSchema } from "../pools.js";

export const MAX_POOL_MODELS = 64;

export const poolRecordSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    pool: poolNameSchema,
    /**
     * The base model's name first, then each adapter's; unique across the pools of an
     * install. The default pool may declare none: it then answers to the gateways' MODEL_NAME
     * (which it always answers to), as a single-model install did before pools.
     */
    models: z.array(modelNameSchema).max(MAX_POOL_MODELS),
    /** The adapters among `models`: name → the base model it adapts (always models[0] today). */
    adapters: z.record(modelNameSchema, modelNameSchema).optional(),
    /** Milliseconds since the epoch when this declaration was written. */
    at: z.number().int().nonnegative(),
    /** Who wrote it: `topics-job` or a worker id. */
    by: z.string().min(1).max(256),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.models.length === 0 && r.pool !== DEFAULT_POOL)
      ctx.addIssue({ code: "custom", path: ["models"], message: "a pool other than the default must name its model" });
    if (new Set(r.models).size !== r.models.length) ctx.addIssue({ code: "custom", path: ["models"], message: "names a model twice" });
    for (const name of Object.keys(r.adapters ?? {}))
      if (!r.models.includes(name)) ctx.addIssue({ code: "custom", path: ["adapters", name], message: "is not one of the pool's models" });
  });
export type PoolRecord = z.infer<typeof poolRecordSchema>;
