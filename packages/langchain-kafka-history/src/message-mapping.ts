/**
 * LangChain messages to the gateway's history roles and back: HumanMessage ↔ user,
 * AIMessage ↔ assistant, SystemMessage ↔ system. The history keeps text only, so any
 * other message type (tool, function, chat with a custom role), an AI message that
 * carries tool calls, and content that is not text are refused with an error that
 * says what cannot be stored.
 */
import { AIMessage, HumanMessage, SystemMessage, type BaseMessage } from "@langchain/core/messages";

export type HistoryRole = "user" | "assistant" | "system";

/** One message as POST /v1/conversations/{id}/history takes it. */
export interface HistoryInput {
  role: HistoryRole;
  content: string;
}

/** One message as GET /v1/conversations/{id}/messages returns it. */
export interface HistoryRecord {
  index: number;
  role: string;
  content: string;
  created_at: number | string;
  request_id: string | null;
}

const ROLE_OF_TYPE: Record<string, HistoryRole> = { human: "user", ai: "assistant", system: "system" };

/** The role and text the gateway stores for `message`; throws for what it cannot store. */
export function toHistoryInput(message: BaseMessage): HistoryInput {
  const type = message._getType();
  const role = ROLE_OF_TYPE[type];
  if (role === undefined) {
    throw new TypeError(
      `KafkaChatMessageHistory stores human, ai and system messages only; got a "${type}" message. Convert it to one of those (e.g. new HumanMessage(text)) before adding it.`,
    );
  }
  if (role === "assistant" && (message as AIMessage).tool_calls?.length) {
    throw new TypeError("KafkaChatMessageHistory stores text only; an AI message with tool_calls cannot be stored. Store its text as a new AIMessage(text).");
  }
  return { role, content: textOf(message.content, type) };
}

/** The LangChain message for a stored record; throws for a role this package does not know. */
export function fromHistoryRecord(record: HistoryRecord): BaseMessage {
  const fields = { content: record.content, additional_kwargs: {}, response_metadata: {} };
  switch (record.role) {
    case "user":
      return new HumanMessage(fields);
    case "assistant":
      return new AIMessage(fields);
    case "system":
      return new SystemMessage(fields);
    default:
      throw new TypeError(`the gateway returned a message with role "${record.role}" (index ${record.index}), which this package does not know; upgrade it`);
  }
}

function textOf(content: BaseMessage["content"], type: string): string {
  if (typeof content === "string") return content;
  const texts: string[] = [];
  for (const part of content) {
    if (typeof part === "string") texts.push(part);
    else if (part.type === "text" && typeof part.text === "string") texts.push(part.text);
    else
      throw new TypeError(`KafkaChatMessageHistory stores text only; a "${type}" message has a "${String(part.type)}" content part. Keep only its text parts.`);
  }
  return texts.join("");
}
