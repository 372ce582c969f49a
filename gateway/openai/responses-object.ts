/**
 * OpenAI's Response object and its stream events, made from a request's chat events.
 *
 * Status: queued (no worker has started it), in_progress, completed (stop or tool calls),
 * incomplete (max_output_tokens reached), cancelled, failed (an error). A cancelled
 * response's stream ends with `response.incomplete` carrying status "cancelled" (OpenAI
 * defines no stream event of its own for it).
 *
 * The stream is a pure function of the chat events: every replica that holds the same
 * events numbers the same stream events the same way, so a stream resumed elsewhere with
 * `starting_after` goes on where it stopped. A takeover's new attempt sends only the text
 * beyond what the earlier attempt sent (as the chat completions stream does).
 */
import type { ChatEvent, FinalEvent, TokenLogprob, Usage } from "../../contracts/records/events.js";
import type { ToolCall } from "../../contracts/generation-params.js";
import { responseLogprobs } from "./logprobs.js";
import { functionCallItemId, messageItemId } from "./response-id.js";

export type ResponseStatus = "queued" | "in_progress" | "completed" | "incomplete" | "cancelled" | "failed";

/** What a response echoes of its request, known where it was created (defaults elsewhere). */
export interface ResponseBase {
  id: string;
  requestId: string;
  /** Unix seconds. */
  createdAt: number;
  model: string;
  background: boolean;
  store: boolean;
  instructions: string | null;
  previousResponseId: string | null;
  conversationId: string | null;
  maxOutputTokens: number | null;
  temperature: number | null;
  topP: number | null;
  metadata: Record<string, string>;
  tools: unknown[];
  /** The namespace tool each of its functions came from, by function name: a call names it (the client routes by it). */
  namespaces?: Readonly<Record<string, string>>;
  toolChoice: unknown;
  parallelToolCalls: boolean;
  text: { format: unknown };
  truncation: "auto" | "disabled";
}

export function defaultBase(id: string, requestId: string, model: string, createdAt: number, conversationId: string | null, store: boolean): ResponseBase {
  return {
    id,
    requestId,
    createdAt,
    model,
    background: false,
    store,
    instructions: null,
    previousResponseId: null,
    conversationId,
    maxOutputTokens: null,
    temperature: null,
    topP: null,
    metadata: {},
    tools: [],
    toolChoice: "auto",
    parallelToolCalls: true,
    text: { format: { type: "text" } },
    truncation: "disabled",
  };
}

/** What a response holds so far. */
export interface ResponseState {
  status: ResponseStatus;
  text: string;
  toolCalls: ToolCall[];
  usage: Usage | null;
  error: { code: string; message: string } | null;
  /** The tokens of `text` sent so far, when logprobs were asked for (they come with the deltas only). */
  logprobs?: TokenLogprob[];
}

export function responseUsage(usage: Usage) {
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: usage.cached_prompt_tokens },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
  };
}

export function statusOfFinal(final: Pick<FinalEvent, "stop_reason">): ResponseStatus {
  switch (final.stop_reason) {
    case "length":
      return "incomplete";
    case "cancelled":
      return "cancelled";
    case "error":
      return "failed";
    default:
      return "completed";
  }
}

function messageItem(base: ResponseBase, text: string, status: "in_progress" | "completed" | "incomplete", logprobs: readonly TokenLogprob[] = []) {
  return {
    id: messageItemId(base.requestId),
    type: "message" as const,
    status,
    role: "assistant" as const,
    content: [{ type: "output_text" as const, text, annotations: [], logprobs: responseLogprobs(logprobs) }],
  };
}

function callItem(base: ResponseBase | null, call: ToolCall, status: "in_progress" | "completed") {
  const namespace = base?.namespaces?.[call.function.name];
  return {
    id: functionCallItemId(call.id),
    type: "function_call" as const,
    status,
    call_id: call.id,
    name: call.function.name,
    ...(namespace === undefined ? {} : { namespace }),
    arguments: call.function.arguments,
  };
}

/** The Response object. */
export function responseObject(base: ResponseBase, state: ResponseState) {
  const done = state.status !== "queued" && state.status !== "in_progress";
  const output: unknown[] = [];
  if (state.text !== "" || (done && state.toolCalls.length === 0 && state.status !== "failed"))
    output.push(messageItem(base, state.text, !done ? "in_progress" : state.status === "completed" ? "completed" : "incomplete", state.logprobs));
  for (const call of state.toolCalls) output.push(callItem(base, call, "completed"));
  return {
    id: base.id,
    object: "response" as const,
    created_at: base.createdAt,
    status: state.status,
    background: base.background,
    error: state.error,
    incomplete_details: state.status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: base.instructions,
    max_output_tokens: base.maxOutputTokens,
    model: base.model,
    output,
    parallel_tool_calls: base.parallelToolCalls,
    previous_response_id: base.previousResponseId,
    conversation: base.conversationId === null ? null : { id: base.conversationId },
    reasoning: { effort: null, summary: null },
    store: base.store,
    temperature: base.temperature,
    text: base.text,
    tool_choice: base.toolChoice,
    tools: base.tools,
    top_p: base.topP,
    truncation: base.truncation,
    usage: state.usage === null ? null : responseUsage(state.usage),
    metadata: base.metadata,
  };
}

export type ResponseObject = ReturnType<typeof responseObject>;

/** A response's state from its chat events (the hub's snapshot). */
export function stateOfEvents(events: readonly ChatEvent[]): ResponseState {
  const builder = new ResponseStreamBuilder(null);
  for (const e of events) builder.push(e);
  return builder.state;
}

export type StreamEvent = { type: string; sequence_number: number } & Record<string, unknown>;

/**
 * Turns chat events into the Responses stream. `base` null: only the state is kept (no
 * events are made).
 */
export class ResponseStreamBuilder {
  readonly state: ResponseState = { status: "queued", text: "", toolCalls: [], usage: null, error: null };
  readonly #base: ResponseBase | null;
  readonly #out: StreamEvent[] = [];
  #seq = 0;
  /** Output index of the message item, once added; of each call by its index. */
  #messageIndex: number | null = null;
  #messageDone = false;
  readonly #callIndex = new Map<number, number>();
  readonly #callArgs = new Map<number, string>();
  #outputs = 0;
  #attempt: string | null = null;
  /** What the current attempt generated: a new attempt sends only what lies beyond what was sent. */
  #attemptText = "";
  /** With logprobs, the current attempt's tokens, each with where its text starts in the attempt's text. */
  #attemptTokens: Array<{ at: number; token: TokenLogprob }> = [];
  #attemptArgs = new Map<number, string>();

  constructor(base: ResponseBase | null) {
    this.#base = base;
    this.#emit("response.created", () => ({ response: this.#object() }));
    if (base?.background) this.#emit("response.queued", () => ({ response: this.#object() }));
  }

  /** Events made since the last take. */
  take(): StreamEvent[] {
    return this.#out.splice(0);
  }

  get done(): boolean {
    return this.state.status !== "queued" && this.state.status !== "in_progress";
  }

  push(event: ChatEvent): void {
    if (this.done) return;
    switch (event.type) {
      case "start":
        if (event.attempt !== this.#attempt) {
          this.#attempt = event.attempt;
          this.#attemptText = "";
          this.#attemptTokens = [];
          this.#attemptArgs = new Map();
        }
        if (this.state.status === "queued") {
          this.state.status = "in_progress";
          this.#emit("response.in_progress", () => ({ response: this.#object() }));
        }
        return;
      case "delta":
        if ((event.choice ?? 0) !== 0) return;
        return this.#text(event.text, event.logprobs);
      case "tool_call_delta":
        if ((event.choice ?? 0) !== 0) return;
        return this.#call(event.index, event.id !== undefined && event.name !== undefined ? { id: event.id, name: event.name } : null, event.arguments);
      case "final": {
        // A re-announced final comes without its deltas: send what the client lacks.
        if (event.reply.length > this.state.text.length && event.reply.startsWith(this.#attemptText)) this.#text(event.reply.slice(this.#attemptText.length));
        (event.tool_calls ?? []).forEach((call, i) => {
          const streamed = this.#attemptArgs.get(i) ?? "";
          this.#call(
            i,
            { id: call.id, name: call.function.name },
            call.function.arguments.startsWith(streamed) ? call.function.arguments.slice(streamed.length) : "",
          );
        });
        this.state.usage = event.usage;
        this.state.toolCalls = event.tool_calls ?? this.state.toolCalls;
        if (event.reply.length >= this.state.text.length) this.state.text = event.reply;
        const status = statusOfFinal(event);
        this.#closeItems(status === "completed" ? "completed" : "incomplete");
        this.state.status = status;
        if (status === "failed") this.state.error = { code: "server_error", message: "generation failed" };
        const type = status === "completed" ? "response.completed" : status === "failed" ? "response.failed" : "response.incomplete";
        return this.#emit(type, () => ({ response: this.#object() }));
      }
      case "error":
        this.#closeItems("incomplete");
        this.state.status = "failed";
        this.state.error = { code: event.code, message: event.message };
        return this.#emit("response.failed", () => ({ response: this.#object() }));
    }
  }

  /** An `error` stream event (the stream ends with it): a wait past its deadline, a request no longer tracked. */
  error(code: string, message: string): void {
    this.#emit("error", () => ({ code, message, param: null }));
  }

  #text(text: string, logprobs?: readonly TokenLogprob[]): void {
    let at = this.#attemptText.length;
    for (const token of logprobs ?? []) {
      this.#attemptTokens.push({ at, token });
      at += token.token.length;
    }
    const attempt = this.#attemptText + text;
    this.#attemptText = attempt;
    if (attempt.length <= this.state.text.length) return;
    const sent = this.state.text.length;
    const delta = attempt.slice(sent);
    this.state.text = attempt;
    // The tokens of the text that goes out (a re-run's tokens of text already sent stay back).
    const tokens = this.#attemptTokens.filter((t) => t.at >= sent && t.at < attempt.length).map((t) => t.token);
    if (tokens.length > 0) (this.state.logprobs ??= []).push(...tokens);
    if (this.#messageIndex === null) {
      this.#messageIndex = this.#outputs++;
      const index = this.#messageIndex;
      this.#emit("response.output_item.added", () => ({ output_index: index, item: { ...messageItem(this.#base!, "", "in_progress"), content: [] } }));
      this.#emit("response.content_part.added", () => ({
        item_id: messageItemId(this.#base!.requestId),
        output_index: index,
        content_index: 0,
        part: { type: "output_text", text: "", annotations: [], logprobs: [] },
      }));
    }
    const index = this.#messageIndex;
    this.#emit("response.output_text.delta", () => ({
      item_id: messageItemId(this.#base!.requestId),
      output_index: index,
      content_index: 0,
      delta,
      logprobs: responseLogprobs(tokens),
    }));
  }

  #call(i: number, head: { id: string; name: string } | null, args: string): void {
    if (head !== null && !this.#callIndex.has(i)) {
      this.#closeMessage("completed");
      const index = this.#outputs++;
      this.#callIndex.set(i, index);
      this.#callArgs.set(i, "");
      this.state.toolCalls[i] = { id: head.id, type: "function", function: { name: head.name, arguments: "" } };
      this.#emit("response.output_item.added", () => ({ output_index: index, item: callItem(this.#base, this.state.toolCalls[i]!, "in_progress") }));
    }
    const attempt = (this.#attemptArgs.get(i) ?? "") + args;
    this.#attemptArgs.set(i, attempt);
    const sent = this.#callArgs.get(i);
    const index = this.#callIndex.get(i);
    if (sent === undefined || index === undefined || attempt.length <= sent.length) return;
    const delta = attempt.slice(sent.length);
    this.#callArgs.set(i, attempt);
    const call = this.state.toolCalls[i]!;
    call.function.arguments = attempt;
    this.#emit("response.function_call_arguments.delta", () => ({ item_id: functionCallItemId(call.id), output_index: index, delta }));
  }

  #closeMessage(status: "completed" | "incomplete"): void {
    if (this.#messageIndex === null || this.#messageDone) return;
    this.#messageDone = true;
    const index = this.#messageIndex;
    const text = this.state.text;
    const logprobs = this.state.logprobs ?? [];
    const itemId = messageItemId(this.#base?.requestId ?? "");
    this.#emit("response.output_text.done", () => ({ item_id: itemId, output_index: index, content_index: 0, text, logprobs: responseLogprobs(logprobs) }));
    this.#emit("response.content_part.done", () => ({
      item_id: itemId,
      output_index: index,
      content_index: 0,
      part: { type: "output_text", text, annotations: [], logprobs: responseLogprobs(logprobs) },
    }));
    this.#emit("response.output_item.done", () => ({ output_index: index, item: messageItem(this.#base!, text, status, logprobs) }));
  }

  #closeItems(status: "completed" | "incomplete"): void {
    this.#closeMessage(status);
    for (const [i, index] of this.#callIndex) {
      const call = this.state.toolCalls[i]!;
      this.#emit("response.function_call_arguments.done", () => ({
        item_id: functionCallItemId(call.id),
        output_index: index,
        name: call.function.name,
        arguments: call.function.arguments,
      }));
      this.#emit("response.output_item.done", () => ({ output_index: index, item: callItem(this.#base, call, "completed") }));
    }
    this.#callIndex.clear();
  }

  #object(): ResponseObject {
    return responseObject(this.#base!, { ...this.state, toolCalls: [...this.state.toolCalls] });
  }

  /** Numbers every event; builds it only when there is a stream to send it on. */
  #emit(type: string, body: () => Record<string, unknown>): void {
    const sequence_number = this.#seq++;
    if (this.#base !== null) this.#out.push({ type, sequence_number, ...body() });
  }
}
