/**
 * API keys and tenants. A key is sent as `Authorization: Bearer <key>` and names its
 * tenant; every conversation and request belongs to the tenant that created it.
 *
 * Keys come from GATEWAY_API_KEYS and/or a mounted file (GATEWAY_API_KEYS_FILE), which is
 * re-read when it changes (a Kubernetes Secret volume is updated in place). Keys are kept
 * only as SHA-256 digests and compared in constant time; they are never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../contracts/config/env.js";
import type { GatewayConfig } from "../contracts/config/gateway.js";
import { tenantSchema } from "../contracts/records/fields.js";
import { z } from "zod";
import type { Logger } from "../platform/logger.js";
import { ApiError } from "./errors.js";
import type { TenantLimits } from "../contracts/config/gateway.js";

export interface ApiKey {
  readonly tenant: string;
  readonly key: string;
  /** The tenant's own quotas (gateway/quotas.ts), from the keys file's JSON entries. */
  readonly limits?: Partial<TenantLimits>;
}

/**
 * A keys-file entry's `limits`, in the file's snake_case: each a whole number, 0 for no limit.
 * Limits are per tenant: every entry of a tenant that gives them must give the same.
 */
const limitsSchema = z
  .object({
    requests_per_minute: z.number().int().min(0),
    tokens_per_minute: z.number().int().min(0),
    concurrent_requests: z.number().int().min(0),
    open_streams: z.number().int().min(0),
    named_readers: z.number().int().min(0),
  })
  .partial()
  .strict();

function limitsOf(value: z.infer<typeof limitsSchema>): Partial<TenantLimits> {
  return {
    ...(value.requests_per_minute !== undefined && { requestsPerMinute: value.requests_per_minute }),
    ...(value.tokens_per_minute !== undefined && { tokensPerMinute: value.tokens_per_minute }),
    ...(value.concurrent_requests !== undefined && { concurrentRequests: value.concurrent_requests }),
    ...(value.open_streams !== undefined && { openStreams: value.open_streams }),
    ...(value.named_readers !== undefined && { namedReaders: value.named_readers }),
  };
}

/** The tenant every request runs as when GATEWAY_AUTH=none. */
export const LOCAL_TENANT = "local";

/** Why a tenant/key pair is unusable (never quoting the key), or null when it is fine. */
export function apiKeyProblem(tenant: string, key: string): string | null {
  if (!tenant || !key) return 'not in the form "tenant:key"';
  // The record schema's own pattern: a tenant the records would refuse never gets a key.
  if (!tenantSchema.safeParse(tenant).success) return "the tenant may contain only letters, digits, '.', '_' and '-' (1-64)";
  if (/\s/.test(key)) return "the key contains white space";
  return null;
}

/**
 * Parses "tenant:key" entries separated by commas or newlines (blank lines and lines
 * starting with # are skipped). Problems name the entry by position, never by value, so a
 * key cannot end up in a log.
 */
export function parseApiKeyList(text: string, source: string): { keys: ApiKey[]; problems: string[] } {
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  const entries = text
    .split(/[,\n]/)
    .map((e) => e.trim())
    .filter((e) => e !== "" && !e.startsWith("#"));
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(":");
    const tenant = colon < 0 ? "" : entry.slice(0, colon).trim();
    const key = colon < 0 ? "" : entry.slice(colon + 1).trim();
    const problem = apiKeyProblem(tenant, key);
    if (problem === null) keys.push({ tenant, key });
    else problems.push(`${source}: entry ${i + 1}: ${problem}`);
  });
  return { keys, problems };
}

interface Entry {
  digest: Buffer;
  tenant: string;
}

const digestOf = (key: string): Buffer => createHash("sha256").update(key, "utf8").digest();

/**
 * Reads a keys file: either "tenant:key" lines (# comments allowed) or JSON, as
 * {"tenant": "key" | ["key", ...]} or [{"tenant": "...", "key": "...", "limits": {...}}]
 * (limits: the tenant's quotas, limitsSchema).
 */
export function parseKeysFile(text: string, source: string): { keys: ApiKey[]; problems: string[] } {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{") && !trimmed.startsWith("[")) return parseApiKeyList(text, source);
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch {
    return { keys: [], problems: [`${source}: looks like JSON but does not parse`] };
  }
  const pairs: Array<[unknown, unknown, unknown?]> = [];
  if (Array.isArray(json)) {
    for (const item of json) {
      const { tenant, key, limits } = (item ?? {}) as { tenant?: unknown; key?: unknown; limits?: unknown };
      pairs.push([tenant, key, limits]);
    }
  } else if (json && typeof json === "object") {
    for (const [tenant, value] of Object.entries(json)) {
      for (const key of Array.isArray(value) ? value : [value]) pairs.push([tenant, key]);
    }
  }
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  pairs.forEach(([tenant, key, limits], i) => {
    const problem = typeof tenant === "string" && typeof key === "string" ? apiKeyProblem(tenant, key) : 'not in the form {"tenant": string, "key": string}';
    if (problem !== null) return problems.push(`${source}: entry ${i + 1}: ${problem}`);
    if (limits === undefined) return keys.push({ tenant: tenant as string, key: key as string });
    const parsed = limitsSchema.safeParse(limits);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = issue.path.length ? `limits.${issue.path.join(".")}` : "limits";
      return problems.push(
        `${source}: entry ${i + 1}: ${where}: ${issue.code === "unrecognized_keys" ? `unknown limit (use ${Object.keys(limitsSchema.shape).join(", ")})` : "must be a whole number >= 0 (0: no limit)"}`,
      );
    }
    return keys.push({ tenant: tenant as string, key: key as string, limits: limitsOf(parsed.data) });
  });
  return { keys, problems };
}

export class ApiKeyStore {
  #entries: Entry[] = [];
  #limits = new Map<string, Partial<TenantLimits>>();
  readonly #envKeys: readonly ApiKey[];
  readonly #file: string | null;
  #fileText: string | null = null;

  constructor(envKeys: readonly ApiKey[], file: string | null) {
    this.#envKeys = envKeys;
    this.#file = file;
  }

  /** Loads the keys; throws ConfigError (naming entries, not values) when they are unusable. */
  load(): number {
    const keys = [...this.#envKeys];
    const problems: string[] = [];
    if (this.#file !== null) {
      let text: string;
      try {
        text = readFileSync(this.#file, "utf8");
      } catch (err) {
        throw new ConfigError([`GATEWAY_API_KEYS_FILE: cannot read ${this.#file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
      }
      const parsed = parseKeysFile(text, "GATEWAY_API_KEYS_FILE");
      keys.push(...parsed.keys);
      problems.push(...parsed.problems);
      this.#fileText = text;
    }
    const owners = new Map<string, string>();
    const limits = new Map<string, Partial<TenantLimits>>();
    for (const { tenant, key, limits: own } of keys) {
      const other = owners.get(key);
      if (other !== undefined && other !== tenant) problems.push(`the same API key is given to tenants ${other} and ${tenant}`);
      owners.set(key, tenant);
      if (own === undefined) continue;
      const before = limits.get(tenant);
      if (before !== undefined && JSON.stringify(before) !== JSON.stringify(own))
        problems.push(`tenant ${tenant}: its entries give different limits (limits are per tenant)`);
      limits.set(tenant, own);
    }
    if (keys.length === 0) problems.push("GATEWAY_AUTH=keys but no API key was found in GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE");
    if (problems.length > 0) throw new ConfigError(problems);
    this.#entries = keys.map(({ tenant, key }) => ({ digest: digestOf(key), tenant }));
    this.#limits = limits;
    return this.#entries.length;
  }

  /** The tenant's own limits from the keys file, if it gives any. */
  limitsOf(tenant: string): Partial<TenantLimits> | undefined {
    return this.#limits.get(tenant);
  }

  /** Re-reads the file when its content changed; keeps the old keys when the new ones are unusable. */
  reloadIfChanged(logger: Logger): void {
    if (this.#file === null) return;
    let text: string;
    try {
      text = readFileSync(this.#file, "utf8");
    } catch (err) {
      logger.warn({ code: (err as NodeJS.ErrnoException).code }, "cannot re-read the API keys file; keeping the keys in use");
      return;
    }
    if (text === this.#fileText) return;
    const previous = this.#entries;
    const previousLimits = this.#limits;
    try {
      const count = this.load();
      logger.info({ keys: count }, "API keys file changed: keys reloaded");
    } catch (err) {
      this.#entries = previous;
      this.#limits = previousLimits;
      this.#fileText = text; // don't report the same bad content every time
      logger.error({ problems: (err as ConfigError).problems }, "API keys file changed but is unusable; keeping the keys in use");
    }
  }

  /** The tenant of a presented key, or null. Compares against every key, in constant time each. */
  tenantOf(presented: string): string | null {
    const digest = digestOf(presented);
    let tenant: string | null = null;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, digest)) tenant = entry.tenant;
    }
    return tenant;
  }
}

/** Resolves the tenant of an HTTP request; throws 401 when a key is required and not valid. */
export type Authenticator = (authorization: string | undefined) => string;

export interface Authentication {
  authenticate: Authenticator;
  /** A tenant's own quotas from the keys file (none: the defaults apply). */
  limitsOf(tenant: string): Partial<TenantLimits> | undefined;
  stop(): void;
}

export function createAuthenticator(config: GatewayConfig["auth"], logger: Logger): Authentication {
  if (config.mode === "none") {
    logger.warn(
      { tenant: LOCAL_TENANT },
      "GATEWAY_AUTH=none: the API is open to anyone who can reach it and every conversation belongs to one tenant; use this for local runs only",
    );
    return { authenticate: () => LOCAL_TENANT, limitsOf: () => undefined, stop: () => {} };
  }
  const fromEnv = parseApiKeyList(config.keysText, "GATEWAY_API_KEYS");
  if (fromEnv.problems.length > 0) throw new ConfigError(fromEnv.problems);
  const store = new ApiKeyStore(fromEnv.keys, config.keysFile);
  const count = store.load();
  logger.info({ keys: count, file: config.keysFile }, "API keys loaded");
  const timer = config.keysFile === null ? null : setInterval(() => store.reloadIfChanged(logger), 10_000);
  timer?.unref();
  return {
    authenticate(authorization) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
      const tenant = match ? store.tenantOf(match[1]!) : null;
      if (tenant === null) {
        throw new ApiError("unauthorized", authorization ? "the API key is not valid" : "an API key is required: send Authorization: Bearer <key>");
      }
      return tenant;
    },
    limitsOf: (tenant) => store.limitsOf(tenant),
    stop: () => {
      if (timer) clearInterval(timer);
    },
  };
}
