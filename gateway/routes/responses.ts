/**
 * OpenAI's Responses API: POST /v1/responses, GET (poll, or stream with `starting_after`),
 * cancel, delete and input_items. A response is a turn of a conversation (see
 * gateway/openai/response-id.ts): a stored response without `previous_response_id` or
 * `conversation` opens a conversation, and a response that continues one is a turn of it,
 * so its prompt is built from the memory the owning worker holds (and its KV cache).
 * `store: false` is a stateless turn: nothing is kept, and it cannot be retrieved.
 *
 * Any replica answers for any response: a recent one from the event hub (every replica
 * reads every request), an older one from its conversation's memory and history.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import type { ChatEvent, FinalEvent } from "../../contracts/records/events.js";
import { requestIdDigest, type ConversationState } from "../../contracts/records/memory.js";
import type { ContextMessage, DeleteRequest, TurnRequest } from "../../contracts/records/requests.js";
import type { GatewayDeps } from "../deps.js";
import { ApiError, notFound, parseInput } from "../errors.js";
import type { RequestSnapshot } from "../event-hub.js";
import { recordPoll } from "../tracing.js";
import { KEY_SCOPES, awaitTerminal, cancel, errorOfEvent, findConversation, findRequest, idempotencyKeyOf, keyedRequestId, submit } from "../intake.js";
import { messagesOfRequest } from "../history/request-messages.js";
import { messageItem } from "../openai/conversation-items.js";
import { parseResponseId, responseId, type ResponseRef } from "../openai/response-id.js";
import { checkToolOutputs, parseResponsesBody, splitNews, type ResponseInput } from "../openai/responses-request.js";
import { ResponseStreamBuilder, defaultBase, responseObject, stateOfEvents, type ResponseBase } from "../openai/responses-object.js";
import { SseWriter } from "../sse.js";
import { deadlineError } from "./requests.js";
import { awaitReply, cancelForDisconnect } from "./reply-wait.js";
import { objectBody } from "./schemas.js";

const openai = { config: { dialect: "openai" as const } };
type IdParams = { id: string };

export const retrieveQuery = z
  .object({
    stream: z.enum(["true", "false"], { error: 'must be "true" or "false"' }).optional(),
    starting_after: z.coerce.number().int("must be an integer").min(-1).optional(),
    include: z.union([z.string(), z.array(z.string())]).optional(),
    "include[]": z.union([z.string(), z.array(z.string())]).optional(),
    include_obfuscation: z.string().optional(),
  })
  .strict();

export const inputItemsQuery = z
  .object({
    limit: z.coerce.number().int("must be an integer").min(1, "must be >= 1").max(100, "must be <= 100").optional(),
    order: z.enum(["asc", "desc"], { error: 'must be "asc" or "desc"' }).optional(),
    after: z.string().max(256).optional(),
    include: z.union([z.string(), z.array(z.string())]).optional(),
    "include[]": z.union([z.string(), z.array(z.string())]).optional(),
  })
  .strict();

export function registerResponseRoutes(app: FastifyInstance, deps: GatewayDeps): void {
  app.post("/v1/responses", openai, async (request, reply) => {
    const input = parseResponsesBody(objectBody(request.body, '{"model": "...", "input": "Hello"}'), deps.config.maxContentChars);
    const key = idempotencyKeyOf(request.headers);
    const made = await turnFor(deps, input, request.tenant, key);
    const { ref } = made;
    const turn: TurnRequest = { ...made.turn, model: input.body.model };
    await submit(deps, turn, request.log, { keyed: key !== undefined });
    const id = responseId(ref);
    const base = baseOf(deps, input, id, turn);
    reply.header("x-request-id", turn.request_id);
    if (input.leftOut.length > 0) {
      // Hosted tools are not run here: the model was not offered them.
      reply.header("x-kafka-llm-tools-left-out", [...new Set(input.leftOut)].join(", "));
      request.log.info({ request_id: turn.request_id, left_out: input.leftOut }, "hosted tools left out of the response's tools");
    }
    if (input.stream) return streamResponse(deps, request, reply, turn, base, null, input.background);
    if (input.background) return reply.send(responseObject(base, { status: "queued", text: "", toolCalls: [], usage: null, error: null }));
    return wholeResponse(deps, request, reply, turn, base);
  });

  app.get<{ Params: IdParams }>("/v1/responses/:id", openai, async (request, reply) => {
    const startedAt = Date.now();
    const ref = refOf(request.params.id);
    const query = parseInput(retrieveQuery, request.query, "query");
    const found = await findResponse(deps, ref, request.params.id, request.tenant);
    if (found.kind === "live") {
      recordPoll(found.snapshot.traceparent, startedAt, () => ({
        "kafka_llm.request.id": ref.requestId,
        "kafka_llm.response.status": stateOfEvents(found.snapshot.events).status,
        "kafka_llm.stream": query.stream === "true",
      }));
    }
    if (query.stream === "true") {
      reply.header("x-request-id", ref.requestId);
      const events = found.kind === "live" ? null : found.events;
      return streamResponse(deps, request, reply, { request_id: ref.requestId, tenant: request.tenant }, found.base, events, true, query.starting_after ?? -1);
    }
    return found.kind === "live" ? responseObject(found.base, stateOfEvents(found.snapshot.events)) : responseObject(found.base, stateOfEvents(found.events));
  });

  /** Stops a response being generated; it ends as "cancelled" with the text so far. Idempotent. */
  app.post<{ Params: IdParams }>("/v1/responses/:id/cancel", openai, async (request) => {
    idempotencyKeyOf(request.headers);
    const ref = refOf(request.params.id);
    const found = await findResponse(deps, ref, request.params.id, request.tenant);
    if (found.kind === "stored") return responseObject(found.base, stateOfEvents(found.events));
    if (!found.snapshot.done) {
      await cancel(deps, ref.requestId, request.tenant, "cancelled by the client", "api");
      request.log.info({ request_id: ref.requestId }, "response cancel requested");
      await waitBriefly(deps, ref.requestId);
    }
    return responseObject(found.base, stateOfEvents(deps.hub.get(ref.requestId)?.events ?? found.snapshot.events));
  });

  /**
   * Deletes a stored response. A response is a turn of a conversation, and the history
   * keeps every turn: deleting the response that opened a conversation (or any response of
   * it) deletes that conversation, with every response in it. A response in a conversation
   * the client named is deleted with that conversation (DELETE /v1/conversations/{id}).
   */
  app.delete<{ Params: IdParams }>("/v1/responses/:id", openai, async (request) => {
    const ref = refOf(request.params.id);
    if (ref.kind === "stateless") throw notFound(`no response ${request.params.id} is stored (responses made with store: false are not kept)`);
    if (ref.kind === "named") {
      throw new ApiError(
        "invalid_request",
        `response ${request.params.id} is a turn of conversation ${ref.conversationId}, whose history keeps it: delete the conversation (DELETE /v1/conversations/${ref.conversationId})`,
      );
    }
    await findConversation(deps, ref.conversationId, request.tenant).catch((err: unknown) => {
      throw err instanceof ApiError && err.code === "not_found"
        ? notFound(`no response ${request.params.id} (its conversation was deleted or has expired)`)
        : err;
    });
    const del: DeleteRequest = {
      v: SCHEMA_VERSION,
      type: "delete",
      request_id: randomUUID(),
      conversation_id: ref.conversationId,
      tenant: request.tenant,
      created_at: Date.now(),
    };
    await submit(deps, del, request.log);
    const outcome = await waitBriefly(deps, del.request_id);
    if (outcome?.type === "error") throw errorOfEvent(outcome);
    return { id: request.params.id, object: "response", deleted: true };
  });

  /** The items a stored response was given, from its conversation's history. */
  app.get<{ Params: IdParams }>("/v1/responses/:id/input_items", openai, async (request) => {
    const ref = refOf(request.params.id);
    const query = parseInput(inputItemsQuery, request.query, "query");
    if (ref.kind === "stateless") throw notFound(`no response ${request.params.id} is stored (responses made with store: false are not kept)`);
    const found = await findResponse(deps, ref, request.params.id, request.tenant);
    const reply = found.kind === "live" ? stateOfEvents(found.snapshot.events).text : stateOfEvents(found.events).text;
    const { epoch, messages } = await messagesOfRequest(deps, ref.conversationId, request.tenant, ref.requestId);
    // The reply is the request's last message; what came before it is what the response was given.
    const inputs = messages.at(-1)?.role === "assistant" && messages.at(-1)!.content === reply && reply !== "" ? messages.slice(0, -1) : messages;
    // The same items, with the same ids, as the conversation's (GET /v1/conversations/{id}/items).
    let items = inputs.map((m) => messageItem(epoch, m));
    if ((query.order ?? "desc") === "desc") items = items.reverse();
    if (query.after !== undefined) {
      const at = items.findIndex((i) => i.id === query.after);
      if (at < 0) throw new ApiError("invalid_request", `query after: ${query.after} is no input item of this response`, { param: "after" });
      items = items.slice(at + 1);
    }
    const page = items.slice(0, query.limit ?? 20);
    return { object: "list", data: page, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: page.length < items.length };
  });
}

function refOf(id: string): ResponseRef {
  const ref = parseResponseId(id);
  if (ref === null) throw notFound(`no response ${id} (response ids look like resp_…)`);
  return ref;
}

/** The turn a request makes, and the response it is. */
async function turnFor(deps: GatewayDeps, input: ResponseInput, tenant: string, key: string | undefined): Promise<{ turn: TurnRequest; ref: ResponseRef }> {
  const news = splitNews(input.messages);
  const base: Pick<TurnRequest, "v" | "type" | "tenant" | "params" | "created_at"> = {
    v: SCHEMA_VERSION,
    type: "turn",
    tenant,
    ...(input.params === undefined ? {} : { params: input.params }),
    created_at: Date.now(),
  };
  const previous = input.body.previous_response_id ?? undefined;

  // The conversation this response continues, and its state now.
  let conversationId: string | undefined;
  let state: ConversationState | undefined;
  let kind: "chain" | "named" = "chain";
  if (previous !== undefined) {
    const ref = parseResponseId(previous);
    if (ref === null || ref.kind === "stateless")
      throw notFound(`previous_response_id: no response ${previous} is stored (responses made with store: false are not kept)`);
    conversationId = ref.conversationId;
    kind = ref.kind;
    state = await conversationOf(
      deps,
      ref.conversationId,
      tenant,
      `previous_response_id: no response ${previous} (its conversation was deleted or has expired)`,
    );
    // A keyed retry of this very continuation finds it applied already: not a branch.
    const retried = key !== undefined && input.store ? keyedRequestId(tenant, ref.conversationId, key) : undefined;
    await checkLatest(deps, state, ref.requestId, previous, retried);
  } else if (input.conversation !== undefined) {
    conversationId = input.conversation;
    kind = "named";
    state = await conversationOf(deps, conversationId, tenant, `conversation: no conversation ${conversationId}; create it with POST /v1/conversations`);
  }

  if (!input.store) {
    // Nothing is kept: the whole context travels in the record, the remembered part included.
    const remembered: ContextMessage[] = (state?.messages ?? []).map((m) => ({
      role: m.role,
      content: m.content,
      ...(m.tool_calls ? { tool_calls: m.tool_calls } : {}),
      ...(m.tool_call_id === undefined ? {} : { tool_call_id: m.tool_call_id }),
    }));
    const system = input.system ?? state?.system;
    const context = [...(system === undefined ? [] : [{ role: "system" as const, content: system }]), ...remembered, ...news.before];
    checkToolOutputs([...context, ...toolMessages(news.toolResults)]);
    const requestId = key === undefined ? randomUUID() : keyedRequestId(tenant, KEY_SCOPES.response, key);
    const turn: TurnRequest = {
      ...base,
      request_id: requestId,
      conversation_id: requestId,
      content: news.content,
      context: news.toolResults === undefined ? context : [...context, ...toolMessages(news.toolResults)],
    };
    return { turn, ref: { kind: "stateless", requestId } };
  }

  const known = new Set((state?.messages ?? []).flatMap((m) => (m.tool_calls ?? []).map((c) => c.id)));
  checkToolOutputs([...news.before, ...toolMessages(news.toolResults)], known);
  const requestId = key === undefined ? randomUUID() : keyedRequestId(tenant, conversationId ?? KEY_SCOPES.response, key);
  const id = conversationId ?? requestId;
  const turn: TurnRequest = {
    ...base,
    request_id: requestId,
    conversation_id: id,
    content: news.content,
    ...(news.toolResults === undefined ? {} : { tool_results: news.toolResults }),
    ...(news.before.length === 0 ? {} : { prelude: news.before }),
    ...(input.system === undefined ? {} : { system: input.system }),
  };
  return { turn, ref: { kind, requestId, conversationId: id } };
}

const toolMessages = (results: Array<{ tool_call_id: string; content: string }> | undefined): ContextMessage[] =>
  (results ?? []).map((r) => ({ role: "tool", content: r.content, tool_call_id: r.tool_call_id }));

async function conversationOf(deps: GatewayDeps, conversationId: string, tenant: string, missing: string): Promise<ConversationState> {
  try {
    // A response in a conversation opened a moment ago (OpenAI's clients create, then respond) finds it.
    return await findConversation(deps, conversationId, tenant, { waitForOpen: true });
  } catch (err) {
    if (err instanceof ApiError && err.code === "not_found") throw notFound(missing);
    throw err;
  }
}

/**
 * A conversation goes on from its latest response: `previous_response_id` must name the
 * request it applied last, or one still on its way (queued behind it, it will be), unless
 * this request is the keyed retry (`retried`, its id) of one made from it.
 */
async function checkLatest(deps: GatewayDeps, state: ConversationState, requestId: string, previous: string, retried: string | undefined): Promise<void> {
  const newest = state.applied.at(-1);
  if (newest !== undefined && !Array.isArray(newest) && newest.request_id === requestId) return;
  if (
    retried !== undefined &&
    (deps.hub.has(retried) || state.applied.some((a) => (Array.isArray(a) ? a[0] === requestIdDigest(retried) : a.request_id === retried)))
  )
    return;
  // Accepted a moment ago at another replica: this one reads it within a few ms.
  if (!deps.hub.has(requestId)) await deps.hub.whenKnown(requestId, deps.config.requests.unknownWaitMs);
  const pending = deps.hub.get(requestId);
  if (pending !== undefined && !pending.done) return;
  throw new ApiError(
    "invalid_request",
    `previous_response_id: ${previous} is not the latest response of its conversation, which has gone on since; continue from its latest response (a conversation here does not branch)`,
    { param: "previous_response_id" },
  );
}

function baseOf(deps: GatewayDeps, input: ResponseInput, id: string, turn: TurnRequest): ResponseBase {
  const body = input.body;
  const base = defaultBase(
    id,
    turn.request_id,
    turn.model ?? deps.config.modelName,
    Math.floor(turn.created_at / 1000),
    input.store && turn.context === undefined ? turn.conversation_id : null,
    input.store,
  );
  return {
    ...base,
    background: input.background,
    instructions: body.instructions ?? null,
    previousResponseId: body.previous_response_id ?? null,
    maxOutputTokens: body.max_output_tokens ?? null,
    temperature: body.temperature ?? null,
    topP: body.top_p ?? null,
    metadata: body.metadata ?? {},
    tools: input.tools.map((t) => ({ ...t, strict: t.strict ?? false, parameters: t.parameters ?? null, description: t.description ?? null })),
    namespaces: input.namespaces,
    toolChoice: body.tool_choice ?? "auto",
    parallelToolCalls: body.parallel_tool_calls ?? true,
    text: { format: body.text?.format ?? { type: "text" } },
    truncation: body.truncation ?? "disabled",
  };
}

type Found = { kind: "live"; base: ResponseBase; snapshot: RequestSnapshot } | { kind: "stored"; base: ResponseBase; events: ChatEvent[] };

/**
 * A response, wherever it is: the hub while its request is recent (any replica reads
 * every request), else its conversation's memory (the newest response's final) and history.
 */
async function findResponse(deps: GatewayDeps, ref: ResponseRef, id: string, tenant: string): Promise<Found> {
  const conversationId = ref.kind === "stateless" ? null : ref.conversationId;
  const stateless = ref.kind === "stateless";
  const gone = () => notFound(`no response ${id}${stateless ? " is stored (responses made with store: false are not kept)" : ""}`);
  // A stateless response is not kept: only its own stream may follow it.
  if (stateless) throw gone();
  try {
    const snapshot = await findRequest(deps, ref.requestId, tenant);
    // Once it ended, its conversation decides whether it is still kept (deleted or expired: not).
    if (snapshot.done) await conversationOf(deps, ref.conversationId, tenant, `no response ${id} (its conversation was deleted or has expired)`);
    const base = defaultBase(id, ref.requestId, deps.config.modelName, Math.floor((snapshot.events[0]?.at ?? Date.now()) / 1000), conversationId, true);
    return { kind: "live", base, snapshot };
  } catch (err) {
    if (!(err instanceof ApiError && err.code === "not_found")) throw err;
  }
  const state = await conversationOf(deps, ref.conversationId, tenant, `no response ${id} (its conversation was deleted or has expired)`);
  const base = defaultBase(id, ref.requestId, deps.config.modelName, Math.floor(state.created_at / 1000), conversationId, true);
  const newest = state.applied.at(-1);
  const { messages } = await messagesOfRequest(deps, ref.conversationId, tenant, ref.requestId);
  const reply = messages.filter((m) => m.role === "assistant").at(-1)?.content ?? "";
  const event = { v: SCHEMA_VERSION, request_id: ref.requestId, conversation_id: ref.conversationId, tenant, attempt: "stored", at: state.updated_at } as const;
  if (newest !== undefined && !Array.isArray(newest) && newest.request_id === ref.requestId && newest.final !== undefined) {
    const final = newest.final;
    base.createdAt = Math.floor(final.at / 1000);
    if (final.type === "error") return { kind: "stored", base, events: [{ ...final }] };
    const { choices, ...rest } = final;
    const whole: FinalEvent = {
      ...rest,
      reply: final.reply ?? reply,
      ...(choices ? { choices: choices.map((c) => ({ ...c, reply: c.reply ?? reply })) } : {}),
    };
    return { kind: "stored", base, events: [{ ...event, type: "start", seq: 0, worker_id: "" }, whole] };
  }
  if (messages.length === 0) throw notFound(`no response ${id} is kept any more (its conversation keeps the turns its history still holds)`);
  const final: FinalEvent = {
    ...event,
    type: "final",
    seq: 1,
    reply,
    stop_reason: "stop",
    usage: { prompt_tokens: 0, cached_prompt_tokens: 0, completion_tokens: 0 },
    timings: { queue_wait_ms: 0, time_to_first_token_ms: 0, generation_ms: 0 },
  };
  base.createdAt = Math.floor((messages[0]?.created_at ?? state.updated_at) / 1000);
  // What the history keeps is the text; usage is kept for the newest response only.
  return {
    kind: "stored",
    base,
    events: [
      { ...event, type: "start", seq: 0, worker_id: "" },
      { ...final, usage: final.usage },
    ],
  };
}

/** The request's terminal event within GATEWAY_APPLY_WAIT_MS, else null. */
async function waitBriefly(deps: GatewayDeps, requestId: string) {
  const wait = new AbortController();
  const timer = setTimeout(() => wait.abort(), Math.max(1, Math.min(deps.config.applyWaitMs, deps.config.requests.deadlineMs)));
  try {
    return await awaitTerminal(deps, requestId, wait.signal);
  } finally {
    clearTimeout(timer);
  }
}

async function wholeResponse(deps: GatewayDeps, request: FastifyRequest, reply: FastifyReply, turn: TurnRequest, base: ResponseBase) {
  const terminal = await awaitReply(deps, request, reply, turn);
  return reply.send(responseObject(base, stateOfEvents(deps.hub.get(turn.request_id)?.events ?? [terminal])));
}

/**
 * Streams a response's events. `events`: a stored response's events (no request to follow);
 * null: follow the request in the hub. `keep`: a client that leaves does not cancel it (a
 * background response, or a stream resumed by GET). `after`: the last sequence number the
 * client has.
 */
function streamResponse(
  deps: GatewayDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  turn: Pick<TurnRequest, "request_id" | "tenant">,
  base: ResponseBase,
  events: ChatEvent[] | null,
  keep: boolean,
  after = -1,
): void {
  reply.hijack();
  const sse = new SseWriter(reply.raw, deps.config.sseKeepaliveMs, { "x-request-id": turn.request_id });
  const builder = new ResponseStreamBuilder(base);
  let stop: (() => void) | null = null;
  const end = () => {
    stop?.();
    sse.end();
  };
  const flush = () => {
    for (const e of builder.take()) if (e.sequence_number > after) sse.frame(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  };
  const onEvent = (event: ChatEvent) => {
    if (sse.ended) return;
    builder.push(event);
    flush();
    if (builder.done) setImmediate(end);
  };
  flush();
  if (events !== null) {
    for (const e of events) onEvent(e);
    return end();
  }
  sse.onClose((early) => {
    stop?.();
    if (early && !keep) void cancelForDisconnect(deps, request, turn);
  });
  stop = deps.hub.follow(turn.request_id, null, onEvent);
  sse.expireAfter(deps.config.requests.deadlineMs, () => {
    if (deps.hub.get(turn.request_id)?.done) return end();
    const error = deadlineError(turn.request_id, deps.config.requests.deadlineMs);
    builder.error(error.code, error.message);
    flush();
    end();
  });
  if (stop === null) {
    builder.error("generation_failed", "the request is no longer tracked");
    flush();
    end();
  }
}
