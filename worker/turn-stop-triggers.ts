/**
 * Where a reply ends besides the end-of-turn token: the point where the model starts a
 * new turn itself. A chat-tuned model ends its turn with the template's end-of-turn
 * token; a base model (the demo's Gemma 3 270M) often skips it and writes the next
 * turn's header, then the user's next message. The headers come from the model's own
 * chat template, so this holds for any chat wrapper without per-model code; `extra` are
 * plain-text triggers from the worker's STOP_TRIGGERS.
 */
import { LlamaText, SpecialToken, SpecialTokensText, type ChatHistoryItem, type ChatWrapper } from "node-llama-cpp";

export type StopTrigger = LlamaText | string;

/** Stand-ins no template contains, to find the text between two messages. */
const FIRST = "\u2060kafka-llm-first\u2060";
const SECOND = "\u2060kafka-llm-second\u2060";
const THIRD = "\u2060kafka-llm-third\u2060";

/**
 * The headers that open a user turn and a model turn in `wrapper`'s template, without the
 * end-of-turn text before them (e.g. Gemma's `<start_of_turn>user`, ChatML's
 * `<|im_start|>user`); empty when the template has none.
 */
export function turnHeaders(wrapper: ChatWrapper): string[] {
  const history: ChatHistoryItem[] = [
    { type: "user", text: FIRST },
    { type: "model", response: [SECOND] },
    { type: "user", text: THIRD },
    { type: "model", response: [] },
  ];
  let state: ReturnType<ChatWrapper["generateContextState"]>;
  try {
    state = wrapper.generateContextState({ chatHistory: history });
  } catch {
    // A template that cannot render this history (some Jinja templates insist on their own
    // shapes) has no headers to find; the end-of-turn token still ends replies.
    return [];
  }
  // Builtin tokens (BOS, EOS) have no text a model could write; leave them out.
  const asText = (t: LlamaText) => t.mapValues((v) => (v instanceof SpecialToken ? "" : v)).toString();
  const text = asText(state.contextText);
  const ends = state.stopGenerationTriggers.map(asText).filter((t) => t.trim() !== "");
  const between = (after: string, before: string | null): string => {
    const from = text.indexOf(after);
    if (from < 0) return "";
    const start = from + after.length;
    return before === null ? text.slice(start) : text.slice(start, Math.max(start, text.indexOf(before, start)));
  };
  const headers = [between(SECOND, THIRD), between(THIRD, null)].map((separator) => {
    let header = separator;
    // Drop the end of the previous turn (the longest end-of-turn trigger it starts with).
    const end = ends.filter((e) => header.startsWith(e)).sort((a, b) => b.length - a.length)[0];
    if (end) header = header.slice(end.length);
    return header.trim();
  });
  return [...new Set(headers.filter((h) => h !== ""))];
}

/**
 * The stop triggers of one generation: each turn header as the template's special
 * tokens and as plain text (a model may spell it either way), then `extra`.
 */
export function turnStopTriggers(wrapper: ChatWrapper, extra: readonly string[] = []): StopTrigger[] {
  const triggers: StopTrigger[] = [];
  for (const header of turnHeaders(wrapper)) triggers.push(LlamaText(new SpecialTokensText(header)), header);
  for (const e of extra) if (e !== "") triggers.push(e);
  return triggers;
}
