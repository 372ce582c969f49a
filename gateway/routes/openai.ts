/**
 * The OpenAI-compatible API: POST /v1/chat/completions (streamed or not) and the model
 * list, so the official clients work with baseURL = <gateway>/v1. Errors use OpenAI's body.
 *
 * A client that goes away before the reply is complete (closes the stream, or stops
 * waiting for a non-streamed reply) cancels the request: nobody is left to read it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { conversationIdSchema, type ChatEvent, type TurnRequest } from "../../contracts/records.js";
import type { GatewayDeps } from "../deps.js";
import { ApiError, errorBody, notFound } from "../errors.js";
import { assertNotForeign, awaitTerminal, cancel, errorOfEvent, submit } from "../intake.js";
import { parseCompletionBody, toTurnRequest, type CompletionInput } from "../openai/request.js";
import { SSE_DONE, chunk, completion, sseData, usageChunk, type CompletionMeta } from "../openai/response.js";
import { KEEPALIVE } from "../sse.js";
import { objectBody } from "./schemas.js";

const openai = { config: { dialect: "openai" as const } };

export function registerOpenAiRoutes(app: FastifyInstance, deps: GatewayDeps): void {
  const startedAt = Math.floor(Date.now() / 1000);
  const model = () => ({ id: deps.config.modelName, object: "model" as const, created: startedAt, owned_by: "kafka-llm" });

  app.get("/v1/models", openai, async () => ({ object: "list", data: [model()] }));

  app.get<{ Params: { model: string } }>("/v1/models/:model", openai, async (request) => {
    if (request.params.model !== deps.config.modelName) throw notFound(`no model ${request.params.model}; GET /v1/models lists the models`);
    return model();
  });

  app.post("/v1/chat/completions", openai, async (request, reply) => {
    const input = parseCompletionBody(objectBody(request.body, '{"model": "...", "messages": [...]}'), deps.config.maxContentChars);
    const header = request.headers["x-conversation-id"];
    let conversationId: string | null = null;
    if (header !== undefined) {
      try {
        conversationId = conversationIdSchema.parse(Array.isArray(header) ? header[0] : header);
      } catch {
        throw new ApiError("invalid_request", "X-Conversation-Id: 1-128 letters, digits, '.', '_', ':' or '-'", { param: "X-Conversation-Id" });
      }
      assertNotForeign(deps, conversationId, request.tenant);
    }
    const turn = toTurnRequest(input, request.tenant, conversationId);
    await submit(deps, turn, request.log);
    const meta: CompletionMeta = { requestId: turn.request_id, model: deps.config.modelName, created: Math.floor(turn.created_at / 1000) };
    reply.header("x-request-id", turn.request_id);
    if (input.stream) return streamCompletion(deps, request, reply, turn, input, meta);
    return wholeCompletion(deps, request, reply, turn, meta);
  });
}

async function wholeCompletion(deps: GatewayDeps, request: FastifyRequest, reply: FastifyReply, turn: TurnRequest, meta: CompletionMeta) {
  const left = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) left.abort();
  };
  reply.raw.on("close", onClose);
  const terminal = await awaitTerminal(deps, turn.request_id, left.signal);
  reply.raw.off("close", onClose);
  if (terminal === null) {
    if (left.signal.aborted) await cancelForDisconnect(deps, request, turn);
    // The client is gone (or the request was evicted): there is nobody to answer.
    throw new ApiError("generation_failed", "the request ended without a reply");
  }
  if (terminal.type === "error") throw errorOfEvent(terminal);
  return reply.send(completion(meta, terminal));
}

function streamCompletion(
  deps: GatewayDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  turn: TurnRequest,
  input: CompletionInput,
  meta: CompletionMeta,
): void {
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    "x-request-id": turn.request_id,
  });
  res.write(sseData(chunk(meta, { role: "assistant", content: "" }, null, input.includeUsage)));

  // What the client has been sent, and what the current attempt has generated: a worker
  // that takes over a request runs it again, and only text beyond what was sent goes out.
  let sent = "";
  let attemptText = "";
  let ended = false;
  let stop: (() => void) | null = null;
  const keepalive = setInterval(() => res.write(KEEPALIVE), deps.config.sseKeepaliveMs);
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(keepalive);
    stop?.();
    if (!res.writableEnded) res.end();
  };
  const sendText = (text: string) => {
    attemptText += text;
    if (attemptText.length <= sent.length) return;
    const fresh = attemptText.slice(sent.length);
    sent = attemptText;
    res.write(sseData(chunk(meta, { content: fresh }, null, input.includeUsage)));
  };
  const onEvent = (event: ChatEvent) => {
    if (ended) return;
    switch (event.type) {
      case "start":
        attemptText = "";
        return;
      case "delta":
        return sendText(event.text);
      case "final":
        // A re-announced final comes without its deltas: send what the client lacks.
        if (event.reply.length > sent.length && event.reply.startsWith(attemptText)) sendText(event.reply.slice(attemptText.length));
        res.write(sseData(chunk(meta, {}, event.stop_reason === "length" ? "length" : "stop", input.includeUsage)));
        if (input.includeUsage) res.write(sseData(usageChunk(meta, event.usage)));
        res.write(SSE_DONE);
        return setImmediate(end);
      case "error":
        res.write(sseData(errorBody(errorOfEvent(event), "openai")));
        return setImmediate(end);
    }
  };
  res.on("close", () => {
    const early = !ended;
    end();
    if (early) void cancelForDisconnect(deps, request, turn);
  });
  stop = deps.hub.follow(turn.request_id, null, onEvent);
  if (stop === null) {
    res.write(sseData(errorBody(new ApiError("generation_failed", "the request is no longer tracked"), "openai")));
    end();
  }
}

async function cancelForDisconnect(deps: GatewayDeps, request: FastifyRequest, turn: TurnRequest): Promise<void> {
  if (deps.hub.get(turn.request_id)?.done) return;
  try {
    await cancel(deps, turn.request_id, turn.tenant, "the client disconnected", "disconnect");
    request.log.info({ request_id: turn.request_id, conversation_id: turn.conversation_id }, "client left mid-reply: request cancelled");
  } catch (err) {
    request.log.warn({ request_id: turn.request_id, err: (err as Error).message }, "client left mid-reply; the cancel could not be written");
  }
}
