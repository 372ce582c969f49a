/**
 * The worker's turn through its ports: a stand-in producer (the record sink), a stand-in
 * state store (the memory port) and a scripted generator, so the order of a turn's writes
 * and its outcomes are checked in milliseconds, without Kafka or a model. The integration
 * tests run the same turn against the real broker and a real GGUF.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadWorkerConfig } from "../../../contracts/config/worker.js";
import { APPLIED_WINDOW, conversationStateSchema, type ConversationState, type Handover } from "../../../contracts/records/memory.js";
import { SCHEMA_VERSION } from "../../../contracts/records/fields.js";
import { chatEventSchema, type ChatEvent, type FinalEvent } from "../../../contracts/records/events.js";
import { encodeRecord } from "../../../contracts/records/codec.js";
import type { TurnRequest } from "../../../contracts/records/requests.js";
import { topicNames } from "../../../contracts/topics.js";
import { createLogger } from "../../../platform/logger.js";
import { Cancellations } from "../../../worker/cancellations.js";
import { appliedEntry, newConversation } from "../../../worker/conversation.js";
import { keyPartition } from "../../../platform/kafka/partitioner.js";
import type { RecordSink } from "../../../platform/kafka/producer.js";
import type { OffsetFetcher } from "../../../platform/kafka/offset-reader.js";
import { FinalPositions, type ReplaySources } from "../../../worker/replay.js";
import type { GenerateInput, GenerateResult } from "../../../worker/generator.js";
import { createWorkerMetrics } from "../../../worker/metrics.js";
import { SlotPool } from "../../../worker/slot-pool.js";
import { HistoryWriter } from "../../../worker/history-writer.js";
import { runRequest, type MemoryPort, type TurnContext, type TurnRecord } from "../../../worker/turn.js";

const topics = topicNames("");

/** Everything the turn did, in order: "event:<type>", "dlq", "memory:<key>", "handover", "commit". */
function harness(
  options: {
    state?: ConversationState;
    handover?: Handover;
    owner?: boolean;
    chunks?: string[];
    waitForAbort?: boolean;
    /** Sends to chat.events after the first are acked only once this resolves ("acked:events" in the log). */
    eventAcks?: Promise<void>;
  } = {},
) {
  const log: string[] = [];
  const events: ChatEvent[] = [];
  const written: Array<{ key: string; state: ConversationState | null }> = [];
  let handedOver: Handover | null = null;
  let current = options.state;
  const config = loadWorkerConfig({ MODEL: "m", WORKER_ID: "w-test", WORKER_HTTP_HOST: "127.0.0.1", DELTA_FLUSH_MS: "1" });
  /** chat.events and chat.history as the stand-in producer wrote them, by partition; `low`: each partition's log start. */
  const topicLog = (): { records: Map<number, Buffer[]>; low: Map<number, number> } => ({ records: new Map(), low: new Map() });
  const eventLog = topicLog();
  const historyLog = topicLog();
  const appendTo = (t: ReturnType<typeof topicLog>, partition: number, values: Buffer[]): number => {
    const records = t.records.get(partition) ?? [];
    t.records.set(partition, records);
    records.push(...values);
    return records.length - values.length;
  };
  const producer: RecordSink = {
    send: async (r) => {
      if (r.topic === topics.events) {
        const first = r.messages[0]!;
        const partition = first.partition ?? keyPartition(String(first.key), config.kafka.eventPartitions);
        for (const m of r.messages) {
          assert.equal(m.partition ?? keyPartition(String(m.key), config.kafka.eventPartitions), partition, "one send, one partition");
          const e = chatEventSchema.parse(JSON.parse(String(m.value)));
          events.push(e);
          log.push(`event:${e.type}`);
        }
        const base = appendTo(
          eventLog,
          partition,
          r.messages.map((m) => m.value as Buffer),
        );
        if (options.eventAcks && base > 0) {
          await options.eventAcks;
          log.push("acked:events");
        }
        return r.messages.map((_, i) => ({ partition, offset: base + i }));
      }
      for (const _ of r.messages) log.push(r.topic === topics.deadLetter ? "dlq" : `send:${r.topic}`);
      return r.messages.map((_, i) => ({ partition: 0, offset: i }));
    },
  };
  const reader = (t: ReturnType<typeof topicLog>): ReplaySources["events"] => {
    const at = (p: number, o: number) => {
      const value = t.records.get(p)?.[o];
      return value && o >= (t.low.get(p) ?? 0) ? { offset: o, key: null, value } : null;
    };
    const fetcher: OffsetFetcher = {
      fetch: async (p, o) => at(p, o),
      scan: async (p, from, end, visit) => {
        for (let o = Math.max(from, t.low.get(p) ?? 0); o < end; o++) {
          const r = at(p, o);
          if (r && visit(r)) return r;
        }
        return null;
      },
      watermarks: async (p) => ({ low: t.low.get(p) ?? 0, high: t.records.get(p)?.length ?? 0 }),
    };
    return { withFetcher: (read) => read(fetcher), end: async (p) => t.records.get(p)?.length ?? 0 };
  };
  const loads: string[] = [];
  const memory: MemoryPort = {
    load: async (_p, key) => {
      loads.push(key);
      return { ...(current && { state: current }), ...(options.handover && { handover: options.handover }) };
    },
    writeIfOwner: async (_p, key, pending) => {
      const state = await pending;
      if (options.owner === false) return false;
      written.push({ key, state });
      log.push(`memory:${key}`);
      current = state ?? undefined;
      return true;
    },
    handOver: async (_p, h) => {
      handedOver = h;
      log.push("handover");
      return true;
    },
    clearHandover: async () => true,
    committed: () => {},
    forget: () => {},
  };
  const seen: GenerateInput[] = [];
  const generator = {
    clearCache: async () => {},
    async generate(input: GenerateInput): Promise<GenerateResult> {
      seen.push(input);
      let text = "";
      for (const chunk of options.chunks ?? ["Once", " upon", " a time."]) {
        if (input.signal?.aborted) break;
        text += chunk;
        input.onText(chunk);
        await new Promise((r) => setTimeout(r, 2));
      }
      if (options.waitForAbort && !input.signal?.aborted) await new Promise((r) => input.signal!.addEventListener("abort", r, { once: true }));
      const stopped = input.signal?.aborted ?? false;
      return {
        reply: (input.continueFrom ?? "") + text,
        stopReason: stopped ? "cancelled" : "stop",
        promptTokens: 10,
        cachedPromptTokens: 0,
        completionTokens: 3,
        timeToFirstTokenMs: 1,
        generationMs: 5,
      };
    },
  };
  const ctx: TurnContext = {
    config,
    topics,
    producer,
    memory,
    history: new HistoryWriter(
      {
        send: async (r) => {
          log.push(`history:${r.messages.length}`);
          const base = appendTo(
            historyLog,
            0,
            r.messages.map((m) => m.value as Buffer),
          );
          return r.messages.map((_, i) => ({ partition: 0, offset: base + i }));
        },
      },
      topics.history,
    ),
    slots: new SlotPool([generator], { clear: async () => {} }),
    cancellations: new Cancellations(),
    metrics: createWorkerMetrics("w-test"),
    logger: createLogger("test", "silent"),
    countTokens: (t) => t.split(/\s+/).length,
    replay: { events: reader(eventLog), history: reader(historyLog) },
    finals: new FinalPositions(),
  };
  const revoke = new AbortController();
  /** A record of chat.requests as the gateway writes it: keyed by its conversation key, in that key's partition (unless told otherwise). */
  const record = (value: Buffer | null, offset = 7, where: { key?: string; partition?: number } = {}): TurnRecord => {
    let key = where.key ?? "t/c-1";
    try {
      const r = JSON.parse(String(value)) as { tenant?: string; conversation_id?: string };
      if (where.key === undefined && r.tenant && r.conversation_id) key = `${r.tenant}/${r.conversation_id}`;
    } catch {
      // not JSON: the default key
    }
    return {
      topic: topics.requests,
      partition: where.partition ?? keyPartition(key, config.kafka.requestPartitions),
      offset: String(offset),
      key: Buffer.from(key),
      value,
      revoke: revoke.signal,
      commit: async () => {
        log.push("commit");
      },
    };
  };
  return {
    ctx,
    log,
    loads,
    events,
    written,
    seen,
    revoke,
    record,
    eventLog,
    handedOver: () => handedOver,
    state: () => current,
    /** Moves a chat.events partition's log start past `offset` (retention). */
    ageOut: (partition: number, offset: number) => eventLog.low.set(partition, offset + 1),
  };
}

const turn = (over: Partial<TurnRequest> = {}): TurnRequest => ({
  v: SCHEMA_VERSION,
  type: "turn",
  request_id: "r-1",
  conversation_id: "c-1",
  tenant: "t",
  created_at: Date.now(),
  content: "Tell me a story.",
  ...over,
});

describe("runRequest", () => {
  it("streams, writes memory before the final event, and commits last", async () => {
    const h = harness();
    assert.equal(await runRequest(h.record(encodeRecord(turn())), h.ctx), "completed");
    assert.equal(h.log[0], "event:start");
    const memoryAt = h.log.indexOf("memory:t/c-1");
    assert.ok(memoryAt > 0 && memoryAt < h.log.indexOf("event:final"), `memory before the final: ${h.log.join(", ")}`);
    assert.equal(h.log.at(-1), "commit");
    const final = h.events.find((e) => e.type === "final") as FinalEvent;
    assert.equal(final.reply, "Once upon a time.");
    assert.deepEqual(
      h.events.map((e) => e.seq),
      h.events.map((_, i) => i),
      "seqs without a gap",
    );
    const state = h.written[0]!.state!;
    assert.deepEqual(
      state.messages.map((m) => m.role),
      ["user", "assistant"],
    );
    assert.equal(appliedEntry(state, "r-1")?.newest, true);
    const historyAt = h.log.indexOf("history:1");
    assert.ok(historyAt > 0 && historyAt < memoryAt, `history before the memory record that points at it: ${h.log.join(", ")}`);
    assert.deepEqual(state.history && { records: state.history.records, messages: state.history.messages }, { records: 1, messages: 2 });
  });

  it("appends messages without a reply: history, then memory with the head, then the final", async () => {
    const h = harness({ state: newConversation("c-1", "t", 1) });
    const append = {
      v: SCHEMA_VERSION,
      type: "append",
      request_id: "r-2",
      conversation_id: "c-1",
      tenant: "t",
      created_at: Date.now(),
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi." },
      ],
    };
    assert.equal(await runRequest(h.record(encodeRecord(append)), h.ctx), "completed");
    assert.equal(h.seen.length, 0, "nothing generated");
    // The start event is sent beside the writes (its order with them does not matter).
    assert.deepEqual(
      h.log.filter((l) => l !== "event:start"),
      ["history:1", "memory:t/c-1", "event:final", "commit"],
    );
    const state = h.written[0]!.state!;
    assert.equal(state.system, "Be brief.");
    assert.deepEqual(
      state.messages.map((m) => m.content),
      ["Hi."],
    );
    assert.equal(state.history?.messages, 2);
  });

  it("dead-letters a record that is not a request and commits past it", async () => {
    const h = harness();
    assert.equal(await runRequest(h.record(Buffer.from("not json")), h.ctx), "dead_lettered");
    assert.deepEqual(h.log, ["dlq", "commit"]);
  });

  it("loads and writes a conversation by its tenant and id together", async () => {
    const h = harness();
    assert.equal(await runRequest(h.record(encodeRecord(turn({ tenant: "b", conversation_id: "support-4711" }))), h.ctx), "completed");
    assert.deepEqual(h.loads, ["b/support-4711"]);
    assert.deepEqual(
      h.written.map((w) => w.key),
      ["b/support-4711"],
    );
  });

  it("dead-letters a request whose key is not its conversation key, or not in that key's partition, and changes nothing", async () => {
    for (const where of [{ key: "c-1" }, { key: "someone-else/c-1" }, { partition: (keyPartition("t/c-1", 6) + 1) % 6 }]) {
      const h = harness();
      assert.equal(await runRequest(h.record(encodeRecord(turn()), 7, where), h.ctx), "dead_lettered", JSON.stringify(where));
      // Its client is told before the offset moves on: the record names the request.
      assert.deepEqual(h.log, ["dlq", "event:error", "commit"]);
      const [error] = h.events;
      assert.equal(error?.type === "error" && error.code, "request_dead_lettered");
      assert.equal(error?.request_id, turn().request_id);
      assert.deepEqual(h.loads, [], "nothing was read for it");
    }
  });

  it("in a transaction, writes history and memory while deltas are unacked, and sends the final only after them, with the offset", async () => {
    let ack!: () => void;
    const h = harness({ chunks: ["Once", " upon", " a time."], eventAcks: new Promise<void>((resolve) => (ack = resolve)) });
    const committed: string[] = [];
    const record: TurnRecord = {
      ...h.record(encodeRecord(turn())),
      transaction: async (work) => {
        const result = await work({
          send: async (r) => {
            for (const m of r.messages)
              h.log.push(r.topic === topics.events ? `tx:${chatEventSchema.parse(JSON.parse(String(m.value))).type}` : `tx:${r.topic}`);
            return r.messages.map((_, i) => ({ partition: 0, offset: 100 + i }));
          },
        });
        committed.push("transaction");
        return result;
      },
    };
    const running = runRequest(record, h.ctx);
    const deadline = Date.now() + 2000;
    while (h.written.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.equal(h.written.length, 1, "memory written while a delta waits for its ack");
    assert.ok(h.log.includes(`tx:${topics.history}`), `history in the transaction: ${h.log.join(", ")}`);
    assert.ok(!h.log.includes("tx:final"), "no final before the deltas are acked");
    ack();
    assert.equal(await running, "completed");
    assert.ok(h.log.indexOf("tx:final") > h.log.lastIndexOf("acked:events"), `the final after every delta's ack: ${h.log.join(", ")}`);
    assert.deepEqual(committed, ["transaction"]);
    assert.ok(!h.log.includes("commit"), "the offset went with the transaction");
  });

  it("writes nothing and asks for a retry when another worker wrote the partition since it loaded", async () => {
    const h = harness({ owner: false });
    assert.equal(await runRequest(h.record(encodeRecord(turn())), h.ctx), "retry");
    assert.ok(!h.log.includes("event:final"), "no final");
    assert.ok(!h.log.includes("commit"), "not committed");
  });

  it("hands a reply stopped at the drain bound over, uncommitted, with what the client has seen", async () => {
    const h = harness({ chunks: ["Once", " upon"], waitForAbort: true });
    const running = runRequest(h.record(encodeRecord(turn())), h.ctx);
    await new Promise((r) => setTimeout(r, 30));
    h.revoke.abort({ kind: "handover" });
    assert.equal(await running, "handed_over");
    assert.ok(!h.log.includes("commit") && !h.log.includes("event:final"));
    const handover = h.handedOver()!;
    assert.equal(handover.reply, "Once upon");
    const streamed = h.events
      .filter((e) => e.type === "delta")
      .map((e) => (e.type === "delta" ? e.text : ""))
      .join("");
    assert.equal(streamed, handover.reply, "the handover holds exactly the streamed text");
    assert.equal(handover.next_seq, h.events.length, "the next owner numbers on after the last event sent");
    assert.equal(handover.attempt, h.events[0]!.attempt);
  });

  it("continues a handed-over reply under its attempt, numbering on, without a new start", async () => {
    const handover: Handover = {
      v: SCHEMA_VERSION,
      type: "handover",
      request_id: "r-1",
      conversation_id: "c-1",
      tenant: "t",
      attempt: "w-old.1",
      next_seq: 4,
      reply: "Once upon",
      usage: { prompt_tokens: 10, cached_prompt_tokens: 0, completion_tokens: 2 },
      time_to_first_token_ms: 3,
      generation_ms: 40,
      started_at: Date.now() - 100,
      worker_id: "w-old",
    };
    const h = harness({ handover, chunks: [" a time."] });
    assert.equal(await runRequest(h.record(encodeRecord(turn())), h.ctx), "completed");
    assert.equal(h.seen[0]!.continueFrom, "Once upon");
    assert.ok(!h.events.some((e) => e.type === "start"), "no second start");
    assert.ok(h.events.every((e) => e.attempt === "w-old.1"));
    assert.deepEqual(
      h.events.map((e) => e.seq),
      h.events.map((_, i) => 4 + i),
    );
    const final = h.events.at(-1) as FinalEvent;
    assert.equal(final.reply, "Once upon a time.");
    assert.equal(final.usage.completion_tokens, 5, "tokens of both workers");
    assert.equal(final.timings.time_to_first_token_ms, 3, "the first worker's time to first token");
  });
});

describe("bounded memory records", () => {
  const finalOf = (events: readonly ChatEvent[], requestId: string) => events.find((e) => e.type === "final" && e.request_id === requestId) as FinalEvent;
  const bytes = (state: ConversationState) => encodeRecord(state).length;

  for (const words of [3, 200]) {
    it(`keeps the record's size bounded by the memory budget over 200 turns (replies of ${words} words)`, async (t) => {
      const reply = Array.from({ length: words }, (_, i) => `w${i % 10}`).join(" ");
      const h = harness({ chunks: [reply] });
      const sizes = new Map<number, number>();
      for (let i = 1; i <= 200; i++) {
        assert.equal(await runRequest(h.record(encodeRecord(turn({ request_id: `r-${i}` }))), h.ctx), "completed");
        sizes.set(i, bytes(h.state()!));
      }
      const state = h.state()!;
      t.diagnostic(`record bytes at turns 1/10/40/200 with ${reply.length}-character replies: ${[1, 10, 40, 200].map((i) => sizes.get(i)).join(" / ")}`);
      assert.equal(state.applied.length, APPLIED_WINDOW);
      assert.ok(!JSON.stringify(state.applied).includes(reply), "no entry holds a reply");
      assert.ok(
        state.applied.slice(0, -1).every((a) => Array.isArray(a) && a[3] === 1),
        "older entries: a digest and where their final is (exact: this worker sent it), nothing else",
      );
      const newest = state.applied.at(-1)!;
      assert.ok("final" in newest && newest.final?.type === "final" && newest.final.reply === undefined, "the newest final's reply is in its history record");
      // Everything but the remembered messages (which the budget bounds) is a constant: from
      // turn 40 to 200 only the digits of offsets and the history head's fingers (log2 of
      // the records) grow, where whole finals would have added nothing but kept 32 replies.
      const overhead = (s: ConversationState) => bytes(s) - JSON.stringify(s.messages).length;
      assert.ok(overhead(state) <= APPLIED_WINDOW * 120 + 1200, `${overhead(state)} bytes besides the messages`);
      assert.ok(sizes.get(200)! - sizes.get(40)! <= 128, `turn 40: ${sizes.get(40)} bytes, turn 200: ${sizes.get(200)}`);
      const messageChars = state.messages.reduce((a, m) => a + m.content.length, 0);
      assert.ok(messageChars <= h.ctx.config.memory.maxTokens * 4, "the messages themselves stay within the budget");
    });
  }

  it("refuses a record whose applied entry holds a whole final and no position on chat.events", () => {
    const base = newConversation("c-1", "t", 1);
    const final = {
      v: 1,
      type: "error",
      request_id: "r-0",
      conversation_id: "c-1",
      tenant: "t",
      attempt: "a",
      seq: 1,
      at: 1,
      code: "generation_failed",
      message: "x",
      retryable: true,
    };
    assert.equal(conversationStateSchema.safeParse({ ...base, applied: [{ request_id: "r-0", final }] }).success, false);
    const placed = { request_id: "r-0", events: { partition: 0, offset: 7 }, final };
    assert.deepEqual(conversationStateSchema.parse({ ...base, applied: [placed] }).applied[0], placed, "the same entry with its position decodes");
  });

  it("replays the newest request from its stored summary, the reply filled in from its history record", async () => {
    const h = harness({ chunks: ["Once upon", " a time."] });
    await runRequest(h.record(encodeRecord(turn())), h.ctx);
    const sent = finalOf(h.events, "r-1");
    const generations = h.seen.length;
    h.events.length = 0;
    h.log.length = 0;
    assert.equal(await runRequest(h.record(encodeRecord(turn())), h.ctx), "replayed");
    assert.equal(h.seen.length, generations, "nothing generated");
    assert.deepEqual(h.log, ["event:final", "commit"], "no start: the stored final only");
    assert.deepEqual(h.events[0], sent, "the final as it was sent, reply and all");
  });

  it("replays an older request from chat.events: at its exact offset, or found from its lower bound after a move", async () => {
    const h = harness();
    for (const id of ["r-1", "r-2", "r-3"]) await runRequest(h.record(encodeRecord(turn({ request_id: id }))), h.ctx);
    const partition = keyPartition("t/c-1", h.ctx.config.kafka.eventPartitions);
    const log = h.eventLog.records.get(partition)!;
    const r1 = appliedEntry(h.state(), "r-1")!.entry;
    assert.ok(Array.isArray(h.state()!.applied[0]), "an older entry is kept compact");
    assert.ok("events" in r1 && r1.exact === true);
    assert.deepEqual(chatEventSchema.parse(JSON.parse(String(log[r1.events.offset]))), finalOf(h.events, "r-1"), "the exact offset of r-1's final");
    const sent = finalOf(h.events, "r-1");
    const sent3 = finalOf(h.events, "r-3");
    h.events.length = 0;
    assert.equal(await runRequest(h.record(encodeRecord(turn({ request_id: "r-1" }))), h.ctx), "replayed");
    assert.deepEqual(h.events, [sent], "r-1's final, read back and sent again");

    // The partition moved to a worker that never sent r-3's final: r-3's entry keeps its lower bound.
    const moved = { ...h.ctx, finals: new FinalPositions() };
    await runRequest(h.record(encodeRecord(turn({ request_id: "r-4" }))), moved);
    const r3 = appliedEntry(h.state(), "r-3")!.entry;
    assert.ok("events" in r3 && r3.exact === undefined && !("final" in r3), JSON.stringify(r3));
    assert.equal(chatEventSchema.parse(JSON.parse(String(log[r3.events.offset]))).type, "start", "the lower bound is r-3's first event");
    h.events.length = 0;
    assert.equal(await runRequest(h.record(encodeRecord(turn({ request_id: "r-3" }))), moved), "replayed");
    assert.deepEqual(h.events, [sent3], "found by scanning from the lower bound");
  });

  it("answers already_applied, generating nothing, once the final aged out of chat.events", async () => {
    const h = harness();
    for (const id of ["r-1", "r-2"]) await runRequest(h.record(encodeRecord(turn({ request_id: id }))), h.ctx);
    const r1 = appliedEntry(h.state(), "r-1")!.entry;
    assert.ok("events" in r1);
    h.ageOut(r1.events.partition, r1.events.offset);
    const generations = h.seen.length;
    const turns = h.state()!.turns;
    h.events.length = 0;
    h.log.length = 0;
    assert.equal(await runRequest(h.record(encodeRecord(turn({ request_id: "r-1" }))), h.ctx), "replayed");
    assert.deepEqual(h.log, ["event:error", "commit"], "no start of a new attempt, no memory write");
    const error = h.events[0]!;
    assert.ok(error.type === "error" && error.code === "already_applied" && !error.retryable, JSON.stringify(error));
    assert.match(error.message, /was applied.*conversation's messages/);
    assert.equal(h.seen.length, generations, "nothing generated");
    assert.equal(h.state()!.turns, turns);
  });

  it("sends every event of a request to its events_partition; one out of range goes to the key's partition", async () => {
    const h = harness();
    const partitions = h.ctx.config.kafka.eventPartitions;
    const key = keyPartition("t/c-1", partitions);
    const k = (key + 1) % partitions;
    await runRequest(h.record(encodeRecord(turn({ events_partition: k }))), h.ctx);
    const on = (p: number) => (h.eventLog.records.get(p) ?? []).map((v) => chatEventSchema.parse(JSON.parse(String(v))));
    assert.deepEqual(
      on(k).map((e) => e.type),
      h.events.map((e) => e.type),
      "start, deltas and final all on partition k",
    );
    assert.ok(h.events.length >= 3);
    assert.equal((h.state()!.applied[0] as { events: { partition: number } }).events.partition, k);
    // Its replay (say, by a gateway reading partition k again) is re-announced there too.
    assert.equal(await runRequest(h.record(encodeRecord(turn({ events_partition: k }))), h.ctx), "replayed");
    assert.equal(on(k).at(-1)?.type, "final");
    const before = on(key).length;
    await runRequest(h.record(encodeRecord(turn({ request_id: "r-2", events_partition: partitions + 5 }))), h.ctx);
    assert.ok(on(key).length > before, "out of range: the key's partition");
    assert.ok(
      on(key)
        .slice(before)
        .every((e) => e.request_id === "r-2"),
    );
  });
});
