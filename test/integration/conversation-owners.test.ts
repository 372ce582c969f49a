/**
 * Conversation reads come from the worker that owns the conversation's partition, not from
 * a copy in the gateway: with 20,000 conversations written straight to chat.memory and two
 * workers sharing four partitions, every read is answered by its partition's owner (the
 * workers' query counters add up to the reads, both answer, none was asked for a partition
 * it does not own), the gateway caches no more than an owner per partition, another tenant
 * using the same id has a conversation of its own (its reads answer as for an id nobody
 * used), reads keep answering while a partition moves to the other worker, and with no
 * worker running a read is a 503 that says so, never a 404.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { topicNames } from "../../contracts/topics.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { encodeRecord } from "../../contracts/records/codec.js";
import type { ConversationState } from "../../contracts/records/memory.js";
import { conversationKey } from "../../contracts/conversation-key.js";
import { conversationPartition } from "../../gateway/kafka/owners.js";
import { InternalKeys, signRead } from "../../platform/internal-auth.js";
import { apiClient, eventually, metricValue, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { kafkaConfigFor, useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const KEY = "owners-key-1234567";
const OTHER = "owners-other-7654321";
const TOKEN = "internal-token-for-the-owners-test";
const PARTITIONS = 4;
const GENERATED = 20_000;

function generated(i: number, now: number): ConversationState {
  return {
    v: SCHEMA_VERSION,
    type: "conversation",
    conversation_id: `gen-${i}`,
    tenant: "t",
    messages: [
      { role: "user", content: `question ${i}`, at: now },
      { role: "assistant", content: `answer ${i}`, at: now },
    ],
    applied: [],
    turns: 1,
    created_at: now,
    updated_at: now,
  };
}

async function metrics(service: Service): Promise<string> {
  return (await fetch(`${service.baseUrl}/metrics`)).text();
}

const found = async (worker: Service) => metricValue(await metrics(worker), "kafka_llm_worker_conversation_queries_total", { outcome: "found" }) ?? 0;

describe("conversation reads from the partition's owner", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let common: Record<string, string>;
  let gateway: Service;
  let w1: Service;
  let w2: Service;
  const prefix = uniquePrefix("owners");
  /** One generated conversation per partition, and the first one written. */
  const probes: string[] = [];

  before(async () => {
    kafka = await useKafka();
    common = { ...stackEnv(kafka, prefix, PARTITIONS), KAFKA_LLM_INTERNAL_TOKEN: TOKEN };
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY},u:${OTHER}`, CONVERSATION_LOOKUP_TIMEOUT_MS: "4000" });
    // The generator: memory records written as a worker would (same key, the producer's partitioner).
    const producer = await KafkaProducer.connect(kafkaConfigFor(kafka), { logger: createLogger("owners-test", "fatal") });
    const now = Date.now();
    for (let start = 0; start < GENERATED; start += 2000) {
      const messages = Array.from({ length: 2000 }, (_, k) => {
        const state = generated(start + k, now);
        return { key: conversationKey(state), value: encodeRecord(state) };
      });
      await producer.send({ topic: topicNames(prefix).memory, messages });
    }
    await producer.disconnect();
    const byPartition = new Map<number, string>();
    const partitionOf = (id: string) => conversationPartition(conversationKey({ tenant: "t", conversation_id: id }), PARTITIONS);
    for (let i = 0; byPartition.size < PARTITIONS; i++) if (!byPartition.has(partitionOf(`gen-${i}`))) byPartition.set(partitionOf(`gen-${i}`), `gen-${i}`);
    probes.push(...new Set(["gen-0", ...byPartition.values()]));
    [w1, w2] = await Promise.all([startWorker(common, {}, "owner-1"), startWorker(common, {}, "owner-2")]);
  });

  after(async () => {
    await Promise.all([gateway?.stop(), w1?.stop(), w2?.stop()]);
    await kafka?.stop();
  });

  it("asks each conversation's owner, and the owners answer only for their own partitions", async () => {
    const api = apiClient(gateway.baseUrl, KEY);
    // Both workers hold partitions once the group settled (a stable 2+2 split).
    await eventually(
      async () => {
        const held = await Promise.all([w1, w2].map(async (w) => metricValue(await metrics(w), "kafka_llm_assigned_partitions") ?? 0));
        return held[0]! > 0 && held[1]! > 0 && held[0]! + held[1]! === PARTITIONS ? true : undefined;
      },
      60_000,
      "both workers to hold partitions",
    );
    for (const id of probes) {
      const res = await eventually(
        async () => {
          const r = await api("GET", `/v1/conversations/${id}/memory`);
          return r.status === 200 ? r : undefined;
        },
        60_000,
        `${id} to be readable`,
      );
      const n = id.slice("gen-".length);
      assert.deepEqual(
        res.body.messages.map((m: { content: string }) => m.content),
        [`question ${n}`, `answer ${n}`],
        `${id} reads as it was written`,
      );
    }
    const before = (await found(w1)) + (await found(w2));
    for (const id of probes) assert.equal((await api("GET", `/v1/conversations/${id}`)).status, 200);
    const [f1, f2] = [await found(w1), await found(w2)];
    assert.equal(f1 + f2 - before, probes.length, "every read was answered by one worker");
    assert.ok(f1 > 0 && f2 > 0, `both workers answered reads of their partitions (${f1}, ${f2})`);
    const gw = await metrics(gateway);
    assert.ok((metricValue(gw, "kafka_llm_gateway_conversation_lookups_total", { outcome: "found" }) ?? 0) >= probes.length * 2);
    for (const w of [w1, w2]) {
      assert.equal(
        metricValue(await metrics(w), "kafka_llm_worker_conversation_queries_total", { outcome: "unauthorized" }),
        undefined,
        "the gateway signed its reads",
      );
    }
  });

  it("keeps no per-conversation state in the gateway: an owner per partition, no copy of chat.memory", async (t) => {
    const gw = await metrics(gateway);
    // Figures for the record (not asserted: timing and RSS are the benchmarks' business).
    const sum = metricValue(gw, "kafka_llm_gateway_conversation_lookup_seconds_sum") ?? 0;
    const count = metricValue(gw, "kafka_llm_gateway_conversation_lookup_seconds_count") ?? 0;
    t.diagnostic(
      `mean conversation lookup ${((sum / Math.max(1, count)) * 1000).toFixed(1)} ms over ${count}; gateway RSS ${(gateway.memory().rss / 2 ** 20).toFixed(0)} MiB with ${GENERATED} conversations stored`,
    );
    const owners = metricValue(gw, "kafka_llm_gateway_conversation_owners");
    assert.ok(owners !== undefined && owners > 0 && owners <= PARTITIONS, `owners cached: ${owners}`);
    assert.ok(!gw.includes("memory_view"), "no memory view metrics");
    const workerConversations = await Promise.all([w1, w2].map(async (w) => metricValue(await metrics(w), "kafka_llm_memory_conversations") ?? 0));
    assert.equal(workerConversations[0]! + workerConversations[1]!, GENERATED, "the workers hold the conversations, split by partition");
  });

  it("reads what a turn wrote, right after it, and refuses the internal route without the token", async () => {
    const api = apiClient(gateway.baseUrl, KEY);
    const turn = await api("POST", "/v1/conversations/owners-chat/messages", { content: "Hello there.", max_tokens: 8 });
    assert.equal(turn.status, 202, turn.text);
    assert.equal(chatEvents(await readEvents(gateway.baseUrl + turn.body.events_url, KEY)).at(-1)!.type, "final");
    const info = await api("GET", "/v1/conversations/owners-chat");
    assert.equal(info.status, 200, info.text);
    assert.equal(info.body.turns, 1);
    const history = await api("GET", "/v1/conversations/owners-chat/messages");
    assert.equal(history.body.total, 2);
    const p = conversationPartition(conversationKey({ tenant: "t", conversation_id: "owners-chat" }), PARTITIONS);
    const path = `/internal/v1/partitions/${p}/tenants/t/conversations/owners-chat`;
    for (const w of [w1, w2]) {
      const res = await fetch(`${w.baseUrl}${path}`);
      assert.equal(res.status, 401);
      const bearer = await fetch(`${w.baseUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(bearer.status, 401, "the token itself is not a credential: reads are signed");
    }
    const keys = InternalKeys.of([TOKEN]);
    const answers = await Promise.all(
      [w1, w2].map((w) => {
        const url = new URL(`${w.baseUrl}${path}`);
        return fetch(url, { headers: { authorization: signRead(keys, "GET", url)!.authorization } });
      }),
    );
    assert.deepEqual(answers.map((r) => r.status).sort(), [200, 421], "the owner answers, the other worker says it is not the owner");
  });

  it("gives another tenant using the same id a conversation of its own, and its reads answer as for an id nobody used", async () => {
    const other = apiClient(gateway.baseUrl, OTHER);
    const reads = (id: string) => [`/v1/conversations/${id}`, `/v1/conversations/${id}/memory`, `/v1/conversations/${id}/messages`];
    for (const [i, path] of reads("gen-0").entries()) {
      const taken = await other("GET", path);
      const never = await other("GET", reads("never-used-anywhere")[i]!);
      assert.equal(taken.status, 404, `GET ${path} as another tenant → ${taken.status} ${taken.text}`);
      assert.equal(taken.text.replaceAll("gen-0", "ID"), never.text.replaceAll("never-used-anywhere", "ID"), "the same answer as for an id nobody used");
    }
    assert.equal((await other("DELETE", "/v1/conversations/gen-0")).status, 404);
    // Writes make the other tenant's own conversation gen-0, as for any new id.
    const append = await other("POST", "/v1/conversations/gen-0/history", { messages: [{ role: "user", content: "mine" }] });
    assert.equal(append.status, 200, append.text);
    assert.equal(append.body.total, 1, "a conversation of its own: only its message");
    const theirs = await other("GET", "/v1/conversations/gen-0/memory");
    assert.deepEqual(
      theirs.body.messages.map((m: { content: string }) => m.content),
      ["mine"],
    );
    const mine = await apiClient(gateway.baseUrl, KEY)("GET", "/v1/conversations/gen-0/memory");
    assert.deepEqual(
      mine.body.messages.map((m: { content: string }) => m.content),
      ["question 0", "answer 0"],
      "nothing the other tenant sent changed it",
    );
  });

  it("keeps answering while a partition moves to the other worker (never 404)", async () => {
    const api = apiClient(gateway.baseUrl, KEY);
    const statuses: number[] = [];
    let moving = true;
    const reads = (async () => {
      while (moving) for (const id of probes) statuses.push((await api("GET", `/v1/conversations/${id}`)).status);
    })();
    await w2.stop();
    // Once the survivor holds every partition (and restored them), every read answers 200.
    await eventually(
      async () => ((metricValue(await metrics(w1), "kafka_llm_assigned_partitions") ?? 0) === PARTITIONS ? true : undefined),
      60_000,
      "w1 to own all partitions",
    );
    for (const id of probes) {
      const res = await api("GET", `/v1/conversations/${id}`);
      assert.equal(res.status, 200, `${id} after the move: ${res.text}`);
    }
    moving = false;
    await reads;
    assert.ok(statuses.length > 0);
    assert.ok(!statuses.includes(404), `no read answered 404 during the move: ${statuses.join(",")}`);
    assert.ok(
      statuses.every((s) => s === 200 || s === 503),
      `reads answered 200 or 503 only: ${statuses.join(",")}`,
    );
  });

  it("answers 503 saying no worker runs when there is none, never 404", async () => {
    await w1.stop();
    const api = apiClient(gateway.baseUrl, KEY);
    const res = await eventually(
      async () => {
        const r = await api("GET", "/v1/conversations/gen-0");
        assert.notEqual(r.status, 404, r.text);
        return r.status === 503 && /no worker is running/.test(r.body.error.message) ? r : undefined;
      },
      60_000,
      "a 503 that says no worker runs",
    );
    assert.equal(res.body.error.code, "kafka_unavailable");
    assert.equal((await api("GET", "/v1/conversations/gen-0/messages")).status, 503);
    // A turn is still accepted (queued for when a worker runs).
    assert.equal((await api("POST", "/v1/conversations/gen-0/messages", { content: "later" })).status, 202);
  });
});
