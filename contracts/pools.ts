/**
 * Model pools: several models behind one gateway. A pool is one model (and the adapters it
 * serves under further names) on its own workers: its own request topic, its own memory
 * topic and its own consumer group, so each pool is scaled on its own lag, and to zero,
 * without another pool's demand showing in its numbers.
 *
 * | pool      | requests                        | memory                        | workers' group                 |
 * | --------- | ------------------------------- | ----------------------------- | ------------------------------ |
 * | `default` | `chat.requests`                 | `chat.memory`                 | WORKER_GROUP_ID                |
 * | `<pool>`  | `chat.requests.pool.<pool>`     | `chat.memory.pool.<pool>`     | `<WORKER_GROUP_ID>.pool.<pool>` |
 *
 * The default pool keeps today's names, so a single-model install is what it was. The other
 * pools' names share one prefix per role, which the ACLs grant as prefixes
 * (contracts/kafka-acls.ts): adding a pool needs no new ACL. chat.events, chat.history,
 * chat.control and the dead letter topic are shared by every pool (a conversation keeps one
 * history whichever model answers it). Which pools exist and the model names each serves is
 * on the bus, in chat.models (./records/models.ts), not in the gateway's configuration.
 */
import { z } from "zod";

export const DEFAULT_POOL = "default";

/** A pool's name: a DNS label (it names a Deployment, a group and topics), at most 40 characters. */
export const poolNameSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, "must be 1-40 lowercase letters, digits or '-', starting and ending with a letter or digit");

/** What a model name may be (the OpenAI `model` field): printable, no spaces. */
export const modelNameSchema = z.string().regex(/^[\x21-\x7e]{1,256}$/, "must be 1-256 printable characters without spaces");

/** The prefix every non-default pool's topic of a role starts with (after the install's prefix). */
export const POOL_TOPIC_PREFIXES = { requests: "chat.requests.pool.", memory: "chat.memory.pool." } as const;

/** A pool's request and memory topics (with the install's topic prefix). */
export function poolTopics(prefix: string, pool: string): { requests: string; memory: string } {
  if (pool === DEFAULT_POOL) return { requests: `${prefix}chat.requests`, memory: `${prefix}chat.memory` };
  return { requests: `${prefix}${POOL_TOPIC_PREFIXES.requests}${pool}`, memory: `${prefix}${POOL_TOPIC_PREFIXES.memory}${pool}` };
}

/** The prefix of every non-default pool's group under the workers' group. */
export function poolGroupPrefix(workerGroup: string): string {
  return `${workerGroup}.pool.`;
}

/** A pool's consumer group: the workers' group for the default pool, `<group>.pool.<pool>` for the others. */
export function poolGroup(workerGroup: string, pool: string): string {
  return pool === DEFAULT_POOL ? workerGroup : `${poolGroupPrefix(workerGroup)}${pool}`;
}
