/**
 * Conversation reads for the gateways, on the worker's ops port (Kafka Streams' interactive
 * queries): the worker that owns partition p of chat.requests holds partition p of
 * chat.memory, so it answers for the conversations there, and no gateway keeps a copy.
 *
 *   GET /internal/v1/partitions/{p}/tenants/{tenant}/conversations/{id}
 *     200 { state }  the conversation as the log has it (restored, caught up)
 *     404            this worker owns p and has no such conversation ({ found: false })
 *     421            this worker does not own p (any more): the gateway asks the group again
 *     503            the partition's restore did not finish within the bound
 *     401            the read is not signed with the internal token, for this worker's address
 *
 * Reads are signed by the gateway and answers by the worker (platform/internal-auth.ts), so
 * neither side hands the other anything reusable, and a gateway uses only answers signed
 * with the shared token. Without a token (a worker listening on loopback only; the config
 * refuses anything else) reads are not checked.
 *
 * The worker advertises where it answers in its group member's client.id
 * (`<KAFKA_CLIENT_ID>@http://HOST:PORT`), which a gateway reads with the group's description.
 */
import type http from "node:http";
import os from "node:os";
import { Counter, type Registry } from "prom-client";
import { conversationKey } from "../contracts/conversation-key.js";
import { conversationIdSchema, tenantSchema } from "../contracts/records/fields.js";
import type { ConversationState } from "../contracts/records/memory.js";
import { ANSWER_SIGNATURE_HEADER, signAnswer, verifyRead, type InternalKeys } from "../platform/internal-auth.js";
import type { Logger } from "../platform/logger.js";
import type { OpsRoute } from "../platform/ops-server.js";

export const QUERY_PATH = /^\/internal\/v1\/partitions\/(\d{1,6})\/tenants\/([^/]+)\/conversations\/([^/]+)$/;
/** How long a read may wait for its partition's restore before 503 (the gateway retries within its own bound). */
const RESTORE_WAIT_MS = 5000;

/** What the endpoint needs of the memory store: a conversation by its key. */
export interface ConversationSource {
  lookup(partition: number, key: string, timeoutMs?: number): Promise<{ owned: false } | { owned: true; state?: ConversationState }>;
}

/**
 * The base URL a worker advertises: WORKER_QUERY_ADDRESS, else http:// and the pod IP
 * (POD_IP), else the address the ops server listens on when it is a single one, else the
 * host name; with the ops server's actual port.
 */
export function queryAddress(configured: string | null, httpHost: string, port: number, env: NodeJS.ProcessEnv = process.env): string {
  if (configured) return configured;
  const wildcard = httpHost === "0.0.0.0" || httpHost === "::" || httpHost === "";
  const host = env.POD_IP?.trim() || (wildcard ? os.hostname() : httpHost);
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** The client.id of the worker's group member: the configured one, then `@` and the query address. */
export function advertisedClientId(clientId: string, address: string): string {
  return `${clientId}@${address}`;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return "";
  }
}

/**
 * `address`: the base URL this worker advertises; a read signed for another one is refused.
 * `keys`: the shared token (none: reads are not checked, the worker listens on loopback).
 */
export function queryRoute(options: { memory: ConversationSource; keys: InternalKeys; address: string; registry: Registry; logger: Logger }): OpsRoute {
  const log = options.logger.child({ component: "query-server" });
  const queries = new Counter({
    name: "kafka_llm_worker_conversation_queries_total",
    help: "Conversation reads gateways asked this worker, by outcome (found, not_found, not_owner, unavailable, unauthorized, bad_request)",
    labelNames: ["outcome"] as const,
    registers: [options.registry],
  });
  const authority = new URL(options.address).host;
  let refusedAt = 0;

  return (req, res, path) => {
    if (!path.startsWith("/internal/")) return false;
    let answer = (status: number, body: unknown) => send(res, status, body);
    if (options.keys.enabled) {
      const check = verifyRead(options.keys, { method: req.method ?? "GET", path, authorization: req.headers.authorization }, authority);
      if (!check.ok) {
        queries.inc({ outcome: "unauthorized" });
        // Said once a minute: a rotation gone wrong, or someone probing.
        if (Date.now() - refusedAt > 60_000) {
          refusedAt = Date.now();
          log.warn({ reason: check.reason, from: req.socket.remoteAddress }, "conversation read refused");
        }
        send(res, 401, {
          error: `conversation reads must be signed with the internal token for ${options.address} (KAFKA_LLM_INTERNAL_TOKEN): ${check.reason}`,
        });
        return true;
      }
      answer = (status, body) => send(res, status, body, (bytes) => signAnswer(check.key, check.nonce, status, bytes));
    }
    const match = QUERY_PATH.exec(path);
    if (!match) {
      answer(404, { error: `no route ${path}` });
      return true;
    }
    const partition = Number(match[1]);
    const tenant = decodeSegment(match[2]!);
    const id = decodeSegment(match[3]!);
    if (!tenantSchema.safeParse(tenant).success || !conversationIdSchema.safeParse(id).success) {
      queries.inc({ outcome: "bad_request" });
      answer(400, { error: "not a tenant and conversation id" });
      return true;
    }
    options.memory.lookup(partition, conversationKey({ tenant, conversation_id: id }), RESTORE_WAIT_MS).then(
      (found) => {
        if (!found.owned) {
          queries.inc({ outcome: "not_owner" });
          answer(421, { error: `this worker does not own partition ${partition}` });
        } else if (!found.state) {
          queries.inc({ outcome: "not_found" });
          // `found: false` tells this 404 from one of a server that has no such route.
          answer(404, { error: "no such conversation", found: false });
        } else {
          queries.inc({ outcome: "found" });
          answer(200, { state: found.state });
        }
      },
      (err: unknown) => {
        queries.inc({ outcome: "unavailable" });
        log.warn({ err, partition }, "conversation read not answered: the partition's memory is not readable yet");
        answer(503, { error: `partition ${partition}'s memory is not restored yet` });
      },
    );
    return true;
  };
}

/** A JSON answer, with the signature header `sign` makes of its bytes. */
function send(res: http.ServerResponse, status: number, body: unknown, sign?: (bytes: Buffer) => string): void {
  const bytes = Buffer.from(JSON.stringify(body), "utf8");
  res.writeHead(status, { "content-type": "application/json", ...(sign && { [ANSWER_SIGNATURE_HEADER]: sign(bytes) }) });
  res.end(bytes);
}
