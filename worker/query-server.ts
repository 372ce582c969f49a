/**
 * Conversation reads for the gateways, on the worker's ops port (Kafka Streams' interactive
 * queries): the worker that owns partition p of chat.requests holds partition p of
 * chat.memory, so it answers for the conversations there, and no gateway keeps a copy.
 *
 *   GET /internal/v1/partitions/{p}/conversations/{id}
 *     200 { state }  the conversation as the log has it (restored, caught up)
 *     404            this worker owns p and has no such conversation ({ found: false })
 *     421            this worker does not own p (any more): the gateway asks the group again
 *     503            the partition's restore did not finish within the bound
 *     401            KAFKA_LLM_INTERNAL_TOKEN is set and the request does not carry it
 *
 * The worker advertises where it answers in its group member's client.id
 * (`<KAFKA_CLIENT_ID>@http://HOST:PORT`), which a gateway reads with the group's description.
 */
import { timingSafeEqual } from "node:crypto";
import type http from "node:http";
import os from "node:os";
import { Counter, type Registry } from "prom-client";
import { conversationIdSchema, type ConversationState } from "../contracts/records.js";
import type { Logger } from "../platform/logger.js";
import { send, type OpsRoute } from "../platform/ops-server.js";

export const QUERY_PATH = /^\/internal\/v1\/partitions\/(\d{1,6})\/conversations\/([^/]+)$/;
/** How long a read may wait for its partition's restore before 503 (the gateway retries within its own bound). */
const RESTORE_WAIT_MS = 5000;

/** What the endpoint needs of the memory store. */
export interface ConversationSource {
  lookup(partition: number, conversationId: string, timeoutMs?: number): Promise<{ owned: false } | { owned: true; state?: ConversationState }>;
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

export function queryRoute(options: { memory: ConversationSource; token: string; registry: Registry; logger: Logger }): OpsRoute {
  const log = options.logger.child({ component: "query-server" });
  const queries = new Counter({
    name: "kafka_llm_worker_conversation_queries_total",
    help: "Conversation reads gateways asked this worker, by outcome (found, not_found, not_owner, unavailable, unauthorized, bad_request)",
    labelNames: ["outcome"] as const,
    registers: [options.registry],
  });
  const expected = Buffer.from(`Bearer ${options.token}`);
  const authorized = (req: http.IncomingMessage) => {
    if (options.token === "") return true;
    const given = Buffer.from(req.headers.authorization ?? "");
    return given.length === expected.length && timingSafeEqual(given, expected);
  };

  return (req, res, path) => {
    if (!path.startsWith("/internal/")) return false;
    const match = QUERY_PATH.exec(path);
    if (!authorized(req)) {
      queries.inc({ outcome: "unauthorized" });
      send(res, 401, { error: "this route needs the internal token (KAFKA_LLM_INTERNAL_TOKEN) as a Bearer token" });
      return true;
    }
    if (!match) return false;
    const partition = Number(match[1]);
    let id: string;
    try {
      id = decodeURIComponent(match[2]!);
    } catch {
      id = "";
    }
    if (!conversationIdSchema.safeParse(id).success) {
      queries.inc({ outcome: "bad_request" });
      send(res, 400, { error: "not a conversation id" });
      return true;
    }
    options.memory.lookup(partition, id, RESTORE_WAIT_MS).then(
      (answer) => {
        if (!answer.owned) {
          queries.inc({ outcome: "not_owner" });
          send(res, 421, { error: `this worker does not own partition ${partition}` });
        } else if (!answer.state) {
          queries.inc({ outcome: "not_found" });
          // `found: false` tells this 404 from one of a server that has no such route.
          send(res, 404, { error: "no such conversation", found: false });
        } else {
          queries.inc({ outcome: "found" });
          send(res, 200, { state: answer.state });
        }
      },
      (err: unknown) => {
        queries.inc({ outcome: "unavailable" });
        log.warn({ err, partition }, "conversation read not answered: the partition's memory is not readable yet");
        send(res, 503, { error: `partition ${partition}'s memory is not restored yet` });
      },
    );
    return true;
  };
}
