/**
 * The chart's generated-Secret Job: makes the secrets the chart would otherwise have to
 * render (the workers' internal token, the default API key) once, in a Secret Helm does
 * not own. Rendering a random value gives a new one on every `helm template` or GitOps
 * sync; this Job creates the Secret only if it is missing, adds only the keys it lacks,
 * and never changes a value, so rotation stays in the operator's hands
 * (docs/kubernetes.md, "Rotating the internal token").
 *
 *   ENSURE_SECRET_NAME=llm-kafka-llm-generated ENSURE_SECRET_NAMESPACE=llm \
 *   ENSURE_SECRET_KEYS=internal-token=token,api-keys=api-key node dist/scripts/deploy/ensure-secret.js
 *
 * ENSURE_SECRET_KEYS lists `key=kind` pairs: kind `token` is one random token of
 * TOKEN_LENGTH characters on a line, `api-key` a `default:<token>` line (tenant "default").
 * ENSURE_SECRET_LABELS (JSON) labels a Secret it creates. The API server is the pod's
 * (in-cluster service account) or KUBECONFIG's.
 *
 * Exit codes: 0 the Secret has every key, 1 the API server refused or failed, 2 bad configuration.
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { createLogger, type Logger } from "../../platform/logger.js";

/** Characters of a generated token: letters and digits, safe in a header, a file and a URL. */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** 48 characters of 62: 285 bits. The services require at least 32. */
export const TOKEN_LENGTH = 48;

export type SecretKind = "token" | "api-key";

/** A random string of `length` characters from ALPHABET, without modulo bias. */
export function randomToken(length = TOKEN_LENGTH): string {
  let out = "";
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      // 248 = 4 × 62: bytes above it would favour the first characters.
      if (b < 248 && out.length < length) out += ALPHABET[b % 62];
    }
  }
  return out;
}

/** A new value of a kind, as the file the pods mount holds it. */
export function generateValue(kind: SecretKind): string {
  return kind === "token" ? `${randomToken()}\n` : `default:${randomToken()}\n`;
}

export interface EnsureSecretConfig {
  readonly name: string;
  readonly namespace: string;
  /** Secret key → what to generate for it when it is missing. */
  readonly keys: Readonly<Record<string, SecretKind>>;
  readonly labels: Readonly<Record<string, string>>;
}

/** Reads the configuration from the environment; throws listing every problem. */
export function loadEnsureSecretConfig(env: Readonly<Record<string, string | undefined>> = process.env): EnsureSecretConfig {
  const problems: string[] = [];
  const name = env.ENSURE_SECRET_NAME?.trim() ?? "";
  const namespace = env.ENSURE_SECRET_NAMESPACE?.trim() ?? "";
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) problems.push(`ENSURE_SECRET_NAME: not a Secret name (${JSON.stringify(name)})`);
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) problems.push(`ENSURE_SECRET_NAMESPACE: not a namespace (${JSON.stringify(namespace)})`);
  const keys: Record<string, SecretKind> = {};
  for (const entry of (env.ENSURE_SECRET_KEYS ?? "").split(",").filter((e) => e.trim())) {
    const m = /^\s*([-._a-zA-Z0-9]+)=(token|api-key)\s*$/.exec(entry);
    if (m) keys[m[1]!] = m[2] as SecretKind;
    else problems.push(`ENSURE_SECRET_KEYS: ${JSON.stringify(entry)} is not key=token or key=api-key`);
  }
  if (Object.keys(keys).length === 0 && problems.length === 0) problems.push("ENSURE_SECRET_KEYS: no key to ensure");
  let labels: Record<string, string> = {};
  if (env.ENSURE_SECRET_LABELS) {
    try {
      const parsed = JSON.parse(env.ENSURE_SECRET_LABELS) as unknown;
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== "string"))
        throw new Error("not an object of strings");
      labels = parsed as Record<string, string>;
    } catch (err) {
      problems.push(`ENSURE_SECRET_LABELS: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new EnsureSecretConfigError(problems);
  return Object.freeze({ name, namespace, keys: Object.freeze(keys), labels: Object.freeze(labels) });
}

export class EnsureSecretConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "EnsureSecretConfigError";
  }
}

/** The three calls the Job makes, on one namespace's Secrets. */
export interface SecretStore {
  /** The Secret's data (base64 values) and resourceVersion, or null when there is none. */
  read(name: string): Promise<{ data: Record<string, string>; resourceVersion: string } | null>;
  /** Creates the Secret; false when one of that name appeared meanwhile. */
  create(name: string, data: Record<string, string>, labels: Readonly<Record<string, string>>): Promise<boolean>;
  /** Adds keys if the Secret is still at resourceVersion; false when it changed meanwhile. */
  addKeys(name: string, resourceVersion: string, data: Record<string, string>): Promise<boolean>;
}

export type EnsureResult = { action: "created" | "added" | "unchanged"; keys: string[] };

/**
 * Makes the Secret hold every key of `config`: creates it when missing, adds the missing
 * keys otherwise, and leaves every existing value alone. Retries a race with another
 * writer (another run of the Job) a few times.
 */
export async function ensureSecret(store: SecretStore, config: EnsureSecretConfig): Promise<EnsureResult> {
  const encode = (kind: SecretKind) => Buffer.from(generateValue(kind)).toString("base64");
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await store.read(config.name);
    if (!existing) {
      const data = Object.fromEntries(Object.entries(config.keys).map(([k, kind]) => [k, encode(kind)]));
      if (await store.create(config.name, data, config.labels)) return { action: "created", keys: Object.keys(data) };
      continue;
    }
    const missing = Object.entries(config.keys).filter(([k]) => !(k in existing.data));
    if (missing.length === 0) return { action: "unchanged", keys: [] };
    const data = Object.fromEntries(missing.map(([k, kind]) => [k, encode(kind)]));
    if (await store.addKeys(config.name, existing.resourceVersion, data)) return { action: "added", keys: Object.keys(data) };
  }
  throw new Error(`Secret ${config.namespace}/${config.name} kept changing under us: gave up after 5 attempts`);
}

/** The Secret store on a real API server: the in-cluster service account, or KUBECONFIG's. */
export async function kubernetesSecretStore(namespace: string): Promise<SecretStore> {
  const k8s = await import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const status = (err: unknown) => (err instanceof k8s.ApiException ? err.code : undefined);
  return {
    async read(name) {
      try {
        const s = await core.readNamespacedSecret({ name, namespace });
        return { data: s.data ?? {}, resourceVersion: s.metadata?.resourceVersion ?? "" };
      } catch (err) {
        if (status(err) === 404) return null;
        throw describe(err, `reading Secret ${namespace}/${name}`);
      }
    },
    async create(name, data, labels) {
      try {
        await core.createNamespacedSecret({ namespace, body: { metadata: { name, labels: { ...labels } }, type: "Opaque", data } });
        return true;
      } catch (err) {
        if (status(err) === 409) return false;
        throw describe(err, `creating Secret ${namespace}/${name}`);
      }
    },
    async addKeys(name, resourceVersion, data) {
      try {
        // A merge patch of the missing keys only; the resourceVersion makes it conditional.
        await core.patchNamespacedSecret(
          { name, namespace, body: { metadata: { resourceVersion }, data } },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
        );
        return true;
      } catch (err) {
        if (status(err) === 409) return false;
        throw describe(err, `adding keys to Secret ${namespace}/${name}`);
      }
    },
  };
}

/** An API error as one line: the HTTP status and the API server's own message. */
function describe(err: unknown, what: string): Error {
  const e = err as { code?: number; body?: unknown; message?: string };
  if (typeof e?.code !== "number") return err instanceof Error ? err : new Error(String(err));
  let reason = typeof e.body === "string" ? e.body : JSON.stringify(e.body ?? "");
  try {
    reason = (JSON.parse(reason) as { message?: string }).message ?? reason;
  } catch {
    // not JSON: keep the text
  }
  return new Error(`${what}: HTTP ${e.code}: ${reason.slice(0, 500)}`, { cause: err });
}

async function main(logger: Logger): Promise<number> {
  let config: EnsureSecretConfig;
  try {
    config = loadEnsureSecretConfig();
  } catch (err) {
    if (err instanceof EnsureSecretConfigError) {
      process.stderr.write(`ensure-secret: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const result = await ensureSecret(await kubernetesSecretStore(config.namespace), config);
  // Key names only: the values never reach a log.
  logger.info(
    { secret: `${config.namespace}/${config.name}`, ...result },
    result.action === "unchanged" ? "secret already complete" : `secret ${result.action}`,
  );
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const logger = createLogger("ensure-secret", process.env.LOG_LEVEL ?? "info");
  main(logger).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`ensure-secret: ${(err as Error).message ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
