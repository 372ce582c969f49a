/**
 * The OpenAPI 3.1 document of the gateway's HTTP API, generated from the zod schemas the
 * routes validate with (gateway/routes/schemas.ts, gateway/openai/request.ts, the id
 * schemas of contracts/records/) and the response schemas of ./responses.ts, so that
 * it cannot drift from what the routes accept. Served at GET /openapi.json and committed
 * as docs/openapi.json (scripts/interfaces.ts writes it; a unit test compares).
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, extendZodWithOpenApi, type ResponseConfig, type ZodMediaTypeObject } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";
import { chatEventSchema } from "../../contracts/records/events.js";
import { conversationIdSchema, requestIdSchema } from "../../contracts/records/fields.js";
import { HTTP_STATUS, type Dialect } from "../errors.js";
import { IDEMPOTENCY_KEY } from "../intake.js";
import { bodySchema as chatCompletionBodySchema } from "../openai/request.js";
import { responsesBodySchema } from "../openai/responses-request.js";
import { addItemsBody, includeQuery, itemsQuery, updateConversationBody } from "../openai/conversation-items.js";
import { inputItemsQuery, retrieveQuery } from "../routes/responses.js";
import {
  appendHistoryBody,
  cancelBody,
  eventsQuery,
  historyQueryFields,
  memoryQuery,
  openConversationBody,
  openConversationQuery,
  postMessageBody,
} from "../routes/schemas.js";
import * as r from "./responses.js";

extendZodWithOpenApi(z);

/**
 * The schema with the .openapi() method registering needs. zod 4 gives a schema the methods
 * extendZodWithOpenApi adds when the schema is made, not later, and the schemas of
 * contracts/ and ./responses.ts are made when their modules load, before the call above:
 * a clone made now has it.
 */
const withOpenApi = <T extends z.ZodType>(schema: T): T => schema.clone();

export interface OpenApiOptions {
  /** GATEWAY_MAX_CONTENT_CHARS: the bound on every text field. */
  maxContentChars: number;
}

/** The version of the HTTP API: its paths start with /v1. */
export const API_VERSION = "1";

const json = (schema: z.ZodType) => ({ "application/json": { schema } });

/**
 * The schema of one message of an SSE stream (its fields: event, id, data), which is how
 * OpenAPI 3.2 and schemathesis read a text/event-stream schema.
 */
function sseMessage(fields: Record<string, JsonSchema>, required: string[], description: string): MediaSchema {
  // JSON Schema 2020-12 (contentMediaType, contentSchema) is more than the library's types know.
  return { type: "object", description, properties: fields, required } as MediaSchema;
}

type JsonSchema = Record<string, unknown>;
type MediaSchema = ZodMediaTypeObject["schema"];

/**
 * Node's parser refuses a request whose URL and headers pass its limit before any route
 * runs (gateway/errors.ts, clientErrorHandler): any path may answer it, always in the
 * native error shape, since no route has been chosen.
 */
const HEADERS_TOO_LARGE = "The URL and the headers together are over 16 KiB (Node's limit); answered before any route runs, in the native error shape";

/** What each error status means, as the error catalog (gateway/errors.ts) maps codes. */
const ERROR_MEANING: Record<number, string> = {
  400: "Invalid input; the message says what to fix",
  401: "Missing or unknown API key",
  404: "No such resource for this tenant",
  409: "The request (by its Idempotency-Key) was applied before and its reply is no longer kept on chat.events; read it in the conversation's messages",
  422: "The Idempotency-Key was used for a different request (a retry must repeat the request unchanged)",
  413: "The body is larger than GATEWAY_BODY_LIMIT_BYTES",
  415: "The body is not JSON",
  500: "Internal error",
  502: "The worker could not generate a reply",
  429: "The tenant is past a quota (requests or tokens per minute, requests in flight, open streams, named history readers), or its share of the request tracker is all in use; retry after Retry-After seconds (x-ratelimit-* headers say more)",
  503: "Kafka is unreachable, the gateway is not ready yet or shutting down, its request tracker is full, or no worker answers for the conversation (none running, or its partition moving); retry after Retry-After seconds",
  504: "Not answered within GATEWAY_REQUEST_DEADLINE_MS; the body names the request, which goes on, to look up at /v1/requests/{id}",
};

type ErrorBodies = Record<Dialect, z.ZodType>;

function errorResponses(bodies: ErrorBodies) {
  return (dialect: Dialect, statuses: number[]): Record<number, ResponseConfig> => {
    const body = bodies[dialect];
    const out: Record<number, ResponseConfig> = {};
    for (const status of [...new Set([400, 500, ...statuses])].sort((a, b) => a - b)) {
      out[status] = { description: ERROR_MEANING[status] ?? `HTTP ${status}`, content: json(body) };
    }
    out[431] = { description: HEADERS_TOO_LARGE, content: json(bodies.native) };
    return out;
  };
}

/** Statuses every authenticated route may answer. */
const AUTHED = [HTTP_STATUS.unauthorized, HTTP_STATUS.kafka_unavailable];
const WITH_BODY = [...AUTHED, HTTP_STATUS.payload_too_large, HTTP_STATUS.unsupported_media_type];

const conversationParams = z.object({ id: conversationIdSchema });

/** The Idempotency-Key header of a POST that creates work (gateway/intake.ts). */
const idempotencyKey = (what: string) => z.string().regex(IDEMPOTENCY_KEY).optional().openapi({ description: what });
const keyed = (what: string) => z.object({ "idempotency-key": idempotencyKey(what) });
const RETRIED_ONCE = "A retry with the same key, at any replica, gets the same answer and is applied once; the key used for a different request gets 422";
const requestParams = z.object({ id: requestIdSchema });

export function openApiDocument(options: OpenApiOptions): ReturnType<OpenApiGeneratorV31["generateDocument"]> {
  const registry = new OpenAPIRegistry();
  const apiKey = registry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "An API key from GATEWAY_API_KEYS (tenant:key); not needed when the gateway runs with GATEWAY_AUTH=none",
  });
  const secured = [{ [apiKey.name]: [] }];
  const open: Array<Record<string, string[]>> = [];
  const max = options.maxContentChars;
  // Named components for what many responses share, so the document stays readable.
  const component = (name: string, schema: z.ZodType) => registry.register(name, withOpenApi(schema));
  const nativeError = component("NativeError", r.nativeErrorBody);
  const errors = errorResponses({ native: nativeError, openai: component("OpenAiError", r.openAiErrorBody) });
  // What the public routes (no key, no body) may refuse.
  const headersTooLarge = { 431: { description: HEADERS_TOO_LARGE, content: json(nativeError) } };
  const accepted = component("AcceptedRequest", r.acceptedRequest);
  // The record of chat.events, as each SSE message of a native stream carries it.
  component("ChatEvent", chatEventSchema);
  const chatEventMessage = sseMessage(
    {
      event: { type: "string", enum: chatEventSchema.options.map((o) => o.shape.type.value) },
      id: { type: "string", pattern: "^[0-9]+@.+$", description: "<seq>@<attempt>: send it back as Last-Event-ID to resume" },
      data: { type: "string", contentMediaType: "application/json", contentSchema: { $ref: "#/components/schemas/ChatEvent" } },
    },
    ["event", "id", "data"],
    "One chat event; the stream ends after the final or error event",
  );
  // While no worker has started the request: the gateway's own notice, without an id (not replayed on resume).
  const queuedMessage = sseMessage(
    {
      event: { type: "string", const: "queued" },
      data: {
        type: "string",
        contentMediaType: "application/json",
        description: "{type: queued, request_id, partition, ahead (requests before it on its partition), worker_assigned, workers, at}",
      },
    },
    ["event", "data"],
    "The request waits for a worker: sent at once and every QUEUE_NOTICE_MS until its start event",
  );
  const chatEventStream = { oneOf: [chatEventMessage, queuedMessage] } as MediaSchema;
  const chunkStream = sseMessage(
    { data: { type: "string", description: "A chat.completion.chunk object as JSON (an error body on failure), or [DONE] last" } },
    ["data"],
    "OpenAI's stream: chunks, then data: [DONE]",
  );

  registry.registerPath({
    method: "post",
    path: "/v1/conversations",
    summary: "Open a conversation",
    description:
      "Opens a conversation with a new id; with greeting, the fixed greeting comes as the open request's reply. OpenAI's Conversations API's body (items, metadata) is taken too: the items are appended after the open. A response made in it at once waits briefly for the open to be applied.",
    security: secured,
    request: {
      headers: keyed(`${RETRIED_ONCE} (the conversation id is derived from it)`),
      query: openConversationQuery,
      body: { content: json(openConversationBody(max)), required: false },
    },
    responses: {
      201: {
        description: "Opened",
        headers: z.object({ location: z.string().openapi({ description: "The conversation's URL" }) }),
        content: json(r.openedConversation),
      },
      ...errors("native", [...WITH_BODY, 422, 429]),
    },
  });

  registry.registerPath({
    method: "post",
    path: "/v1/conversations/{id}/messages",
    summary: "Send a message (a turn)",
    description: "Queues a turn on the conversation (created if new); the reply streams from events_url or can be polled at status_url.",
    security: secured,
    request: {
      params: conversationParams,
      headers: keyed(`${RETRIED_ONCE} (the request id is derived from it)`),
      body: { content: json(postMessageBody(max)), required: true },
    },
    responses: { 202: { description: "Accepted and queued", content: json(accepted) }, ...errors("native", [...WITH_BODY, 404, 422, 429]) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/conversations/{id}",
    summary: "What is stored about a conversation",
    security: secured,
    request: { params: conversationParams },
    responses: { 200: { description: "The conversation", content: json(r.conversationSummary) }, ...errors("native", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/conversations/{id}/messages",
    summary: "The whole conversation, a page at a time, oldest first",
    description:
      "Every message from chat.history (never trimmed). Start from=beginning or from=latest (the default), after= or before= a cursor of a previous read, or from=last_consumed where a named reader stopped; bounded by limit and by since/until. Every read that names a reader records the last message it returned as that reader's position, kept in Kafka.",
    security: secured,
    request: { params: conversationParams, query: historyQueryFields },
    responses: { 200: { description: "A page of the history", content: json(r.historyPage) }, ...errors("native", [...AUTHED, 404, 429]) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/conversations/{id}/memory",
    summary: "The prompt memory, oldest first",
    description: "What the worker remembers for the next prompt, trimmed to MEMORY_MAX_TOKENS. from=latest&limit=n gives the last n messages.",
    security: secured,
    request: { params: conversationParams, query: memoryQuery },
    responses: { 200: { description: "The prompt memory", content: json(r.conversationHistory) }, ...errors("native", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "post",
    path: "/v1/conversations/{id}/history",
    summary: "Append messages without a reply",
    description:
      "Appends messages to the history and the prompt memory (a system message changes the system prompt), in order with the conversation's turns; creates the conversation when new. 200 once applied within GATEWAY_APPLY_WAIT_MS, else 202 with the request to follow.",
    security: secured,
    request: {
      params: conversationParams,
      headers: keyed(RETRIED_ONCE),
      body: { content: json(appendHistoryBody(max)), required: true },
    },
    responses: {
      200: { description: "Applied", content: json(r.appendedHistory) },
      202: { description: "Queued; not applied yet", content: json(accepted) },
      ...errors("native", [...WITH_BODY, 404, 409, 422, 429, 502]),
    },
  });

  registry.registerPath({
    method: "delete",
    path: "/v1/conversations/{id}",
    summary: "Delete a conversation",
    description:
      "Queued behind the conversation's pending turns: 204 once a worker applied it within GATEWAY_APPLY_WAIT_MS, else 202 with the request to follow.",
    security: secured,
    request: { params: conversationParams },
    responses: {
      200: { description: "Deleted (OpenAI's conversation.deleted object)", content: json(r.deletedConversation) },
      202: { description: "Queued; not applied yet (deleted: false, with the request to follow)", content: json(r.deletedConversation) },
      ...errors("native", [...AUTHED, 404, 502]),
    },
  });

  const itemParams = z.object({ id: conversationIdSchema, item: z.string().min(1).max(100) });
  const applyWait = "200 once a worker applied it within GATEWAY_APPLY_WAIT_MS, else 202 with the request to follow";

  registry.registerPath({
    method: "post",
    path: "/v1/conversations/{id}",
    summary: "Replace a conversation's metadata (OpenAI's Conversations API)",
    description: `In order with the conversation's turns: ${applyWait}.`,
    security: secured,
    request: { params: conversationParams, headers: keyed(RETRIED_ONCE), body: { content: json(updateConversationBody), required: true } },
    responses: {
      200: { description: "The conversation", content: json(r.conversationSummary) },
      202: { description: "Queued; not applied yet", content: json(r.pendingConversation) },
      ...errors("native", [...WITH_BODY, 404, 422, 429, 502]),
    },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/conversations/{id}/items",
    summary: "The conversation's history as OpenAI's items, newest first unless order=asc",
    security: secured,
    request: { params: conversationParams, query: itemsQuery },
    responses: { 200: { description: "A page of items", content: json(r.conversationItemList) }, ...errors("native", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "post",
    path: "/v1/conversations/{id}/items",
    summary: "Add message items without a reply",
    description: `As POST /v1/conversations/{id}/history: ${applyWait}.`,
    security: secured,
    request: { params: conversationParams, query: includeQuery, headers: keyed(RETRIED_ONCE), body: { content: json(addItemsBody(max)), required: true } },
    responses: {
      200: { description: "The items added", content: json(r.conversationItemList) },
      202: { description: "Queued; not applied yet", content: json(r.conversationItemList) },
      ...errors("native", [...WITH_BODY, 404, 422, 429, 502]),
    },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/conversations/{id}/items/{item}",
    summary: "One item",
    security: secured,
    request: { params: itemParams, query: includeQuery },
    responses: { 200: { description: "The item", content: json(r.conversationItem) }, ...errors("native", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "delete",
    path: "/v1/conversations/{id}/items/{item}",
    summary: "Delete an item: hidden from the history's reads and forgotten by the memory",
    description: `The history is append-only: the text stays in chat.history until its retention removes it. ${applyWait}.`,
    security: secured,
    request: { params: itemParams },
    responses: {
      200: { description: "The conversation", content: json(r.conversationSummary) },
      202: { description: "Queued; not applied yet", content: json(r.pendingConversation) },
      ...errors("native", [...AUTHED, 404, 502]),
    },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/requests/{id}",
    summary: "A request's status, to poll",
    security: secured,
    request: { params: requestParams },
    responses: { 200: { description: "The status", content: json(r.requestStatusBody) }, ...errors("native", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/requests/{id}/events",
    summary: "A request's events as Server-Sent Events",
    description:
      "One SSE message per chat event (event: start|delta|final|error, id: <seq>@<attempt>, data: the event record of chat.events); the stream ends after final or error. Resumable with Last-Event-ID.",
    security: secured,
    request: {
      params: requestParams,
      query: eventsQuery,
      headers: z.object({ "last-event-id": z.string().optional().openapi({ description: "Resume after this event id" }) }),
    },
    responses: {
      200: { description: "The event stream", content: { "text/event-stream": { schema: chatEventStream } } },
      ...errors("native", [...AUTHED, 404, 429]),
    },
  });

  registry.registerPath({
    method: "post",
    path: "/v1/requests/{id}/cancel",
    summary: "Cancel a request",
    description: "Asks the worker running the request to stop; the request then ends as cancelled with the partial reply.",
    security: secured,
    request: {
      params: requestParams,
      headers: keyed("Accepted for symmetry with the other POSTs: a cancel is idempotent by itself (a second one changes nothing)"),
      body: { content: json(cancelBody), required: false },
    },
    responses: {
      202: { description: "Cancel requested (or the request had ended)", content: json(r.cancelAccepted) },
      ...errors("native", [...WITH_BODY, 404]),
    },
  });

  registry.registerPath({
    method: "post",
    path: "/v1/chat/completions",
    summary: "OpenAI-compatible chat completion",
    description:
      "Stateless by default (messages are the whole context; the last must be the user's, not empty); with X-Conversation-Id the server-side memory is used. stream=true answers with chat.completion.chunk SSE messages and data: [DONE].",
    security: secured,
    request: {
      headers: z.object({
        "x-conversation-id": conversationIdSchema.optional().openapi({ description: "Use the server-side memory of this conversation" }),
        "idempotency-key": idempotencyKey(
          `${RETRIED_ONCE}: the user's message is in the memory once, and every answer carries the same id. The openai SDKs send no key by themselves; pass one in the request options' headers and their automatic retries reuse it`,
        ),
      }),
      body: { content: json(chatCompletionBodySchema(max)), required: true },
    },
    responses: {
      200: {
        description: "The completion (JSON), or its chunks as Server-Sent Events when stream=true",
        content: { ...json(r.chatCompletion), "text/event-stream": { schema: chunkStream } },
      },
      ...errors("openai", [...WITH_BODY, 404, 409, 422, 429, 502, 504]),
    },
  });

  const responseStream = sseMessage(
    {
      event: { type: "string", description: "The event's type, as in its data" },
      data: { type: "string", description: "A Responses stream event as JSON, with its sequence_number" },
    },
    ["data"],
    "OpenAI's Responses stream: response.created first, response.completed (or .incomplete, .failed) last",
  );
  const responseParams = z.object({ id: z.string().min(1).max(256) });
  const responseOrStream = {
    description: "The response (JSON), or its events as Server-Sent Events when streamed",
    content: { ...json(r.response), "text/event-stream": { schema: responseStream } },
  };

  registry.registerPath({
    method: "post",
    path: "/v1/responses",
    summary: "OpenAI's Responses API: create a response",
    description:
      "A stored response (store: true, the default) is a turn of a conversation: without previous_response_id or conversation it opens one; with them it continues it from the worker's memory. store: false keeps nothing. background: true answers at once with status queued; stream: true answers with the Responses stream events. Hosted tools are left out of what the model is offered (header x-kafka-llm-tools-left-out).",
    security: secured,
    request: {
      headers: keyed(`${RETRIED_ONCE}: the response is made once`),
      body: { content: json(responsesBodySchema(max)), required: true },
    },
    responses: { 200: responseOrStream, ...errors("openai", [...WITH_BODY, 404, 422, 429, 502, 504]) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/responses/{id}",
    summary: "Retrieve a stored response, or stream its events (stream=true, after starting_after)",
    security: secured,
    request: { params: responseParams, query: retrieveQuery },
    responses: { 200: responseOrStream, ...errors("openai", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "delete",
    path: "/v1/responses/{id}",
    summary: "Delete a stored response, with the conversation it opened",
    security: secured,
    request: { params: responseParams },
    responses: { 200: { description: "Deleted", content: json(r.deletedResponse) }, ...errors("openai", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "post",
    path: "/v1/responses/{id}/cancel",
    summary: "Stop a response being generated; it ends cancelled with the text so far",
    security: secured,
    request: { params: responseParams, headers: keyed("A cancel is idempotent by itself") },
    responses: { 200: { description: "The response", content: json(r.response) }, ...errors("openai", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/responses/{id}/input_items",
    summary: "The items a stored response was given",
    security: secured,
    request: { params: responseParams, query: inputItemsQuery },
    responses: { 200: { description: "The items", content: json(r.inputItemList) }, ...errors("openai", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/models",
    summary: "The models of the pools deployed (chat.models), adapters with their parent",
    security: secured,
    responses: { 200: { description: "The models", content: json(r.modelList) }, ...errors("openai", AUTHED) },
  });

  registry.registerPath({
    method: "get",
    path: "/v1/models/{model}",
    summary: "One model",
    security: secured,
    request: { params: z.object({ model: z.string().min(1) }) },
    responses: { 200: { description: "The model", content: json(r.model) }, ...errors("openai", [...AUTHED, 404]) },
  });

  registry.registerPath({
    method: "get",
    path: "/healthz",
    summary: "Liveness: fails only when a restart is the cure",
    security: open,
    responses: { 200: { description: "Alive", content: json(r.health) }, 503: { description: "Failed for good", content: json(r.health) }, ...headersTooLarge },
  });

  registry.registerPath({
    method: "get",
    path: "/readyz",
    summary: "Readiness: the replica has read the recent requests, events and memory",
    security: open,
    responses: { 200: { description: "Ready", content: json(r.readiness) }, 503: { description: "Starting", content: json(r.readiness) }, ...headersTooLarge },
  });

  registry.registerPath({
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics",
    security: open,
    responses: { 200: { description: "Prometheus text format", content: { "text/plain": { schema: z.string() } } }, ...headersTooLarge },
  });

  registry.registerPath({
    method: "get",
    path: "/openapi.json",
    summary: "This document",
    security: open,
    responses: { 200: { description: "The OpenAPI document", content: json(z.object({ openapi: z.string() })) }, ...headersTooLarge },
  });

  registry.registerPath({
    method: "get",
    path: "/",
    summary: "The web chat page",
    security: open,
    responses: {
      200: { description: "The page", content: { "text/html": { schema: z.string() } } },
      404: { description: "This build has no page", content: json(r.nativeErrorBody) },
      ...headersTooLarge,
    },
  });

  registry.registerPath({
    method: "get",
    path: "/favicon.ico",
    summary: "No icon (answers 204 so browsers stop asking)",
    security: open,
    responses: { 204: { description: "No content" }, ...headersTooLarge },
  });

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "kafka-llm gateway",
      version: API_VERSION,
      description: "LLM chat over Apache Kafka: the native API (conversations, requests, SSE) and the OpenAI-compatible routes.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    servers: [{ url: "/" }],
  });
}
