/**
 * Conversations: open one, send a message (a turn), append messages, read the history or
 * the prompt memory, delete it. Everything that changes a conversation is a request on
 * chat.requests, applied in order by the worker that owns the conversation's partition;
 * conversation and memory reads are answered by that worker (gateway/kafka/owners.ts),
 * history reads come from chat.history at exact offsets.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { SCHEMA_VERSION, conversationIdSchema } from "../../contracts/records/fields.js";
import type { ChatRequest, UpdateRequest } from "../../contracts/records/requests.js";
import type { ConversationState } from "../../contracts/records/memory.js";
import type { GatewayDeps } from "../deps.js";
import { notFound, parseInput } from "../errors.js";
import type { IndexedMessage } from "../history/chain-walk.js";
import { encodeCursor } from "../history/read-plan.js";
import { messagesOfRequest } from "../history/request-messages.js";
import { addItemsBody, includeQuery, itemIndex, itemsQuery, messageItem, updateConversationBody } from "../openai/conversation-items.js";
import { KEY_SCOPES, awaitTerminal, errorOfEvent, findConversation, idempotencyKeyOf, keyedRequestId, requestLinks, submit } from "../intake.js";
import { historyHead, readHistory } from "../history/read.js";
import {
  appendHistoryBody,
  type HistoryQuery,
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
      ...(body.metadata === undefined ? {} : { metadata: body.metadata }),
      created_at: Date.now(),
    };
    await submit(deps, open, request.log, { keyed: key !== undefined });
    // OpenAI's initial items: appended right after the open, in order with it.
    if (body.items !== undefined) {
      const append: ChatRequest = {
        v: SCHEMA_VERSION,
        type: "append",
        request_id: key === undefined ? randomUUID() : keyedRequestId(request.tenant, id, key),
        conversation_id: id,
        tenant: request.tenant,
        messages: body.items,
        created_at: Date.now(),
      };
      await submit(deps, append, request.log, { keyed: key !== undefined });
    }
    return reply
      .code(201)
      .header("location", `/v1/conversations/${id}`)
      .send({
        id,
        object: "conversation",
        created_at: Math.floor(open.created_at / 1000),
        metadata: body.metadata ?? {},
        request_id: open.request_id,
        messages_url: `/v1/conversations/${id}/messages`,
        ...requestLinks(open.request_id),
      });
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
      ...(body.model === undefined ? {} : { model: body.model }),
      ...(params === undefined ? {} : { params }),
      created_at: Date.now(),
    };
    await submit(deps, turn, request.log, { keyed: key !== undefined });
    return reply.code(202).send({ request_id: turn.request_id, conversation_id: conversationId, ...requestLinks(turn.request_id) });
  });

  /** What is stored about a conversation, without its messages: OpenAI's conversation object, with the native summary. */
  app.get<{ Params: IdParams }>("/v1/conversations/:id", async (request) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(emptyQuery, request.query, "query");
    return conversationObject(conversationId, await findConversation(deps, conversationId, request.tenant));
  });

  /** Replaces a conversation's metadata (OpenAI's Conversations API), in order with its turns. */
  app.post<{ Params: IdParams }>("/v1/conversations/:id", async (request, reply) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(emptyQuery, request.query, "query");
    const body = parseInput(updateConversationBody, objectBody(request.body, '{"metadata": {"topic": "cats"}}'), "body");
    const state = await findConversation(deps, conversationId, request.tenant);
    const { requestId, done } = await update(request, conversationId, { metadata: body.metadata });
    const updated = conversationObject(conversationId, { ...state, metadata: body.metadata });
    return done ? updated : reply.code(202).send({ ...updated, ...pending(requestId) });
  });

  /** A conversation's history as OpenAI's items, newest first unless order=asc. */
  app.get<{ Params: IdParams }>("/v1/conversations/:id/items", async (request) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    const query = parseInput(itemsQuery, request.query, "query");
    const limit = query.limit ?? 20;
    const desc = (query.order ?? "desc") === "desc";
    const { head } = await historyHead(deps, conversationId, request.tenant);
    const epoch = head?.epoch;
    let read: HistoryQuery;
    if (query.after === undefined) read = { from: desc ? "latest" : "beginning", limit };
    else {
      const at = encodeCursor(epoch ?? "", itemIndex(query.after, epoch));
      read = desc ? { before: at, limit } : { after: at, limit };
    }
    const page = await readHistory(deps, conversationId, request.tenant, read);
    const items = page.messages.map((m) => messageItem(epoch!, m));
    if (desc) items.reverse();
    return {
      object: "list",
      data: items,
      first_id: items[0]?.id ?? null,
      last_id: items.at(-1)?.id ?? null,
      has_more: desc ? page.has_more_before : page.has_more_after,
    };
  });

  /** Adds message items without a reply (as POST .../history does); 200 with the items once applied, else 202. */
  app.post<{ Params: IdParams }>("/v1/conversations/:id/items", async (request, reply) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(includeQuery, request.query, "query");
    const body = parseInput(addItemsBody(maxChars), objectBody(request.body, '{"items": [{"role": "user", "content": "Hello"}]}'), "body");
    await findConversation(deps, conversationId, request.tenant);
    const key = idempotencyKeyOf(request.headers);
    const append: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "append",
      request_id: key === undefined ? randomUUID() : keyedRequestId(request.tenant, conversationId, key),
      conversation_id: conversationId,
      tenant: request.tenant,
      messages: body.items,
      created_at: Date.now(),
    };
    await submit(deps, append, request.log, { keyed: key !== undefined });
    const outcome = await applied(append.request_id);
    if (outcome === null)
      return reply.code(202).send({ object: "list", data: [], first_id: null, last_id: null, has_more: false, ...pending(append.request_id) });
    if (outcome.type === "error") throw errorOfEvent(outcome);
    const { epoch, messages } = await messagesOfRequest(deps, conversationId, request.tenant, append.request_id);
    const items = messages.map((m) => messageItem(epoch, m));
    return { object: "list", data: items, first_id: items[0]?.id ?? null, last_id: items.at(-1)?.id ?? null, has_more: false };
  });

  app.get<{ Params: IdParams & { item: string } }>("/v1/conversations/:id/items/:item", async (request) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(includeQuery, request.query, "query");
    const { epoch, message } = await findItem(conversationId, request.tenant, request.params.item);
    return messageItem(epoch, message);
  });

  /**
   * Deletes an item: hidden from every history read from now on, and forgotten by the memory
   * (the next prompt lacks it). The history is append-only: its text stays in chat.history
   * until the topic's retention removes it.
   */
  app.delete<{ Params: IdParams & { item: string } }>("/v1/conversations/:id/items/:item", async (request, reply) => {
    const conversationId = parseInput(conversationIdSchema, request.params.id, "conversation id");
    parseInput(emptyQuery, request.query, "query");
    const { message } = await findItem(conversationId, request.tenant, request.params.item);
    const hide = { index: message.index, request_id: message.request_id, role: message.role, content: message.content };
    const { requestId, done } = await update(request, conversationId, { hide });
    const state = conversationObject(conversationId, await findConversation(deps, conversationId, request.tenant));
    return done ? state : reply.code(202).send({ ...state, ...pending(requestId) });
  });

  /** An item of the tenant's conversation, found in its history; 404 when deleted or never there. */
  async function findItem(conversationId: string, tenant: string, id: string): Promise<{ epoch: string; message: IndexedMessage }> {
    const { state, head } = await historyHead(deps, conversationId, tenant);
    const index = itemIndex(id, head?.epoch);
    if (!head || index >= head.messages || state.hidden?.includes(index)) throw notFound(`no item ${id} in this conversation`);
    const page = await readHistory(deps, conversationId, tenant, { before: encodeCursor(head.epoch, index + 1), limit: 1 });
    const message = page.messages.find((m) => m.index === index);
    if (!message) throw notFound(`no item ${id} in this conversation (past the history's retention)`);
    return { epoch: head.epoch, message };
  }

  /** Submits an update request; whether it was applied within the wait (its error thrown). */
  async function update(
    request: FastifyRequest,
    conversationId: string,
    change: Partial<Pick<UpdateRequest, "metadata" | "hide">>,
  ): Promise<{ requestId: string; done: boolean }> {
    const key = idempotencyKeyOf(request.headers);
    const req: UpdateRequest = {
      v: SCHEMA_VERSION,
      type: "update",
      request_id: key === undefined ? randomUUID() : keyedRequestId(request.tenant, conversationId, key),
      conversation_id: conversationId,
      tenant: request.tenant,
      ...change,
      created_at: Date.now(),
    };
    await submit(deps, req, request.log, { keyed: key !== undefined });
    const outcome = await applied(req.request_id);
    if (outcome?.type === "error") throw errorOfEvent(outcome);
    return { requestId: req.request_id, done: outcome !== null };
  }

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
    const deleted = { id: conversationId, object: "conversation.deleted", conversation_id: conversationId };
    if (outcome === null) return reply.code(202).send({ ...deleted, deleted: false, ...pending(del.request_id) });
    if (outcome.type === "error") throw errorOfEvent(outcome);
    return { ...deleted, deleted: true };
  });
}

/**
 * A conversation as OpenAI's Conversations API shows it (id, object, created_at in Unix
 * seconds, metadata), with the native summary: its system prompt, how many messages the
 * memory holds, how many requests it applied, and when it last changed (Unix seconds).
 */
function conversationObject(id: string, state: ConversationState) {
  return {
    id,
    object: "conversation" as const,
    created_at: Math.floor(state.created_at / 1000),
    metadata: state.metadata ?? {},
    system: state.system ?? null,
    message_count: state.messages.length,
    turns: state.turns,
    updated_at: Math.floor(state.updated_at / 1000),
  };
}

/** What a 202 carries: the request still to be applied, to follow. */
function pending(requestId: string) {
  return { request_id: requestId, ...requestLinks(requestId) };
}
