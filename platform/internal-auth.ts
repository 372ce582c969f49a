/**
 * How gateways and workers prove themselves to each other on a conversation read, with a
 * shared secret that never crosses the wire.
 *
 * A gateway finds a partition's owner through the workers' group, whose members advertise
 * their address. It must neither hand a credential to whatever answers at an address a
 * member advertises, nor trust conversation state from something that has not proved it is
 * a worker. So nothing reusable is sent: the gateway signs each read (an HMAC-SHA256 over the
 * method, the address it is sending to, the path, a time and a random nonce), and the worker
 * signs its answer over that nonce, the status and the body. A signature sent to a rogue
 * address is good for that address only, for a minute; an answer not signed with the secret
 * is not used. The broker's ACLs already keep everything but the worker principal out of the
 * workers' group; this keeps a member that got in anyway (or an address that is not the
 * member's) from reading or forging anything.
 *
 * The secret is a keyring, for rotation without refusals: KAFKA_LLM_INTERNAL_TOKEN, or the
 * file KAFKA_LLM_INTERNAL_TOKEN_FILE with one token per line, re-read every 10 s. The first
 * token signs; every listed token is accepted. Rotate in three steps, each once every pod
 * has the file: add the new token as a second line; move it first; remove the old one.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseTokens, tokensProblem } from "../contracts/internal-token.js";
import type { Logger } from "./logger.js";

export { isLoopbackHost } from "../contracts/internal-token.js";

/** How long a signed read is good for, either side of the worker's clock, ms. */
export const SIGNATURE_WINDOW_MS = 60_000;
/** How often the token file is read again, ms. */
const RELOAD_MS = 10_000;

export const SCHEME = "KafkaLLM-HMAC";
/** The response header that carries the worker's signature of its answer. */
export const ANSWER_SIGNATURE_HEADER = "x-kafka-llm-signature";

interface Key {
  /** A public name of the key (a digest of it), so a verifier knows which one signed. */
  readonly id: string;
  readonly secret: Buffer;
}

function keyOf(token: string): Key {
  const secret = Buffer.from(token, "utf8");
  return { id: createHash("sha256").update(secret).digest("base64url").slice(0, 12), secret };
}

/** The shared tokens, the first one signing; a file is read again when it changes. */
export class InternalKeys {
  #keys: Key[];
  #fileText: string | null = null;
  #timer: NodeJS.Timeout | null = null;

  private constructor(tokens: readonly string[]) {
    this.#keys = tokens.map(keyOf);
  }

  /** No token at all: reads are neither signed nor checked (only where everything stays on loopback). */
  static none(): InternalKeys {
    return new InternalKeys([]);
  }

  static of(tokens: readonly string[]): InternalKeys {
    const problem = tokensProblem(tokens);
    if (problem) throw new Error(`internal token: ${problem}`);
    return new InternalKeys(tokens);
  }

  /**
   * The keyring of a config (one token, or a file). A file is read again every 10 s; a new
   * content that is unusable is logged and the keys in use are kept.
   */
  static fromConfig(config: { readonly token: string; readonly file: string | null }, logger: Logger, reloadMs = RELOAD_MS): InternalKeys {
    if (config.file === null) return config.token === "" ? InternalKeys.none() : InternalKeys.of([config.token]);
    const file = config.file;
    const text = readFileSync(file, "utf8");
    const keys = InternalKeys.of(parseTokens(text));
    keys.#fileText = text;
    keys.#timer = setInterval(() => keys.#reload(file, logger), reloadMs);
    keys.#timer.unref();
    return keys;
  }

  #reload(file: string, logger: Logger): void {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      logger.warn({ code: (err as NodeJS.ErrnoException).code, file }, "cannot re-read the internal token file; keeping the tokens in use");
      return;
    }
    if (text === this.#fileText) return;
    this.#fileText = text;
    const tokens = parseTokens(text);
    const problem = tokensProblem(tokens);
    if (problem) {
      logger.error({ file, problem }, "the internal token file changed but is unusable; keeping the tokens in use");
      return;
    }
    this.#keys = tokens.map(keyOf);
    logger.info({ file, tokens: tokens.length, signing: this.#keys[0]!.id }, "internal token file changed: tokens reloaded");
  }

  /** False when no token is set. */
  get enabled(): boolean {
    return this.#keys.length > 0;
  }

  /** The name of the key that signs now (for logs and tests). */
  get signingKeyId(): string | null {
    return this.#keys[0]?.id ?? null;
  }

  /** The key that signs now. */
  signer(): Key | undefined {
    return this.#keys[0];
  }

  /** An accepted key by its name. */
  find(id: string): Key | undefined {
    return this.#keys.find((k) => k.id === id);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

const mac = (key: Key, text: string): Buffer => createHmac("sha256", key.secret).update(text, "utf8").digest();

function requestText(method: string, authority: string, path: string, at: number, nonce: string): string {
  return ["kafka-llm-read-v1", method.toUpperCase(), authority.toLowerCase(), path, String(at), nonce].join("\n");
}

function answerText(nonce: string, status: number, body: Buffer): string {
  return ["kafka-llm-answer-v1", nonce, String(status), createHash("sha256").update(body).digest("hex")].join("\n");
}

/** `key=value` pairs of a signature header. */
function fields(header: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

const equalMac = (given: string, expected: Buffer): boolean => {
  const bytes = Buffer.from(given, "base64url");
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
};

/** A signed read: the Authorization header to send, and the nonce the answer must be signed over. */
export interface SignedRead {
  readonly authorization: string;
  readonly nonce: string;
}

/**
 * Signs a read of `url` (whose host and port it is bound to). Undefined when no token is
 * set (the caller then sends none).
 */
export function signRead(keys: InternalKeys, method: string, url: URL, now = Date.now()): SignedRead | undefined {
  const key = keys.signer();
  if (!key) return undefined;
  const nonce = randomBytes(16).toString("base64url");
  const sig = mac(key, requestText(method, url.host, url.pathname, now, nonce)).toString("base64url");
  return { authorization: `${SCHEME} key=${key.id},ts=${now},nonce=${nonce},sig=${sig}`, nonce };
}

export type ReadCheck = { ok: true; nonce: string; key: Key } | { ok: false; reason: string };

/**
 * Checks a signed read as the worker received it: `authority` is the host and port the
 * worker advertises (a read signed for another address fails), `path` the request's path.
 */
export function verifyRead(
  keys: InternalKeys,
  request: { method: string; path: string; authorization: string | undefined },
  authority: string,
  now = Date.now(),
): ReadCheck {
  const header = request.authorization ?? "";
  if (!header.startsWith(`${SCHEME} `)) return { ok: false, reason: `no ${SCHEME} signature` };
  const f = fields(header.slice(SCHEME.length + 1));
  const key = keys.find(f.get("key") ?? "");
  if (!key) return { ok: false, reason: "signed with a key this worker does not have" };
  const at = Number(f.get("ts"));
  if (!Number.isSafeInteger(at) || Math.abs(now - at) > SIGNATURE_WINDOW_MS) return { ok: false, reason: "signature too old or from the future" };
  const nonce = f.get("nonce") ?? "";
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(nonce)) return { ok: false, reason: "no nonce" };
  if (!equalMac(f.get("sig") ?? "", mac(key, requestText(request.method, authority, request.path, at, nonce)))) {
    return { ok: false, reason: "signature does not match (another address, path or key)" };
  }
  return { ok: true, nonce, key };
}

/** The worker's signature header of its answer to a signed read, with the key that read was signed with. */
export function signAnswer(key: Key, nonce: string, status: number, body: Buffer): string {
  return `key=${key.id},sig=${mac(key, answerText(nonce, status, body)).toString("base64url")}`;
}

/** Whether an answer is signed by a holder of an accepted key, over this read's nonce, status and body. */
export function verifyAnswer(keys: InternalKeys, nonce: string, status: number, body: Buffer, header: string | null): boolean {
  if (!header) return false;
  const f = fields(header);
  const key = keys.find(f.get("key") ?? "");
  return key !== undefined && equalMac(f.get("sig") ?? "", mac(key, answerText(nonce, status, body)));
}
