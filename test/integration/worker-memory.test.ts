/**
 * The worker's conversation memory and turn handling against the real broker and a real
 * worker process with stories260K: greeting, trimming to the token budget, replays (from
 * the record's summary, from chat.events, already_applied once aged out), events_partition,
 * delete, tenants, prompts too long, dead-lettering, cancel, and KV-cache reuse across turns.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getLlama, type LlamaModel } from "node-llama-cpp";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { encodeRecord } from "../../contracts/records/codec.js";
import { requestIdDigest, type AppliedEntry, type ConversationState, type PastAppliedEntry } from "../../contracts/records/memory.js";
import type { FinalEvent } from "../../contracts/records/events.js";
import type { HistoryRecord } from "../../contracts/records/history.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { keyPartition } from "../../platform/kafka/partitioner.js";
import { DLQ_HEADERS } from "../../contracts/records/dead-letter.js";
import { topicNames } from "../../contracts/topics.js";
import { ensureTestModel } from "../../scripts/models.js";
import { CONFIRMED_FRESH_MS } from "../../worker/memory/ownership.js";
import { stackEnv, startWorker as startTestWorker } from "../helpers/gateway.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { readTopic, useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const GREETING = "Hello there, little one! What story shall we tell?";

function startWorker(kafka: TestKafka, prefix: string, env: Record<string, string>): Promise<Service> {
  return startTestWorker(stackEnv(kafka, prefix), { WORKER_ID: "w1", GREETING, ...env }, `worker-${prefix}`);
}

function asFinal(event: unknown): FinalEvent {
  const e = event as FinalEvent;
  assert.equal(e.type, "final", `expected a final event, got ${JSON.stringify(event)}`);
  return e;
}

describe("conversation memory", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let chat: ChatOverKafka;
  let model: LlamaModel;
  const prefix = uniquePrefix("memory");
  const topics = topicNames(prefix);
  const budget = 60;

  before(async () => {
    kafka = await useKafka();
    worker = await startWorker(kafka, prefix, { MEMORY_MAX_TOKENS: String(budget), WORKER_SLOTS: "2", DEFAULT_MAX_TOKENS: "16" });
    chat = new ChatOverKafka(kafka, topics);
    await chat.start();
    const llama = await getLlama({ gpu: false, build: "never" });
    model = await llama.loadModel({ modelPath: await ensureTestModel() });
  });

  after(async () => {
    await chat?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("opens a conversation with the greeting as its first message", async () => {
    const final = asFinal(await chat.terminal(await chat.open("greet-1", true)));
    assert.equal(final.reply, GREETING);
    const turn = asFinal(await chat.terminal(await chat.turn("greet-1", "Tell me about the sea.")));
    const state = (await chat.readMemory()).get("greet-1")!;
    assert.deepEqual(
      state.messages.map((m) => [m.role, m.content]),
      [
        ["assistant", GREETING],
        ["user", "Tell me about the sea."],
        ["assistant", turn.reply],
      ],
    );
    const plain = asFinal(await chat.terminal(await chat.open("greet-2", false)));
    assert.equal(plain.reply, "");
    assert.deepEqual((await chat.readMemory()).get("greet-2")!.messages, [], "no greeting unless asked");
  });

  it("trims the history to the token budget, oldest whole messages first", async () => {
    const sent: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const content = `Turn number ${i}: once upon a time there was a dog.`;
      sent.push(content);
      asFinal(await chat.terminal(await chat.turn("trim-1", content)));
    }
    const state = (await chat.readMemory()).get("trim-1")!;
    const tokens = state.messages.reduce((n, m) => n + model.tokenize(m.content).length, 0);
    assert.ok(tokens <= budget, `memory holds ${tokens} tokens, budget ${budget}`);
    assert.ok(state.messages.length < 10, "older messages were dropped");
    assert.equal(state.messages.at(-2)!.content, sent.at(-1), "the newest turn is kept");
    assert.equal(state.messages[0]!.role, "user", "the history never starts with an orphaned reply");
    const kept = state.messages.filter((m) => m.role === "user").map((m) => m.content);
    assert.deepEqual(kept, sent.slice(sent.length - kept.length), "what is kept is the most recent, in order");
    assert.equal(state.turns, 5);
  });

  it("applies a request that reaches Kafka twice once, and re-announces the same final", async () => {
    const record = { v: 1, type: "turn", request_id: "dup-req-1", conversation_id: "dup-1", tenant: "t1", content: "Once.", created_at: Date.now() };
    await chat.produce(record);
    await chat.produce(record);
    const first = asFinal(await chat.terminal("dup-req-1"));
    await chat.waitFor("dup-req-1", (events) => events.filter((e) => e.type === "final").length === 2);
    const finals = chat.events.get("dup-req-1")!.filter((e) => e.type === "final");
    assert.deepEqual(finals[1], first, "the copy gets the stored final, unchanged");
    assert.equal(chat.events.get("dup-req-1")!.filter((e) => e.type === "start").length, 1, "generated once");
    const state = (await chat.readMemory()).get("dup-1")!;
    assert.deepEqual(
      state.messages.map((m) => m.role),
      ["user", "assistant"],
    );
    assert.equal(state.turns, 1);
  });

  /** The worker's count of generated tokens: what a second generation would raise. */
  async function generatedTokens(): Promise<number> {
    const text = await (await fetch(`${worker.baseUrl}/metrics`)).text();
    return Number(/^kafka_llm_generated_tokens_total(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? NaN);
  }

  const turnRecord = (requestId: string, conversationId: string, content: string, extra: Record<string, unknown> = {}) => ({
    v: 1,
    type: "turn",
    request_id: requestId,
    conversation_id: conversationId,
    tenant: "t1",
    content,
    created_at: Date.now(),
    ...extra,
  });

  it("keeps no reply in the record's applied entries, and re-announces an older request's final read back from chat.events", async () => {
    const a = turnRecord("old-req-a", "old-1", "First.");
    await chat.produce(a);
    const first = asFinal(await chat.terminal("old-req-a"));
    asFinal(await chat.terminal(await chat.turn("old-1", "Second.")));
    const state = (await chat.readMemory()).get("old-1")!;
    assert.equal(state.applied.length, 2);
    const [older, newest] = state.applied as [PastAppliedEntry, AppliedEntry];
    assert.deepEqual(
      [older[0], older[1], older[3]],
      [requestIdDigest("old-req-a"), chat.partitions.get("old-req-a")!.at(-1)!, 1],
      "the older entry: its request id's digest and where its final is, exactly, and nothing else",
    );
    assert.equal(older.length, 4);
    assert.ok(newest!.final?.type === "final" && newest!.final.reply === undefined, "the newest keeps its final, without the reply its history record holds");
    const generated = await generatedTokens();
    await chat.produce(a);
    await chat.waitFor("old-req-a", (events) => events.filter((e) => e.type === "final").length === 2);
    const finals = chat.events.get("old-req-a")!.filter((e) => e.type === "final");
    assert.deepEqual(finals[1], first, "the same final, from chat.events");
    assert.equal(chat.events.get("old-req-a")!.filter((e) => e.type === "start").length, 1, "generated once");
    assert.equal(await generatedTokens(), generated, "no tokens generated for the replay");
  });

  it("sends a final that was never sent from the newest entry's summary, its reply read from chat.history", async () => {
    // A worker that died between its memory write and its final's send leaves this behind.
    const id = "unsent-1";
    const requestId = "unsent-req-1";
    const reply = "The fox ran home to its den.";
    const history: HistoryRecord = {
      v: SCHEMA_VERSION,
      type: "history",
      conversation_id: id,
      tenant: "t1",
      epoch: "e1",
      seq: 0,
      index: 0,
      request_id: requestId,
      at: Date.now(),
      messages: [
        { role: "user", content: "Tell me about the fox." },
        { role: "assistant", content: reply },
      ],
      links: [],
    };
    const key = `t1/${id}`;
    const [h] = await chat.send(topics.history, [{ key, value: encodeRecord(history) }]);
    const eventsPartition = keyPartition(key, 2);
    const final = {
      v: SCHEMA_VERSION,
      type: "final",
      request_id: requestId,
      conversation_id: id,
      tenant: "t1",
      attempt: "w-dead.1",
      seq: 5,
      at: Date.now(),
      stop_reason: "stop",
      usage: { prompt_tokens: 20, cached_prompt_tokens: 0, completion_tokens: 8 },
      timings: { queue_wait_ms: 1, time_to_first_token_ms: 2, generation_ms: 30 },
    } as const;
    const state: ConversationState = {
      v: SCHEMA_VERSION,
      type: "conversation",
      conversation_id: id,
      tenant: "t1",
      messages: [
        { role: "user", content: "Tell me about the fox.", request_id: requestId, at: 1 },
        { role: "assistant", content: reply, request_id: requestId, at: 1 },
      ],
      applied: [{ request_id: requestId, events: { partition: eventsPartition, offset: 0 }, final }],
      history: { epoch: "e1", partition: h!.partition, records: 1, messages: 2, fingers: [h!.offset] },
      turns: 1,
      created_at: 1,
      updated_at: 1,
    };
    await chat.send(topics.memory, [{ key, value: encodeRecord(state) }]);
    assert.equal(chat.events.get(requestId), undefined, "nothing on chat.events for it yet");
    // That dead worker's write came before this worker owned the partition: a session
    // timeout at least. Here the record is written while the worker holds the partition, so
    // wait out the window in which the worker takes its position as confirmed without asking
    // the log at load (CONFIRMED_FRESH_MS); within it, the worker would generate, find its
    // memory write landed after this record (its fence), run the request again and send this
    // same final, after a discarded start and deltas.
    await new Promise((r) => setTimeout(r, CONFIRMED_FRESH_MS + 200));
    const generated = await generatedTokens();
    await chat.produce(turnRecord(requestId, id, "Tell me about the fox."));
    const sent = asFinal(await chat.terminal(requestId));
    assert.equal(sent.reply, reply, "the reply filled in from the history record");
    assert.deepEqual(
      { attempt: sent.attempt, seq: sent.seq, usage: sent.usage },
      { attempt: "w-dead.1", seq: 5, usage: { prompt_tokens: 20, cached_prompt_tokens: 0, completion_tokens: 8 } },
      "the final as the dead worker would have sent it",
    );
    assert.deepEqual(
      chat.events.get(requestId)!.map((e) => e.type),
      ["final"],
      "no start: nothing generated",
    );
    assert.equal(await generatedTokens(), generated);
  });

  it("answers already_applied, generating nothing, when the final has aged out of chat.events", async () => {
    const a = turnRecord("aged-req-a", "aged-1", "First.");
    await chat.produce(a);
    asFinal(await chat.terminal("aged-req-a"));
    asFinal(await chat.terminal(await chat.turn("aged-1", "Second.")));
    const partition = chat.partitions.get("aged-req-a")!.at(-1)!;
    // Retention, sped up: the partition's log start moves past everything written so far.
    const admin = new KafkaAdmin(chat.config, { timeoutMs: 10_000 });
    try {
      const high = (await admin.offsets(topics.events)).find((o) => o.partition === partition)!.high;
      await admin.deleteRecords(topics.events, partition, high);
    } finally {
      admin.close();
    }
    const turns = (await chat.readMemory()).get("aged-1")!.turns;
    const generated = await generatedTokens();
    await chat.produce(a);
    await chat.waitFor("aged-req-a", (events) => events.some((e) => e.type === "error"));
    const error = chat.events.get("aged-req-a")!.find((e) => e.type === "error")!;
    assert.ok(error.type === "error" && error.code === "already_applied" && error.retryable === false, JSON.stringify(error));
    assert.match(error.message, /applied.*no longer kept on chat\.events.*conversation's messages/);
    assert.equal(chat.events.get("aged-req-a")!.filter((e) => e.type === "start").length, 1, "no start of a new attempt");
    assert.equal(await generatedTokens(), generated, "no tokens generated");
    assert.equal((await chat.readMemory()).get("aged-1")!.turns, turns, "not applied again");
  });

  it("sends every event of a request to its events_partition, and one out of range to the conversation's partition", async () => {
    const key = keyPartition("t1/route-1", 2);
    const k = 1 - key;
    await chat.produce(turnRecord("route-req-1", "route-1", "Where?", { events_partition: k }));
    asFinal(await chat.terminal("route-req-1"));
    const routed = chat.partitions.get("route-req-1")!;
    assert.ok(routed.length >= 3, `start, deltas and final: ${routed.length} events`);
    assert.deepEqual(new Set(routed), new Set([k]), "all on partition k");
    await chat.produce(turnRecord("route-req-2", "route-1", "And then?", { events_partition: 7 }));
    asFinal(await chat.terminal("route-req-2"));
    assert.deepEqual(new Set(chat.partitions.get("route-req-2")), new Set([key]), "out of range: the key's partition");
    const warned = worker.logs.some((l) => l.record.request_id === "route-req-2" && /events_partition is not a partition/.test(String(l.record.msg)));
    assert.ok(warned, "the out-of-range partition is logged");
  });

  it("deletes a conversation with a tombstone; the next turn starts afresh", async () => {
    asFinal(await chat.terminal(await chat.turn("del-1", "Remember the red ball.")));
    asFinal(await chat.terminal(await chat.remove("del-1")));
    assert.equal((await chat.readMemory()).get("del-1"), null, "a tombstone");
    asFinal(await chat.terminal(await chat.turn("del-1", "New start.")));
    const state = (await chat.readMemory()).get("del-1")!;
    assert.equal(state.messages[0]!.content, "New start.");
    assert.equal(state.turns, 1);
  });

  it("keeps two tenants' conversations of one id apart: each its own memory, a delete of one leaves the other", async () => {
    asFinal(await chat.terminal(await chat.turn("tenant-1", "Mine.", { tenant: "t1" })));
    const before = (await chat.readMemory("t1")).get("tenant-1")!;
    asFinal(await chat.terminal(await chat.turn("tenant-1", "Also mine.", { tenant: "t2" })));
    const other = (await chat.readMemory("t2")).get("tenant-1")!;
    assert.deepEqual(
      other.messages.filter((m) => m.role === "user").map((m) => m.content),
      ["Also mine."],
      "t2's conversation holds only its own turn",
    );
    assert.equal(other.tenant, "t2");
    asFinal(await chat.terminal(await chat.remove("tenant-1", "t2")));
    assert.equal((await chat.readMemory("t2")).get("tenant-1"), null, "t2's is deleted");
    assert.deepEqual((await chat.readMemory("t1")).get("tenant-1"), before, "t1's is untouched");
  });

  it("answers a prompt that cannot fit the context with an error that says so", async () => {
    const huge = "dog ".repeat(6000);
    const answer = await chat.terminal(await chat.turn("long-1", huge));
    assert.equal(answer.type, "error");
    assert.equal(answer.type === "error" && answer.code, "prompt_too_long");
    assert.match(answer.type === "error" ? answer.message : "", /the prompt is \d+ tokens and the model's context holds \d+/);
    asFinal(await chat.terminal(await chat.turn("long-1", "Short one.")));
  });

  it("dead-letters requests with out-of-bounds parameters or unknown fields, and carries on", async () => {
    await chat.produce({
      v: 1,
      type: "turn",
      request_id: "bad-1",
      conversation_id: "dlq-1",
      tenant: "t1",
      content: "hi",
      params: { temperature: 9 },
      created_at: 1,
    });
    await chat.produce({ v: 1, type: "turn", request_id: "bad-2", conversation_id: "dlq-1", tenant: "t1", content: "hi", colour: "blue", created_at: 1 });
    await chat.produceRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), "t1/dlq-1");
    const ok = asFinal(await chat.terminal(await chat.turn("dlq-1", "Still there?")));
    assert.ok(ok.usage.completion_tokens > 0);
    // Dead-lettered before the turn behind them was answered (one partition, in order).
    const reasons = (await readTopic(chat.config, topics.deadLetter)).map((r) => String(r.headers[DLQ_HEADERS.reason]));
    assert.equal(reasons.length, 3, reasons.join("\n"));
    assert.match(reasons[0]!, /params.temperature: must be <= 2/);
    assert.match(reasons[1]!, /Unrecognized key: "colour"/);
    assert.match(reasons[2]!, /not valid UTF-8/);
  });
});

describe("cancel and KV reuse", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let chat: ChatOverKafka;
  const prefix = uniquePrefix("kv");
  const topics = topicNames(prefix);

  before(async () => {
    kafka = await useKafka();
    worker = await startWorker(kafka, prefix, { MEMORY_MAX_TOKENS: "4000", WORKER_SLOTS: "2", DEFAULT_MAX_TOKENS: "12", DELTA_FLUSH_MS: "10" });
    chat = new ChatOverKafka(kafka, topics);
    await chat.start();
  });

  after(async () => {
    await chat?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("evaluates only the new tokens on turn 10 of a conversation", async () => {
    let final: FinalEvent | null = null;
    for (let i = 1; i <= 10; i++) {
      final = asFinal(await chat.terminal(await chat.turn("kv-a", `Question ${i}: what did the cat do?`)));
      // Another conversation between turns: with two slots it must not evict kv-a's cache.
      asFinal(await chat.terminal(await chat.turn("kv-b", `Other ${i}.`)));
    }
    const u = final!.usage;
    const evaluated = u.prompt_tokens - u.cached_prompt_tokens;
    assert.ok(u.prompt_tokens > 150, `turn 10's prompt holds the history (${u.prompt_tokens} tokens)`);
    // The new message and the template tokens around it, not the ~500 tokens of history.
    assert.ok(evaluated * 10 < u.prompt_tokens, `turn 10 evaluated ${evaluated} of ${u.prompt_tokens} prompt tokens; only the new message should be`);
  });

  it("stops a generation on cancel with stop reason cancelled and remembers the partial reply", async (t) => {
    const requestId = await chat.turn("cancel-1", "Tell me a very long story.", { params: { max_tokens: 1900 } });
    await chat.waitFor(requestId, (events) => events.some((e) => e.type === "delta"));
    await chat.cancel(requestId);
    const final = asFinal(await chat.terminal(requestId));
    assert.equal(final.stop_reason, "cancelled");
    assert.ok(final.usage.completion_tokens < 1900, `stopped early (${final.usage.completion_tokens} tokens)`);
    const state = (await chat.readMemory()).get("cancel-1")!;
    assert.deepEqual(
      state.messages.map((m) => m.role),
      ["user", "assistant"],
    );
    assert.equal(state.messages[1]!.content, final.reply, "memory keeps what the user saw");
    const metrics = await (await fetch(`${worker.baseUrl}/metrics`)).text();
    const count = Number(/^kafka_llm_cancel_latency_seconds_count\{[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? "0");
    const sum = Number(/^kafka_llm_cancel_latency_seconds_sum\{[^}]*\} ([\d.e-]+)/m.exec(metrics)?.[1] ?? "NaN");
    assert.equal(count, 1, "the worker measured how long the cancel took to stop the generation");
    t.diagnostic(`cancel: generation stopped ${(sum * 1000).toFixed(1)} ms after the worker read the cancel`);
  });

  it("honours a cancel that arrives before its request starts", async () => {
    const first = await chat.turn("cancel-2", "A long one first.", { params: { max_tokens: 1500 } });
    const second = await chat.turn("cancel-2", "Queued behind it.", { params: { max_tokens: 1500 } });
    await chat.cancel(second);
    const secondFinal = asFinal(await chat.terminal(second));
    assert.equal(secondFinal.stop_reason, "cancelled");
    asFinal(await chat.terminal(first));
  });

  it("does not let another tenant cancel a generation", async () => {
    const requestId = await chat.turn("cancel-3", "Go on.", { params: { max_tokens: 300 } });
    await chat.cancel(requestId, "intruder");
    const final = asFinal(await chat.terminal(requestId));
    assert.notEqual(final.stop_reason, "cancelled");
  });
});
