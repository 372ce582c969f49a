/**
 * Conversations: open one, send a message (a turn), append messages, read the history or
 * the prompt memory, delete it. Everything that changes a conversation is a request on
 * chat.requests, applied in order by the worker that owns the conversation's partition;
 * conversation and memory reads are answered by that worker (gateway/kafka/owners.ts),
 * history reads come from chat.history at exact offsets.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { SCHEMA_VERSION, conversationIdSchema } from "../../contracts/records/fields.js";
import type { ChatRequest } from "../../contracts/records/requests.js";
import type { GatewayDeps } from "../deps.js";
import { parseInput } from "../errors.js";
import { KEY_SCOPES, awaitTerminal, errorOfEvent, findConversation, idempotencyKeyOf, keyedRequestId, requestLinks, submit } from "../intake.js";
import { historyHead, readHistory } from "../history/read.js";
import {
  appendHistoryBody,
  emptyQuery,
  historyQuery,
  memoryQuery,
  objectBody,
  openConversationBody,
  openConversationQuery,
  paramsOf,
  postMessageBody,
} from "./schemas.js";

type IdParams = { id: string };

export function registerConversationRoutes(app: FastifyInstance, deps: GatewayDeps): void {
  const maxChars = deps.config.maxContentChars;
  const messageBody = postMessageBody(maxChars);
  const openBody = openConversationBody(maxChars);
  const appendBody = appendHistoryBody(maxChars);

  /** The request's terminal event once applied, or null past GATEWAY_APPLY_WAIT_MS. */
  async function applied(requestId: string) {
    // 0: never wait, even for a worker quick enough to have applied it already (202 at once).
    if (deps.config.applyWaitMs === 0) return null;
    // A plain timer, not AbortSignal.timeout(): that one is unref'd and would not keep the wait alive by itself.
    const wait = new AbortController();
    const timer = setTimeout(() => wait.abort(), Math.min(deps.config.applyWaitMs, deps.config.requests.deadlineMs));
    try {
      return await awaitTerminal(deps, requestId, wait.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Opens a conversation with a new id; the greeting (when asked) comes as the open request's
   * reply. Under an Idempotency-Key the conversation and request ids are derived from it, so
   * a retry opens the same conversation, once.
   */
  app.post("/v1/conversations", async (request, reply) => {
    const key = idempotencyKeyOf(request.headers);
    const query = parseInput(openConversationQuery, request.query, "query");
    const body = parseInput(openBody, objectBody(request.body, '{"greeting": true}', true), "body");
    const requestId = key === undefined ? randomUUID() : keyedRequestId(request.tenant, KEY_SCOPES.open, key);
    // The request id names one request of this tenant; as a conversation id it is as unique.
    const id = key === undefined ? randomUUID() : requestId;
    const open: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "open",
      request_id: requestId,
      conversation_id: id,
      tenant: request.tenant,
      greeting: body.greeting ?? query.greeting ?? false,
      ...(body.system === undefined ? {} : { system: body.system }),
      created_at: Date.now(),
    };
    await submit(deps, open, request.log, { keyed: key !== undefined });
    return reply
      .code(201)
      .header("location", `/v1/conversations/${id}`)
      .send({ id, request_id: open.request_id, messages_url: `/v1/conversations/${id}/messages`, ...requestLinks(open.request_id) });
  });

  /** A turn: the reply streams from events_url, or can be polled at status_url. */
  app.post<{ Params: IdParams }>("/v1/conversations/:id/messages", async (request, reply) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(emptyQuery, request.query, "query");
    const body = parseInput(messageBody, objectBody(request.body, '{"content": "Hello"}'), "body");
    const params = paramsOf(body);
    const key = idempotencyKeyOf(request.headers);
    const turn: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "turn",
      request_id: key === undefined ? randomUUID() : keyedRequestId(request.tenant, conversationId, key),
      conversation_id: conversationId,
      tenant: request.tenant,
      content: body.content,
      ...(body.system === undefined ? {} : { system: body.system }),
      ...(params === undefined ? {} : { params }),
      created_at: Date.now(),
    };
    await submit(deps, turn, request.log, { keyed: key !== undefined });
    return reply.code(202).send({ request_id: turn.request_id, conversation_id: conversationId, ...requestLinks(turn.request_id) });
  });

  /** What is stored about a conversation, without its messages. */
  app.get<{ Params: IdParams }>("/v1/conversations/:id", async (request) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(emptyQuery, request.query, "query");
    const state = await findConversation(deps, conversationId, request.tenant);
    return {
      id: conversationId,
      system: state.system ?? null,
      message_count: state.messages.length,
      turns: state.turns,
      created_at: state.created_at,
      updated_at: state.updated_at,
    };
  });

  /**
   * The whole conversation from chat.history, a page at a time, oldest first: from an end,
   * after or before a cursor, within since/until, or where a named reader stopped.
   */
  app.get<{ Params: IdParams }>("/v1/conversations/:id/messages", async (request) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    const query = parseInput(historyQuery, request.query, "query");
    return readHistory(deps, conversationId, request.tenant, query);
  });

  /**
   * The prompt memory, oldest first: what the worker remembers for the next prompt, trimmed
   * to its token budget (MEMORY_MAX_TOKENS), with the system prompt.
   */
  app.get<{ Params: IdParams }>("/v1/conversations/:id/memory", async (request) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    const query = parseInput(memoryQuery, request.query, "query");
    const state = await findConversation(deps, conversationId, request.tenant);
    const all = state.messages;
    const messages = query.from === "beginning" ? all.slice(0, query.limit) : all.slice(Math.max(0, all.length - query.limit));
    return {
      conversation_id: conversationId,
      system: state.system ?? null,
      messages,
      total: all.length,
      has_more: messages.length < all.length,
      turns: state.turns,
      updated_at: state.updated_at,
    };
  });

  /**
   * Appends messages without a reply (what LangChain's addMessages does), in order with the
   * conversation's turns; creates the conversation when new. 200 once a worker applied it
   * within GATEWAY_APPLY_WAIT_MS, else 202 with the request to follow.
   */
  app.post<{ Params: IdParams }>("/v1/conversations/:id/history", async (request, reply) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(emptyQuery, request.query, "query");
    const body = parseInput(appendBody, objectBody(request.body, '{"messages": [{"role": "user", "content": "Hello"}]}'), "body");
    const key = idempotencyKeyOf(request.headers);
    const append: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "append",
      request_id: key === undefined ? randomUUID() : keyedRequestId(request.tenant, conversationId, key),
      conversation_id: conversationId,
      tenant: request.tenant,
      messages: body.messages,
      created_at: Date.now(),
    };
    await submit(deps, append, request.log, { keyed: key !== undefined });
    const outcome = await applied(append.request_id);
    if (outcome === null) return reply.code(202).send({ request_id: append.request_id, conversation_id: conversationId, ...requestLinks(append.request_id) });
    if (outcome.type === "error") throw errorOfEvent(outcome);
    const { head } = await historyHead(deps, conversationId, request.tenant);
    return { conversation_id: conversationId, request_id: append.request_id, appended: body.messages.length, total: head?.messages ?? 0 };
  });

  /**
   * Deletes a conversation. The deletion is queued behind the conversation's pending turns;
   * 204 once a worker applied it within GATEWAY_APPLY_WAIT_MS, else 202 with the request
   * to follow (it will still be applied).
   */
  app.delete<{ Params: IdParams }>("/v1/conversations/:id", async (request, reply) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(emptyQuery, request.query, "query");
    await findConversation(deps, conversationId, request.tenant);
    const del: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "delete",
      request_id: randomUUID(),
      conversation_id: conversationId,
      tenant: request.tenant,
      created_at: Date.now(),
    };
    await submit(deps, del, request.log);
    const outcome = await applied(del.request_id);
    if (outcome === null) return reply.code(202).send({ request_id: del.request_id, conversation_id: conversationId, ...requestLinks(del.request_id) });
    if (outcome.type === "error") throw errorOfEvent(outcome);
    return reply.code(204).send();
  });
}
