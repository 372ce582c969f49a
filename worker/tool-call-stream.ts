/**
 * Tool-call fragments as tool_call_delta events, batched like text deltas (DeltaBatcher:
 * the first at once, then at most one per flush interval per call), so fast tokens never
 * make one Kafka record each. A call's first event carries its id and name.
 */
import { createHash } from "node:crypto";
import { DeltaBatcher } from "./delta-batcher.js";
import type { EventWriter } from "./event-writer.js";
import type { ToolCallFragment } from "./tool-calls.js";

export class ToolCallStream {
  readonly #batchers = new Map<number, DeltaBatcher>();
  readonly #heads = new Map<number, { id: string; name: string }>();
  readonly #options: { flushMs: number; maxChars: number };
  readonly #events: EventWriter;
  readonly #choice: number | undefined;

  constructor(events: EventWriter, options: { flushMs: number; maxChars: number }, choice?: number) {
    this.#events = events;
    this.#options = options;
    this.#choice = choice;
  }

  push(fragment: ToolCallFragment): void {
    if (fragment.id !== undefined && fragment.name !== undefined) this.#heads.set(fragment.index, { id: fragment.id, name: fragment.name });
    let batcher = this.#batchers.get(fragment.index);
    if (batcher === undefined) {
      batcher = new DeltaBatcher({ ...this.#options, emit: (chunk) => this.#emit(fragment.index, chunk.text) });
      this.#batchers.set(fragment.index, batcher);
      // A head without arguments yet still goes out first, so the client learns the call.
      if (fragment.arguments === "") this.#emit(fragment.index, "");
    }
    if (fragment.arguments) batcher.push(fragment.arguments);
  }

  flush(): void {
    for (const b of this.#batchers.values()) b.flush();
  }

  #emit(index: number, text: string): void {
    const head = this.#heads.get(index);
    this.#heads.delete(index);
    this.#events.write({
      type: "tool_call_delta",
      ...(this.#choice === undefined ? {} : { choice: this.#choice }),
      index,
      ...(head ?? {}),
      arguments: text,
    });
  }
}

/**
 * Tool call ids that a re-run of the same request (a takeover) makes again, so a client
 * that saw a call's first fragments sees the same call finish: "call_" and 24 characters
 * from the request id, the choice and the call's index.
 */
export function stableCallId(requestId: string, choice: number): (index: number) => string {
  return (index) => `call_${createHash("sha256").update(`${requestId}\0${choice}\0${index}`).digest("base64url").slice(0, 24)}`;
}
