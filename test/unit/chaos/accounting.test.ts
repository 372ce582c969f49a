/**
 * The chaos accounting on made-up topics and client logs: a clean run passes, and each
 * kind of failure the chaos run exists to catch (lost, answered twice, reordered,
 * misremembered, undelivered, a turn applied twice) is counted and fails it. Without
 * this, a chaos run that passes could be an accounting that cannot fail.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { account, type AccountingInput } from "../../../chaos/accounting.js";
import { turnContent, type ClientConversation, type ClientTurn } from "../../../chaos/client.js";
import type { FaultRecord } from "../../../chaos/faults.js";
import type { LoggedRecord } from "../../../chaos/kafka-log.js";
import { nextFingers } from "../../../contracts/history-chain.js";
import type { ChatEvent, FinalEvent } from "../../../contracts/records/events.js";

const T0 = 1_700_000_000_000;

type StoredMessage = { role: "user" | "assistant"; content: string; request_id: string; at: number };

/** A small world: conversations c0, c1 on partitions 0 and 1, two turns each, all well. */
class World {
  requests: LoggedRecord[] = [];
  events: LoggedRecord[] = [];
  memory: LoggedRecord[] = [];
  history: LoggedRecord[] = [];
  conversations: ClientConversation[] = [];
  faults: FaultRecord[] = [];
  #offsets = new Map<string, bigint>();
  #epochs = 0;

  constructor(
    conversations = 2,
    readonly turns = 2,
    options: { keys?: boolean } = {},
  ) {
    for (let c = 0; c < conversations; c++) {
      const id = `c${c}`;
      const conversation: ClientConversation = { id, turns: [], gaveUp: null };
      const messages: StoredMessage[] = [];
      for (let n = 1; n <= turns; n++) {
        const requestId = `${id}-r${n}`;
        const content = turnContent(id, n, options.keys === false ? 1 : null);
        const at = T0 + n * 10_000 + c;
        this.request(id, c, requestId, content, at);
        const final = this.run(id, c, requestId, `a${n}`, `reply ${n} of ${id}`, at + 1000);
        conversation.turns.push(turn(n, requestId, content, final, at));
        messages.push({ role: "user", content, request_id: requestId, at }, { role: "assistant", content: final.reply, request_id: requestId, at });
      }
      this.conversations.push(conversation);
      this.remember(id, c, messages, turns);
    }
  }

  input(keys = true): AccountingInput {
    return {
      conversations: this.conversations,
      turnsPerConversation: this.turns,
      idempotencyKeys: keys,
      faults: this.faults,
      requests: this.requests,
      events: this.events,
      memory: this.memory,
      history: this.history,
    };
  }

  request(conversationId: string, partition: number, requestId: string, content: string, createdAt: number): void {
    const value = { v: 1, type: "turn", request_id: requestId, conversation_id: conversationId, tenant: "chaos", content, created_at: createdAt };
    this.requests.push(this.#record("chat.requests", partition, `chaos/${conversationId}`, value));
  }

  /** start, one delta, final: returns the final. */
  run(conversationId: string, partition: number, requestId: string, attempt: string, reply: string, at: number): FinalEvent {
    const base = { v: 1, request_id: requestId, conversation_id: conversationId, tenant: "chaos", attempt, at } as const;
    this.event(partition, { ...base, seq: 0, type: "start", worker_id: "w" });
    this.event(partition, { ...base, seq: 1, type: "delta", text: reply });
    const final: FinalEvent = {
      ...base,
      seq: 2,
      type: "final",
      reply,
      stop_reason: "stop",
      usage: { prompt_tokens: 5, cached_prompt_tokens: 0, completion_tokens: 3 },
      timings: { queue_wait_ms: 1, time_to_first_token_ms: 1, generation_ms: 2 },
    };
    this.event(partition, final);
    return final;
  }

  event(partition: number, event: ChatEvent): void {
    this.events.push(this.#record("chat.events", partition, `chaos/${event.conversation_id}`, event));
  }

  /**
   * The conversation's chat.memory state holding `messages`, and the chat.history chain it
   * points at, one record per request, holding `historyMessages` (default: the same). Each
   * call writes a new chain: the earlier one's records stay on the topic, reached by nothing.
   */
  remember(conversationId: string, partition: number, messages: StoredMessage[], turns: number, historyMessages: StoredMessage[] = messages): void {
    const epoch = `e${++this.#epochs}`;
    let fingers: number[] = [];
    let seq = 0;
    let index = 0;
    for (let i = 0; i < historyMessages.length;) {
      const requestId = historyMessages[i]!.request_id;
      const group: StoredMessage[] = [];
      while (i < historyMessages.length && historyMessages[i]!.request_id === requestId) group.push(historyMessages[i++]!);
      const record = {
        v: 1,
        type: "history",
        conversation_id: conversationId,
        tenant: "chaos",
        epoch,
        seq,
        index,
        request_id: requestId,
        at: T0,
        messages: group.map(({ role, content }) => ({ role, content })),
        links: fingers,
      };
      const logged = this.#record("chat.history", partition, `chaos/${conversationId}`, record);
      this.history.push(logged);
      fingers = nextFingers(fingers, seq, Number(logged.offset));
      seq++;
      index += group.length;
    }
    const state = {
      v: 1,
      type: "conversation",
      conversation_id: conversationId,
      tenant: "chaos",
      messages,
      applied: [],
      turns,
      created_at: T0,
      updated_at: T0,
      ...(seq > 0 && { history: { epoch, partition, records: seq, messages: index, fingers } }),
    };
    this.memory.push(this.#record("chat.memory", partition, `chaos/${conversationId}`, state));
  }

  /** Drops records matching `match` from a topic's list. */
  drop(list: "requests" | "events" | "memory", match: (value: any) => boolean): void {
    this[list] = this[list].filter((r) => !match(JSON.parse(r.value!.toString())));
  }

  #record(topic: string, partition: number, key: string, value: unknown): LoggedRecord {
    const k = `${topic}/${partition}`;
    const offset = this.#offsets.get(k) ?? 0n;
    this.#offsets.set(k, offset + 1n);
    return { topic, partition, offset, key, value: Buffer.from(JSON.stringify(value)), headers: {}, timestamp: T0 };
  }
}

function turn(n: number, requestId: string, content: string, final: FinalEvent, at: number): ClientTurn {
  return {
    n,
    tries: [{ content, at, ms: 5, outcome: "accepted", status: 202, requestId }],
    requestId,
    acceptedAt: at,
    terminal: final,
    terminalAt: at + 1000,
    followedAttempt: final.attempt,
    streamedText: final.reply,
    connects: 1,
    drops: 0,
    serverEnds: 0,
    stalls: 0,
    lostStreams: 0,
    reconnectMessages: 0,
    gatewayMoves: 0,
    longestResumeMs: 0,
    discardedAttempts: 0,
    problems: [],
  };
}

describe("chaos accounting", () => {
  it("passes a run where every turn was answered once, in order, and remembered", () => {
    const a = account(new World().input());
    assert.equal(a.ok, true, a.anomalies.join("\n"));
    assert.deepEqual([a.planned, a.sent, a.answeredOnce, a.lost, a.answeredTwice, a.outOfOrder, a.memoryChecked, a.memoryMismatches], [4, 4, 4, 0, 0, 0, 2, 0]);
    assert.deepEqual([a.historyChecked, a.historyMismatches], [2, 0]);
  });

  it("finds a history chain that misses a turn, repeats one, or has them out of order, and ignores records no chain reaches", () => {
    for (const change of [
      (m: StoredMessage[]) => m.slice(0, 2),
      (m: StoredMessage[]) => [...m, ...m.slice(2)],
      (m: StoredMessage[]) => [...m.slice(2), ...m.slice(0, 2)],
    ]) {
      const w = new World(1, 2);
      const state = JSON.parse(w.memory[0]!.value!.toString());
      w.remember("c0", 0, state.messages, 2, change(state.messages));
      const a = account(w.input());
      assert.equal(a.memoryMismatches, 0, a.anomalies.join("\n"));
      assert.equal(a.historyMismatches, 1, JSON.stringify(change(state.messages)));
      assert.equal(a.ok, false);
    }
    // A chain written again (a worker died between its history and memory writes, the next
    // one wrote its own): the first chain's records stay on the topic, reached by nothing.
    const w = new World(1, 2);
    const state = JSON.parse(w.memory[0]!.value!.toString());
    w.remember("c0", 0, state.messages, 2);
    const a = account(w.input());
    assert.equal(w.history.length, 4, "two chains of two records on the topic");
    assert.deepEqual([a.historyChecked, a.historyMismatches], [1, 0], a.anomalies.join("\n"));
    assert.equal(a.ok, true, a.anomalies.join("\n"));
  });

  it("counts a request with no terminal event as lost", () => {
    const w = new World();
    w.drop("events", (e) => e.request_id === "c0-r2" && e.type === "final");
    w.conversations[0]!.turns[1]!.terminal = null;
    const a = account(w.input());
    assert.equal(a.lost, 1);
    assert.equal(a.ok, false);
  });

  it("counts a 202 whose request never reached chat.requests as lost", () => {
    const w = new World();
    w.drop("requests", (r) => r.request_id === "c1-r1");
    const a = account(w.input());
    assert.equal(a.lost, 1);
    assert.equal(a.ok, false);
  });

  it("counts two different finals as answered twice, and identical repeats as once", () => {
    const w = new World();
    const first = w.events.find((r) => JSON.parse(r.value!.toString()).request_id === "c0-r1" && JSON.parse(r.value!.toString()).type === "final")!;
    const parsed = JSON.parse(first.value!.toString());
    // The same final re-announced, keys in another order: equal.
    const reordered = Object.fromEntries(Object.entries(parsed).reverse());
    w.event(0, reordered as ChatEvent);
    let a = account(w.input());
    assert.equal(a.ok, true, a.anomalies.join("\n"));
    assert.equal(a.repeatedTerminals, 1);

    w.event(0, { ...parsed, attempt: "other", reply: "a different answer" });
    a = account(w.input());
    assert.equal(a.answeredTwice, 1);
    assert.equal(a.ok, false);
  });

  it("counts a request that started before the one before it ended as out of order", () => {
    const w = new World(1, 2);
    // Move turn 2's events before turn 1's final: rebuild chat.events in a bad order.
    const values = w.events.map((r) => JSON.parse(r.value!.toString()) as ChatEvent);
    w.events = [];
    const order = [0, 1, 3, 4, 5, 2]; // r1 start, r1 delta, r2 start/delta/final, r1 final
    for (const i of order) w.event(0, values[i]!);
    const a = account(w.input());
    assert.ok(a.outOfOrder >= 1, a.anomalies.join("\n"));
    assert.equal(a.ok, false);
  });

  it("orders events of turns on different events partitions (accepted by different gateway replicas) by when they were produced", () => {
    // Turn 1's events on partition 3, turn 2's on partition 0 at lower offsets: in order by time.
    const inOrder = new World(1, 2);
    const values = inOrder.events.map((r) => JSON.parse(r.value!.toString()) as ChatEvent);
    inOrder.events = [];
    for (const v of values.slice(3)) inOrder.event(0, v);
    for (const v of values.slice(0, 3)) inOrder.event(3, v);
    let a = account(inOrder.input());
    assert.equal(a.outOfOrder, 0, a.anomalies.join("\n"));
    assert.ok(a.ok, a.anomalies.join("\n"));

    // Turn 2 started (by its producer's clock) before turn 1's final, on another partition.
    const early = new World(1, 2);
    const shifted = early.events.map((r) => JSON.parse(r.value!.toString()) as ChatEvent);
    early.events = [];
    for (const v of shifted.slice(0, 3)) early.event(3, v);
    early.event(0, { ...shifted[3]!, at: shifted[2]!.at - 1 });
    for (const v of shifted.slice(4)) early.event(0, v);
    a = account(early.input());
    assert.equal(a.outOfOrder, 1, a.anomalies.join("\n"));
    assert.equal(a.ok, false);
  });

  it("counts requests on chat.requests in another order than the client sent them as out of order", () => {
    const w = new World(1, 2);
    w.requests.reverse();
    w.requests = w.requests.map((r, i) => ({ ...r, offset: BigInt(i) }));
    const a = account(w.input());
    assert.ok(a.outOfOrder >= 1);
    assert.equal(a.ok, false);
  });

  it("finds a memory that misses a turn, repeats one, or has them out of order", () => {
    for (const change of [(m: any[]) => m.slice(0, 2), (m: any[]) => [...m, ...m.slice(2)], (m: any[]) => [...m.slice(2), ...m.slice(0, 2)]]) {
      const w = new World(1, 2);
      const state = JSON.parse(w.memory[0]!.value!.toString());
      w.remember("c0", 0, change(state.messages), 2);
      const a = account(w.input());
      assert.equal(a.memoryMismatches, 1, JSON.stringify(change(state.messages)));
      assert.equal(a.ok, false);
    }
  });

  it("counts a final the client never received, or received differently, as undelivered", () => {
    const w = new World();
    w.conversations[1]!.turns[0]!.terminal = null;
    let a = account(w.input());
    assert.equal(a.undelivered, 1);
    assert.equal(a.ok, false);
    const v = new World();
    const t = v.conversations[1]!.turns[0]!;
    t.terminal = { ...(t.terminal as FinalEvent), reply: "not what Kafka has" };
    a = account(v.input());
    assert.equal(a.undelivered, 1);
  });

  it("fails text streamed for the final's attempt that is not the start of its reply, and counts a reply completed by its final", () => {
    const w = new World();
    w.conversations[0]!.turns[0]!.streamedText = "something else";
    let a = account(w.input());
    assert.equal(a.textMismatches, 1);
    assert.equal(a.ok, false);
    // Deltas that stopped early (their sends failed; the final was re-announced): the final completes the reply.
    const v = new World();
    v.conversations[0]!.turns[0]!.streamedText = "reply 1";
    a = account(v.input());
    assert.equal(a.deltaGaps, 1);
    assert.equal(a.textMismatches, 0);
    assert.equal(a.ok, true, a.anomalies.join("\n"));
  });

  it("counts a turn that reached Kafka under a second request id after a 503: a failure with idempotency keys only", () => {
    for (const keys of [true, false]) {
      const w = new World(1, 1, { keys });
      const t = w.conversations[0]!.turns[0]!;
      const ghostContent = turnContent("c0", 1, keys ? null : 2);
      t.tries.unshift({ content: ghostContent, at: T0, ms: 3000, outcome: "unavailable", status: 503 });
      // The 503'd copy lands after all and is run as a request of its own.
      w.request("c0", 0, "ghost", ghostContent, T0 + 20_000);
      const final = w.run("c0", 0, "ghost", "g", "ghost reply", T0 + 21_000);
      const state = JSON.parse(w.memory[0]!.value!.toString());
      w.remember(
        "c0",
        0,
        [
          ...state.messages,
          { role: "user", content: ghostContent, request_id: "ghost", at: 1 },
          { role: "assistant", content: final.reply, request_id: "ghost", at: 1 },
        ],
        2,
      );
      const a = account(w.input(keys));
      assert.equal(a.ghosts, 1);
      assert.equal(a.memoryMismatches, 0, a.anomalies.join("\n"));
      assert.equal(a.ok, !keys, `keys ${keys}`);
    }
  });

  it("counts a request no client sent", () => {
    const w = new World(1, 1);
    w.request("c0", 0, "stranger", "hello", T0 + 50_000);
    w.run("c0", 0, "stranger", "s", "x", T0 + 50_001);
    const a = account(w.input());
    assert.equal(a.strangers, 1);
    assert.equal(a.ok, false);
  });

  it("fails a run whose clients could not send every turn", () => {
    const w = new World();
    // c0 never sent its second turn: it is nowhere.
    w.conversations[0]!.turns.pop();
    w.conversations[0]!.gaveUp = "the run's deadline passed";
    w.drop("requests", (r) => r.request_id === "c0-r2");
    w.drop("events", (e) => e.request_id === "c0-r2");
    const state = JSON.parse(w.memory[0]!.value!.toString());
    w.remember("c0", 0, state.messages.slice(0, 2), 1);
    const a = account(w.input());
    assert.equal(a.notSent, 1);
    assert.equal(a.ok, false);
  });

  it("measures recovery per partition with work waiting at the fault, up to its next final", () => {
    const w = new World(2, 2);
    // c0 turn 2 (partition 0) was accepted at T0+20000 and answered at T0+21000. A kill at
    // T0+20500 finds it waiting: partition 0 recovers 500 ms later. Partition 1's turn
    // (created T0+20001, answered T0+21001) waits too: 501 ms.
    w.faults.push({ kind: "worker_kill", target: "w1.1", at: T0 + 20_500, restoredAt: null });
    // Nothing waits at T0+5000 (before every turn): no recovery to measure for that fault.
    w.faults.push({ kind: "worker_kill", target: "w2.1", at: T0 + 5_000, restoredAt: null });
    const a = account(w.input());
    assert.deepEqual(a.recoveries[0]!.partitions, [
      { partition: 0, ms: 500 },
      { partition: 1, ms: 501 },
    ]);
    assert.equal(a.recoveries[1]!.longestMs, null);
    assert.equal(a.longestRecoveryMs, 501);
  });

  it("counts re-runs: a new attempt whose start made the client discard its text", () => {
    const w = new World(1, 1);
    // An abandoned attempt before the one that finished.
    const abandoned = w.events.splice(0, w.events.length);
    w.event(0, { v: 1, request_id: "c0-r1", conversation_id: "c0", tenant: "chaos", attempt: "dead", at: T0, seq: 0, type: "start", worker_id: "w" });
    for (const r of abandoned) w.event(0, JSON.parse(r.value!.toString()));
    w.conversations[0]!.turns[0]!.discardedAttempts = 1;
    const a = account(w.input());
    assert.equal(a.ok, true, a.anomalies.join("\n"));
    assert.equal(a.reruns, 1);
    assert.equal(a.discardedAttempts, 1);
  });
});
