/**
 * A request's status as the API reports it, derived from the events the hub holds, so a
 * long generation can be polled instead of streamed, on any replica.
 *
 *   queued     accepted, no worker has started it yet
 *   running    started; `reply` is the text generated so far
 *   completed  final event with stop_reason stop, length or tool_calls
 *   cancelled  final event with stop_reason cancelled; `reply` is the partial reply
 *   failed     error event, or a final event with stop_reason error
 */
import type { Choice, StopReason, Timings, Usage } from "../contracts/records/events.js";
import type { ToolCall } from "../contracts/generation-params.js";
import type { RequestSnapshot } from "./event-hub.js";

export type RequestStatusName = "queued" | "running" | "completed" | "cancelled" | "failed";

export interface RequestStatus {
  request_id: string;
  conversation_id: string;
  status: RequestStatusName;
  reply: string;
  stop_reason: StopReason | null;
  usage: Usage | null;
  timings: Timings | null;
  error: { code: string; message: string; retryable: boolean } | null;
  /** The worker running (or that ran) the current attempt. */
  worker_id: string | null;
  /** The calls the reply made (stop_reason tool_calls); only when there are some. */
  tool_calls?: ToolCall[];
  /** Every choice of an OpenAI request with n > 1; `reply` is choice 0's. */
  choices?: Choice[];
}

export function requestStatus(requestId: string, snapshot: RequestSnapshot): RequestStatus {
  const status: RequestStatus = {
    request_id: requestId,
    conversation_id: snapshot.conversationId,
    status: "queued",
    reply: "",
    stop_reason: null,
    usage: null,
    timings: null,
    error: null,
    worker_id: null,
  };
  for (const event of snapshot.events) {
    switch (event.type) {
      case "start":
        status.status = "running";
        status.worker_id = event.worker_id;
        status.reply = "";
        break;
      case "delta":
        status.reply += event.text;
        break;
      case "final":
        status.reply = event.reply;
        status.stop_reason = event.stop_reason;
        status.usage = event.usage;
        status.timings = event.timings;
        if (event.tool_calls) status.tool_calls = event.tool_calls;
        if (event.choices) status.choices = event.choices;
        status.status = event.stop_reason === "cancelled" ? "cancelled" : event.stop_reason === "error" ? "failed" : "completed";
        break;
      case "error":
        status.status = "failed";
        status.stop_reason = "error";
        status.error = { code: event.code, message: event.message, retryable: event.retryable };
        break;
    }
  }
  return status;
}
