/**
 * Events reach the replica that needs them: two gateway replicas share chat.events'
 * partitions through their consumer group, each reads only its share (counted against the
 * records Kafka holds per partition), a request accepted at one is followed at the other
 * (which then reads that partition on demand), an Idempotency-Key retry at the other
 * replica is answered once, a request that names no partition is followed on its key's
 * partition (the default partitioner's, as the worker then writes), and a client whose replica was SIGKILLed mid-stream resumes at
 * the other with Last-Event-ID and gets the rest exactly once, in order.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { randomUUID } from "node:crypto";
import { defaultEventsPartition } from "../../gateway/kafka/event-partitions.js";
import { conversationKey } from "../../contracts/conversation-key.js";
import { topicNames } from "../../contracts/topics.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import type { ChatEvent } from "../../contracts/records/events.js";
import type { ChatRequest } from "../../contracts/records/requests.js";
import { apiClient, eventually, metricValue, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { kafkaConfigFor, produceRecords, useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { SseReader, chatEvents } from "../helpers/sse.js";

const KEY = "events-key-1234567";
const PARTITIONS = 4;

async function metrics(gateway: Service): Promise<string> {
  return (await fetch(`${gateway.baseUrl}/metrics`)).text();
}

/** The partitions the gateways' group gave a replica, from its latest log line saying so. */
function ownedBy(gateway: Service): number[] {
  const said = gateway.logs.filter((l) => l.record.component === "event-partitions" && Array.isArray(l.record.owned)).at(-1);
  return (said?.record.owned as number[] | undefined) ?? [];
}

describe("chat.events shared by gateway replicas", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let admin: KafkaAdmin;
  let a: Service;
  let b: Service;
  let worker: Service;
  const prefix = uniquePrefix("gw-events");
  const keys = { GATEWAY_API_KEYS: `t:${KEY}` };

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix, PARTITIONS);
    [a, b] = await Promise.all([startGateway(common, keys, "gateway-a"), startGateway(common, keys, "gateway-b")]);
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10" });
    admin = new KafkaAdmin(kafkaConfigFor(kafka));
    // The group has shared the partitions out once each replica owns some and together all.
    await eventually(
      async () => {
        const [ma, mb] = await Promise.all([metrics(a), metrics(b)]);
        const owned = [ma, mb].map((m) => metricValue(m, "kafka_llm_gateway_events_partitions", { role: "owned" }) ?? 0);
        const half = PARTITIONS / 2;
        return owned[0] === half && owned[1] === half && ownedBy(a).length === half && ownedBy(b).length === half ? true : undefined;
      },
      90_000,
      "the gateways' group to share chat.events out",
    );
  });

  after(async () => {
    admin?.close();
    await Promise.all([a?.stop(), b?.stop(), worker?.stop()]);
    await kafka?.stop();
  });

  it("reads at each replica only the partitions it owns, where its own requests' events go", async (t) => {
    const ownA = ownedBy(a);
    const ownB = ownedBy(b);
    assert.deepEqual([...ownA, ...ownB].sort(), [0, 1, 2, 3], "each partition has one owner");
    const ids: Array<{ at: Service; id: string }> = [];
    for (const [at, n] of [
      [a, 1],
      [a, 2],
      [a, 3],
      [b, 1],
      [b, 2],
      [b, 3],
    ] as const) {
      const res = await apiClient(at.baseUrl, KEY)("POST", `/v1/conversations/own-${at.name}-${n}/messages`, { content: "Tell me a story.", max_tokens: 16 });
      assert.equal(res.status, 202, res.text);
      ids.push({ at, id: res.body.request_id });
    }
    for (const { at, id } of ids) {
      const events = chatEvents(await readEvents(`${at.baseUrl}/v1/requests/${id}/events`, KEY));
      assert.equal(events.at(-1)!.type, "final");
    }
    // Every event of a replica's requests went to a partition it owns.
    const offsets = await admin.offsets(topicNames(prefix).events);
    const records = new Map(offsets.map((o) => [o.partition, o.high - o.low]));
    const sum = (ps: number[]) => ps.reduce((n, p) => n + (records.get(p) ?? 0), 0);
    const total = sum([0, 1, 2, 3]);
    assert.ok(sum(ownA) > 0 && sum(ownB) > 0, `both replicas' partitions hold events: ${JSON.stringify([...records])}`);
    for (const [gateway, own] of [
      [a, ownA],
      [b, ownB],
    ] as const) {
      const m = await metrics(gateway);
      const read = metricValue(m, "kafka_llm_gateway_events_read_total")!;
      assert.equal(metricValue(m, "kafka_llm_gateway_events_partitions", { role: "followed" }), 0, `${gateway.name} follows no other partition`);
      // Its own partitions' records, each read once: not the fleet's.
      assert.equal(read, sum(own), `${gateway.name} read ${read} events; its partitions ${JSON.stringify(own)} hold ${sum(own)}, all ${total}`);
      assert.ok(read < total);
      t.diagnostic(`${gateway.name}: read ${read} of the ${total} events on chat.events (partitions ${own.join(",")})`);
    }
  });

  it("follows at B a request accepted at A: status and events, reading A's partition on demand", async () => {
    const readBefore = metricValue(await metrics(b), "kafka_llm_gateway_events_read_total")!;
    const res = await apiClient(a.baseUrl, KEY)("POST", "/v1/conversations/follow-1/messages", { content: "Once upon a time", max_tokens: 24 });
    assert.equal(res.status, 202, res.text);
    const status = await apiClient(b.baseUrl, KEY)("GET", res.body.status_url);
    assert.equal(status.status, 200, status.text);
    assert.equal(status.body.conversation_id, "follow-1");
    const [fromA, fromB] = await Promise.all([
      readEvents(a.baseUrl + res.body.events_url, KEY).then(chatEvents),
      readEvents(b.baseUrl + res.body.events_url, KEY).then(chatEvents),
    ]);
    assert.equal(fromA.at(-1)!.type, "final");
    assert.deepEqual(fromB, fromA);
    const done = await apiClient(b.baseUrl, KEY)("GET", res.body.status_url);
    assert.equal(done.body.status, "completed");
    const readAfter = metricValue(await metrics(b), "kafka_llm_gateway_events_read_total")!;
    assert.ok(readAfter - readBefore >= fromA.length, `B read A's partition for its follower (${readAfter - readBefore} events read)`);
    // No one follows it any more: after the linger B stops reading it.
    await eventually(
      async () => (metricValue(await metrics(b), "kafka_llm_gateway_events_partitions", { role: "followed" }) === 0 ? true : undefined),
      60_000,
      "B to stop reading A's partition",
    );
  });

  it("answers once an Idempotency-Key retry sent to the other replica", async () => {
    const conv = "idem-1";
    const post = (gateway: Service) =>
      fetch(`${gateway.baseUrl}/v1/conversations/${conv}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "idempotency-key": "turn-1" },
        body: JSON.stringify({ content: "Only once, please.", max_tokens: 8 }),
      });
    const first = (await (await post(a)).json()) as { request_id: string; events_url: string };
    const fromA = chatEvents(await readEvents(a.baseUrl + first.events_url, KEY));
    const retry = await post(b);
    assert.equal(retry.status, 202);
    const again = (await retry.json()) as { request_id: string; events_url: string };
    assert.equal(again.request_id, first.request_id, "the retry names the same request");
    const fromB = chatEvents(await readEvents(b.baseUrl + again.events_url, KEY));
    const finalA = fromA.at(-1)!;
    const finalB = fromB.at(-1)!;
    assert.equal(finalA.type, "final");
    assert.equal(finalB.type, "final");
    assert.equal(finalB.type === "final" && finalB.reply, finalA.type === "final" && finalA.reply, "the same reply, not a second generation");
    assert.equal(fromB.filter((e) => e.type === "final").length, 1);
    const messages = await apiClient(b.baseUrl, KEY)("GET", `/v1/conversations/${conv}/messages`);
    assert.equal(messages.status, 200, messages.text);
    const users = (messages.body.messages as Array<{ role: string; request_id?: string }>).filter((m) => m.role === "user").map((m) => m.request_id);
    assert.deepEqual(users, [first.request_id], "the turn is in memory once");
  });

  it("follows a request that names no events partition (produced straight to chat.requests) on its key's partition", async () => {
    // A conversation whose key's partition is A's: B reads it on demand, by the default partitioner.
    const ownA = ownedBy(a);
    let i = 0;
    while (!ownA.includes(defaultEventsPartition(`by-key-${i}`, PARTITIONS))) i++;
    const conversationId = `by-key-${i}`;
    // B reads nothing but its own partitions now, so only the right partition brings it the events.
    await eventually(
      async () => (metricValue(await metrics(b), "kafka_llm_gateway_events_partitions", { role: "followed" }) === 0 ? true : undefined),
      60_000,
      "B to stop reading other partitions",
    );
    const request: ChatRequest = {
      v: SCHEMA_VERSION,
      type: "turn",
      request_id: randomUUID(),
      conversation_id: conversationId,
      tenant: "t",
      content: "Once upon a time",
      params: { max_tokens: 16 },
      created_at: Date.now(),
    };
    await produceRecords(kafkaConfigFor(kafka), topicNames(prefix).requests, [{ key: conversationKey(request), value: Buffer.from(JSON.stringify(request)) }]);
    const fromB = chatEvents(await readEvents(`${b.baseUrl}/v1/requests/${request.request_id}/events`, KEY));
    assert.equal(fromB.at(-1)!.type, "final");
    const fromA = chatEvents(await readEvents(`${a.baseUrl}/v1/requests/${request.request_id}/events`, KEY));
    assert.deepEqual(fromB, fromA);
  });

  it("resumes at B, after A was SIGKILLed mid-stream, with the rest of the events exactly once and in order", async () => {
    const res = await apiClient(a.baseUrl, KEY)("POST", "/v1/conversations/killed-1/messages", { content: "Once upon a time", max_tokens: 200 });
    assert.equal(res.status, 202, res.text);
    const stream = await fetch(a.baseUrl + res.body.events_url, { headers: { accept: "text/event-stream", authorization: `Bearer ${KEY}` } });
    assert.equal(stream.status, 200);
    const reader = new SseReader();
    const received: ChatEvent[] = [];
    const body = stream.body!.getReader();
    // Read until a few events came, then kill the replica; the client has handled the first three.
    while (received.length < 3) {
      const { value, done } = await body.read();
      assert.ok(!done, "the stream ended before three events");
      received.push(...chatEvents(reader.push(value)));
    }
    await a.stop("SIGKILL");
    await body.cancel().catch(() => {});
    const seen = received.slice(0, 3);
    assert.ok(!seen.some((e) => e.type === "final" || e.type === "error"));
    const last = seen.at(-1)!;
    const rest = chatEvents(await readEvents(b.baseUrl + res.body.events_url, KEY, `${last.seq}@${last.attempt}`));
    const whole = chatEvents(await readEvents(b.baseUrl + res.body.events_url, KEY));
    assert.equal(whole.at(-1)!.type, "final");
    assert.deepEqual([...seen, ...rest], whole, "what the client got from A, then from B, is the whole stream once");
    assert.deepEqual(
      whole.map((e) => e.seq),
      whole.map((_, i) => i),
    );
  });
});
