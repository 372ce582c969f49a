/** Each request on chat.requests, by its terminal events: answered once, lost, answered twice, or failed. */
import { isDeepStrictEqual } from "node:util";
import { isTerminalEvent, type ErrorEvent, type FinalEvent } from "../../contracts/records/events.js";
import type { TopicIndex } from "./topics.js";

export type Verdict = "once" | "lost" | "twice" | "failed";

export interface RequestVerdicts {
  readonly verdict: ReadonlyMap<string, Verdict>;
  /** Requests run under more than one attempt. */
  readonly reruns: number;
  /** Terminal events repeated unchanged (a replay re-announcing the stored final). */
  readonly repeatedTerminals: number;
  /** Request partition → worker timestamps of its requests' first terminal events. */
  readonly finalsByPartition: ReadonlyMap<number, readonly number[]>;
}

export function judgeRequests(index: TopicIndex, anomalies: string[]): RequestVerdicts {
  let reruns = 0;
  let repeatedTerminals = 0;
  const verdict = new Map<string, Verdict>();
  const finalsByPartition = new Map<number, number[]>();
  for (const [id, entry] of index.requestById) {
    const events = index.eventsById.get(id) ?? [];
    const terminals = events.filter((e) => isTerminalEvent(e.event)).map((e) => e.event as FinalEvent | ErrorEvent);
    const distinct: Array<FinalEvent | ErrorEvent> = [];
    for (const t of terminals) if (!distinct.some((d) => isDeepStrictEqual(d, t))) distinct.push(t);
    repeatedTerminals += terminals.length - distinct.length;
    if (new Set(events.map((e) => e.event.attempt)).size > 1) reruns++;
    const where = `${entry.request.conversation_id} request ${id}`;
    if (distinct.length === 0) {
      verdict.set(id, "lost");
    } else if (distinct.length > 1) {
      verdict.set(id, "twice");
      anomalies.push(`${where}: ${distinct.length} different terminal events: ${distinct.map((d) => JSON.stringify(d)).join(" | ")}`);
    } else {
      const t = distinct[0]!;
      const failed = t.type === "error" || t.stop_reason === "error" || t.stop_reason === "cancelled";
      verdict.set(id, failed ? "failed" : "once");
      if (failed) anomalies.push(`${where}: ended with ${JSON.stringify(t)}`);
    }
    const first = index.firstTerminal(id);
    if (first) {
      const list = finalsByPartition.get(entry.partition) ?? [];
      list.push(first.event.at);
      finalsByPartition.set(entry.partition, list);
    }
  }
  return { verdict, reruns, repeatedTerminals, finalsByPartition };
}
