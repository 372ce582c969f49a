/**
 * The OpenAI-compatible API: POST /v1/chat/completions (streamed or not) and the model
 * list, so the official clients work with baseURL = <gateway>/v1. Errors use OpenAI's body.
 *
 * A client that goes away before the reply is complete (closes the stream, or stops
 * waiting for a non-streamed reply) cancels the request: nobody is left to read it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { conversationIdSchema } from "../../contracts/records/fields.js";
import type { ChatEvent } from "../../contracts/records/events.js";
import type { TurnRequest } from "../../contracts/records/requests.js";
import type { GatewayDeps } from "../deps.js";
import { ApiError, errorBody, notFound } from "../errors.js";
import { KEY_SCOPES, errorOfEvent, idempotencyKeyOf, keyedRequestId, submit } from "../intake.js";
import { parseCompletionBody, toTurnRequest, type CompletionInput } from "../openai/request.js";
import { gatheredLogprobs } from "../openai/logprobs.js";
import { choicesOf, chunk, completion, finishReason, usageChunk, type ChunkDelta, type CompletionMeta, type FinishReason } from "../openai/response.js";
import type { TokenLogprob } from "../../contracts/records/events.js";
import { SseWriter } from "../sse.js";
import { deadlineError } from "./requests.js";
import { awaitReply, cancelForDisconnect } from "./reply-wait.js";
import { objectBody } from "./schemas.js";
import type { ListedModel } from "../pools.js";

const openai = { config: { dialect: "openai" as const } };

export function registerOpenAiRoutes(app: FastifyInstance, deps: GatewayDeps): void {
  const startedAt = Math.floor(Date.now() / 1000);
  // The pools declared on chat.models (gateway/pools.ts); without pools (unit tests) MODEL_NAME alone.
  const listed = (): ListedModel[] => deps.pools?.models() ?? [{ id: deps.config.modelName, pool: "default" }];
  const model = (m: ListedModel) => ({
    id: m.id,
    object: "model" as const,
    created: startedAt,
    owned_by: "kafka-llm",
    ...(m.parent !== undefined && { parent: m.parent }),
  });

  app.get("/v1/models", openai, async () => ({ object: "list", data: listed().map(model) }));

  app.get<{ Params: { model: string } }>("/v1/models/:model", openai, async (request) => {
    const found = listed().find((m) => m.id === request.params.model);
    if (!found)
      throw notFound(
        `no model ${request.params.model}; GET /v1/models lists the models: ${listed()
          .map((m) => m.id)
          .join(", ")}`,
      );
    return model(found);
  });

  app.post("/v1/chat/completions", openai, async (request, reply) => {
    const input = parseCompletionBody(objectBody(request.body, '{"model": "...", "messages": [...]}'), deps.config.maxContentChars);
    const header = request.headers["x-conversation-id"];
    let conversationId: string | null = null;
    if (header !== undefined) {
      const parsed = conversationIdSchema.safeParse(Array.isArray(header) ? header[0] : header);
      if (!parsed.success) {
        // The record schema's own words, so the rule is stated where it is made.
        throw new ApiError("invalid_request", `X-Conversation-Id: ${parsed.error.issues.map((i) => i.message).join("; ")}`, { param: "X-Conversation-Id" });
      }
      conversationId = parsed.data;
    }
    const key = idempotencyKeyOf(request.headers);
    const turn = keyed({ ...toTurnRequest(input, request.tenant, conversationId), model: input.body.model }, key);
    await submit(deps, turn, request.log, { keyed: key !== undefined });
    // The openai SDKs retry without a key unless given one (X-Stainless-Retry-Count says it
    // is a retry): say so, since such a retry is a new request.
    const retry = Number(request.headers["x-stainless-retry-count"] ?? 0);
    if (key === undefined && retry > 0)
      request.log.warn({ request_id: turn.request_id, retry }, "an SDK retry without an Idempotency-Key: run as a new request");
    const meta: CompletionMeta = { requestId: turn.request_id, model: input.body.model, created: Math.floor(turn.created_at / 1000) };
    reply.header("x-request-id", turn.request_id);
    if (input.stream) return streamCompletion(deps, request, reply, turn, input, meta);
    return wholeCompletion(deps, request, reply, turn, meta);
  });
}

/**
 * Under an Idempotency-Key the request id is derived from it (gateway/intake.ts): with
 * X-Conversation-Id as a native turn's is, so the user's message is in the memory once
 * however often the call is retried, at whichever replica; a stateless call's conversation
 * id is the derived id too, so its copies land on one partition.
 */
function keyed(turn: TurnRequest, key: string | undefined): TurnRequest {
  if (key === undefined) return turn;
  const stateless = turn.context !== undefined;
  const requestId = keyedRequestId(turn.tenant, stateless ? KEY_SCOPES.completion : turn.conversation_id, key);
  return { ...turn, request_id: requestId, ...(stateless ? { conversation_id: requestId } : {}) };
}

async function wholeCompletion(deps: GatewayDeps, request: FastifyRequest, reply: FastifyReply, turn: TurnRequest, meta: CompletionMeta) {
  const terminal = await awaitReply(deps, request, reply, turn);
  // Logprobs come with the deltas only: gathered from the attempt's events the hub holds.
  const events = turn.params?.logprobs === undefined ? null : (deps.hub.get(turn.request_id)?.events ?? []);
  return reply.send(completion(meta, terminal, (c) => (events === null ? null : gatheredLogprobs(events, c.index, c.reply))));
}

function streamCompletion(
  deps: GatewayDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  turn: TurnRequest,
  input: CompletionInput,
  meta: CompletionMeta,
): void {
  reply.hijack();
  const sse = new SseWriter(reply.raw, deps.config.sseKeepaliveMs, { "x-request-id": turn.request_id });
  const withLogprobs = turn.params?.logprobs !== undefined;
  const send = (delta: ChunkDelta, finish: FinishReason | null = null, index = 0, logprobs: TokenLogprob[] | null = null) =>
    sse.data(chunk(meta, delta, finish, input.includeUsage, index, logprobs));
  const n = turn.params?.n ?? 1;
  for (let i = 0; i < n; i++) send({ role: "assistant", content: "" }, null, i);

  // Per choice, what the client has been sent and what the current attempt has generated:
  // a worker that takes over a request runs it again, and only text beyond what was sent
  // goes out.
  const sent: string[] = Array.from({ length: n }, () => "");
  let attemptText: string[] = Array.from({ length: n }, () => "");
  // With logprobs, per choice the current attempt's tokens, each with where its text starts in the attempt's text.
  let attemptTokens: Array<Array<{ at: number; token: TokenLogprob }>> = Array.from({ length: n }, () => []);
  let stop: (() => void) | null = null;
  const end = () => {
    stop?.();
    sse.end();
  };
  const sendText = (index: number, text: string, logprobs?: readonly TokenLogprob[]) => {
    const before = attemptText[index] ?? "";
    const attempt = before + text;
    attemptText[index] = attempt;
    let at = before.length;
    for (const token of logprobs ?? []) {
      attemptTokens[index]?.push({ at, token });
      at += token.token.length;
    }
    const already = sent[index] ?? "";
    if (attempt.length <= already.length) return;
    sent[index] = attempt;
    // The tokens of the text that goes out (a re-run's tokens of text already sent stay back).
    const tokens = withLogprobs ? (attemptTokens[index] ?? []).filter((t) => t.at >= already.length && t.at < attempt.length).map((t) => t.token) : null;
    send({ content: attempt.slice(already.length) }, null, index, logprobs === undefined ? null : tokens);
  };
  // Tool calls the same way, per choice and call index: the head (id, name) once, then
  // only arguments beyond what was sent. Call ids are stable per request, so a re-run's
  // calls are the ones the client has begun.
  const callKey = (choice: number, index: number) => `${choice}:${index}`;
  const callHeads = new Set<string>();
  const callSent = new Map<string, string>();
  let callAttempt = new Map<string, string>();
  const sendCall = (choice: number, index: number, head: { id: string; name: string } | null, args: string) => {
    const key = callKey(choice, index);
    if (head !== null && !callHeads.has(key)) {
      callHeads.add(key);
      send({ tool_calls: [{ index, id: head.id, type: "function", function: { name: head.name, arguments: "" } }] }, null, choice);
    }
    const attempt = (callAttempt.get(key) ?? "") + args;
    callAttempt.set(key, attempt);
    const already = callSent.get(key) ?? "";
    if (attempt.length <= already.length || !callHeads.has(key)) return;
    callSent.set(key, attempt);
    send({ tool_calls: [{ index, function: { arguments: attempt.slice(already.length) } }] }, null, choice);
  };
  const onEvent = (event: ChatEvent) => {
    if (sse.ended) return;
    switch (event.type) {
      case "start":
        attemptText = Array.from({ length: n }, () => "");
        attemptTokens = Array.from({ length: n }, () => []);
        callAttempt = new Map();
        return;
      case "delta":
        return sendText(event.choice ?? 0, event.text, event.logprobs);
      case "tool_call_delta":
        return sendCall(
          event.choice ?? 0,
          event.index,
          event.id !== undefined && event.name !== undefined ? { id: event.id, name: event.name } : null,
          event.arguments,
        );
      case "final":
        for (const c of choicesOf(event)) {
          // A re-announced final comes without its deltas: send what the client lacks.
          const attempt = attemptText[c.index] ?? "";
          if (c.reply.length > (sent[c.index] ?? "").length && c.reply.startsWith(attempt)) sendText(c.index, c.reply.slice(attempt.length));
          (c.tool_calls ?? []).forEach((call, index) => {
            const streamed = callAttempt.get(callKey(c.index, index)) ?? "";
            const rest = call.function.arguments.startsWith(streamed) ? call.function.arguments.slice(streamed.length) : "";
            sendCall(c.index, index, { id: call.id, name: call.function.name }, rest);
          });
          send({}, finishReason(c), c.index);
        }
        if (input.includeUsage) sse.data(usageChunk(meta, event.usage));
        sse.done();
        return setImmediate(end);
      case "error":
        sse.data(errorBody(errorOfEvent(event), "openai"));
        return setImmediate(end);
    }
  };
  sse.onClose((early) => {
    stop?.();
    if (early) void cancelForDisconnect(deps, request, turn);
  });
  stop = deps.hub.follow(turn.request_id, null, onEvent);
  // No wait is endless: past the deadline an error chunk says where to look the request up.
  sse.expireAfter(deps.config.requests.deadlineMs, () => {
    if (deps.hub.get(turn.request_id)?.done) return end(); // its terminal event went out this very tick
    sse.data(errorBody(deadlineError(turn.request_id, deps.config.requests.deadlineMs), "openai"));
    end();
  });
  if (stop === null) {
    sse.data(errorBody(new ApiError("generation_failed", "the request is no longer tracked"), "openai"));
    end();
  }
}
