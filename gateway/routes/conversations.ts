/**
 * Conversations: open one, send a message (a turn), read the stored history, delete it.
 * Everything that changes a conversation is a request on chat.requests, applied in order
 * by the worker that owns the conversation's partition; reads come from the memory view.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { SCHEMA_VERSION, conversationIdSchema, type ChatRequest } from "../../contracts/records.js";
import type { GatewayDeps } from "../deps.js";
import { parseInput } from "../errors.js";
import { assertNotForeign, awaitTerminal, errorOfEvent, findConversation, newRequestId, requestLinks, submit } from "../intake.js";
import { emptyQuery, historyQuery, objectBody, openConversationBody, openConversationQuery, paramsOf, postMessageBody } from "./schemas.js";

type IdParams = { id: string };

export function registerConversationRoutes(app: FastifyInstance, deps: GatewayDeps): void {
  const maxChars = deps.config.maxContentChars;
  const messageBody = postMessageBody(maxChars);
  const openBody = openConversationBody(maxChars);

  /** Opens a conversation with a new id; the greeting (when asked) comes as the open request's reply. */
  app.post("/v1/conversations", async (request, reply) => {
    const query = parseInput(openConversationQuery, request.query, "query");
    const body = parseInput(openBody, objectBody(request.body, '{"greeting": true}', true), "body");
    const id = randomUUID();
    const open: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "open",
      request_id: randomUUID(),
      conversation_id: id,
      tenant: request.tenant,
      greeting: body.greeting ?? query.greeting ?? false,
      ...(body.system === undefined ? {} : { system: body.system }),
      created_at: Date.now(),
    };
    await submit(deps, open, request.log);
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
    assertNotForeign(deps, conversationId, request.tenant);
    const params = paramsOf(body);
    const turn: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "turn",
      request_id: newRequestId(request.tenant, conversationId, request.headers["idempotency-key"]),
      conversation_id: conversationId,
      tenant: request.tenant,
      content: body.content,
      ...(body.system === undefined ? {} : { system: body.system }),
      ...(params === undefined ? {} : { params }),
      created_at: Date.now(),
    };
    await submit(deps, turn, request.log);
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
   * The stored history, oldest first. `from=latest&limit=n` gives the last n messages,
   * `from=beginning&limit=n` the first n. It is what the worker remembers: trimmed to its
   * memory budget, so the oldest turns of a long conversation are gone.
   */
  app.get<{ Params: IdParams }>("/v1/conversations/:id/messages", async (request) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    const query = parseInput(historyQuery, request.query, "query");
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
    // A plain timer, not AbortSignal.timeout(): that one is unref'd and would not keep the wait alive by itself.
    const wait = new AbortController();
    const timer = setTimeout(() => wait.abort(), deps.config.applyWaitMs);
    const outcome = await awaitTerminal(deps, del.request_id, wait.signal);
    clearTimeout(timer);
    if (outcome === null) return reply.code(202).send({ request_id: del.request_id, conversation_id: conversationId, ...requestLinks(del.request_id) });
    if (outcome.type === "error") throw errorOfEvent(outcome);
    return reply.code(204).send();
  });
}
