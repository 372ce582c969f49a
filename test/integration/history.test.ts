/**
 * The conversation history store (issue 11), over real HTTP against real gateways, a real
 * broker and a worker on stories260K: every message kept beyond the prompt memory's
 * budget, in order; appends; exactly once under a re-delivered request; reads from either
 * end, after/before cursors, within since/until, with limits; named readers whose
 * positions hold across two gateway replicas and a restart, independent of each other;
 * delete; the 400s that say what to fix and another tenant's 404; and chat.history's own
 * topic settings checked against an existing topic.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { topicNames, topicSpecs } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { createLogger } from "../../platform/logger.js";
import { TopicMismatchError, ensureTopics } from "../../platform/topic-admin.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { apiClient, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka, kafkaConfigFor } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const ACME = "acme-key-0123456789";
const OTHER = "other-key-0123456789";
const GREETING = "Hello! Shall we tell a story?";

interface Message {
  index: number;
  role: string;
  content: string;
  created_at: number;
  request_id: string;
}
interface Page {
  messages: Message[];
  first_cursor: string | null;
  last_cursor: string | null;
  has_more_before: boolean;
  has_more_after: boolean;
  total: number;
}

describe("conversation history store", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let common: Record<string, string>;
  let gateway: Service;
  let replica: Service | undefined;
  let worker: Service;
  let api: ReturnType<typeof apiClient>;
  let bus: ChatOverKafka;
  const prefix = uniquePrefix("history");
  const keys = `acme:${ACME},other:${OTHER}`;

  before(async () => {
    kafka = await useKafka();
    common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: keys });
    // A small prompt budget, so memory forgets what the history must keep.
    worker = await startWorker(common, { GREETING, DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "16" });
    api = apiClient(gateway.baseUrl, ACME);
    bus = new ChatOverKafka(kafka, topicNames(prefix));
    await bus.start();
  });

  after(async () => {
    await bus?.stop();
    await replica?.stop();
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  async function read(id: string, query = "", client = api): Promise<Page> {
    const res = await client("GET", `/v1/conversations/${id}/messages${query}`);
    assert.equal(res.status, 200, res.text);
    return res.body as Page;
  }

  async function turn(id: string, content: string): Promise<void> {
    const res = await api("POST", `/v1/conversations/${id}/messages`, { content, max_tokens: 8 });
    assert.equal(res.status, 202, res.text);
    const events = chatEvents(await readEvents(gateway.baseUrl + res.body.events_url, ACME));
    assert.equal(events.at(-1)?.type, "final");
  }

  let longId: string;
  let whole: Page;

  it("keeps every message, in order, beyond what the prompt memory keeps", async () => {
    const opened = await api("POST", "/v1/conversations", { greeting: true, system: "Tell tales." });
    assert.equal(opened.status, 201, opened.text);
    longId = opened.body.id;
    chatEvents(await readEvents(gateway.baseUrl + opened.body.events_url, ACME));
    const questions = Array.from({ length: 6 }, (_, i) => `Question number ${i} about a dragon?`);
    for (const q of questions) await turn(longId, q);

    whole = await read(longId, "?from=beginning&limit=500");
    assert.equal(whole.total, 2 + 2 * questions.length, "system + greeting + a question and a reply per turn");
    assert.deepEqual(
      whole.messages.map((m) => m.index),
      whole.messages.map((_, i) => i),
    );
    assert.deepEqual(
      whole.messages.slice(0, 2).map((m) => [m.role, m.content]),
      [
        ["system", "Tell tales."],
        ["assistant", GREETING],
      ],
    );
    assert.deepEqual(
      whole.messages.filter((m) => m.role === "user").map((m) => m.content),
      questions,
    );
    assert.deepEqual(
      whole.messages.slice(2).map((m) => m.role),
      questions.flatMap(() => ["user", "assistant"]),
    );
    for (let i = 1; i < whole.messages.length; i++) assert.ok(whole.messages[i]!.created_at >= whole.messages[i - 1]!.created_at);
    assert.equal(whole.has_more_before, false);
    assert.equal(whole.has_more_after, false);

    const memory = await api("GET", `/v1/conversations/${longId}/memory?from=beginning&limit=1000`);
    assert.equal(memory.status, 200, memory.text);
    assert.equal(memory.body.system, "Tell tales.");
    assert.ok(memory.body.total < whole.total - 2, `memory is trimmed (${memory.body.total} of ${whole.total})`);
    assert.ok(!memory.body.messages.some((m: { content: string }) => m.content === questions[0]), "the first question is gone from memory");
  });

  it("reads from either end, page by page after and before cursors, and within since/until", async () => {
    const latest = await read(longId, "?limit=3");
    assert.deepEqual(latest.messages, whole.messages.slice(-3), "from=latest is the default");
    assert.equal(latest.has_more_before, true);
    assert.equal(latest.has_more_after, false);
    const first = await read(longId, "?from=beginning&limit=3");
    assert.deepEqual(first.messages, whole.messages.slice(0, 3));
    assert.equal(first.has_more_after, true);

    const forward: Message[] = [];
    let page = await read(longId, "?from=beginning&limit=4");
    forward.push(...page.messages);
    while (page.has_more_after) {
      page = await read(longId, `?after=${page.last_cursor}&limit=4`);
      forward.push(...page.messages);
    }
    assert.deepEqual(forward, whole.messages);

    const backward: Message[] = [];
    page = await read(longId, "?limit=5");
    backward.unshift(...page.messages);
    while (page.has_more_before) {
      page = await read(longId, `?before=${page.first_cursor}&limit=5`);
      backward.unshift(...page.messages);
    }
    assert.deepEqual(backward, whole.messages);

    const mid = whole.messages[6]!;
    const later = whole.messages.filter((m) => m.created_at >= mid.created_at);
    assert.deepEqual((await read(longId, `?from=beginning&since=${mid.created_at}&limit=500`)).messages, later);
    const untilIso = new Date(mid.created_at).toISOString();
    const earlier = whole.messages.filter((m) => m.created_at <= mid.created_at);
    const upTo = await read(longId, `?until=${encodeURIComponent(untilIso)}&limit=2`);
    assert.deepEqual(upTo.messages, earlier.slice(-2), "from=latest within until: the last two up to it");
    assert.equal(upTo.has_more_after, false, "nothing newer within the window");
    assert.equal(upTo.has_more_before, earlier.length > 2);
    const window = await read(longId, `?since=${mid.created_at}&until=${mid.created_at}&limit=500`);
    assert.deepEqual(
      window.messages,
      whole.messages.filter((m) => m.created_at === mid.created_at),
    );
    // More reads at once than the gateway has fetchers (4): each gets its own page, whole.
    const pages = await Promise.all(Array.from({ length: 10 }, (_, i) => read(longId, `?from=beginning&limit=${i + 1}`)));
    pages.forEach((p, i) => assert.deepEqual(p.messages, whole.messages.slice(0, i + 1), `concurrent read ${i}`));

    const none = await read(longId, `?since=${whole.messages.at(-1)!.created_at + 1}`);
    assert.deepEqual(none.messages, []);
    assert.equal(none.first_cursor, null);
    assert.equal(none.total, whole.total);
  });

  it("appends without a reply, into history and memory, once under an Idempotency-Key and a re-delivered request", async () => {
    const id = `append-${randomUUID()}`;
    const body = {
      messages: [
        { role: "system", content: "Be a pirate." },
        { role: "user", content: "Ahoy?" },
        { role: "assistant", content: "Arr, ahoy!" },
      ],
    };
    const first = await api("POST", `/v1/conversations/${id}/history`, body, { "idempotency-key": "add-1" });
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.body, { conversation_id: id, request_id: first.body.request_id, appended: 3, total: 3 });
    const again = await api("POST", `/v1/conversations/${id}/history`, body, { "idempotency-key": "add-1" });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.total, 3, "the retried append is applied once");

    // The same request record delivered again, straight to Kafka: the worker finds it applied.
    const replayed = {
      v: SCHEMA_VERSION,
      type: "append",
      request_id: first.body.request_id,
      conversation_id: id,
      tenant: "acme",
      messages: body.messages,
      created_at: Date.now(),
    };
    const before = (bus.events.get(first.body.request_id) ?? []).filter((e) => e.type === "final").length;
    await bus.produce(replayed);
    await bus.waitFor(first.body.request_id, (events) => events.filter((e) => e.type === "final").length > before);
    // A marker after the replay: once applied, everything before it in the partition is too.
    const marker = await api("POST", `/v1/conversations/${id}/history`, { messages: [{ role: "user", content: "Marker." }] });
    assert.equal(marker.status, 200, marker.text);
    assert.equal(marker.body.total, 4, "the replay appended nothing");

    const page = await read(id, "?from=beginning");
    assert.deepEqual(
      page.messages.map((m) => [m.index, m.role, m.content]),
      [
        [0, "system", "Be a pirate."],
        [1, "user", "Ahoy?"],
        [2, "assistant", "Arr, ahoy!"],
        [3, "user", "Marker."],
      ],
    );
    const memory = await api("GET", `/v1/conversations/${id}/memory`);
    assert.equal(memory.body.system, "Be a pirate.");
    // The memory keeps what fits its budget (16 tokens here), newest last; the history keeps all.
    assert.equal(memory.body.messages.at(-1).content, "Marker.");
    assert.equal(memory.body.turns, 2, "two appends applied, the replay not a third time");
  });

  it("keeps named readers' positions in Kafka: across two replicas and a restart, each reader its own", async () => {
    const n = whole.total;
    const a1 = await read(longId, "?from=beginning&limit=3&reader=alice");
    assert.deepEqual(
      a1.messages.map((m) => m.index),
      [0, 1, 2],
    );
    const a2 = await read(longId, "?from=last_consumed&reader=alice&limit=3");
    assert.deepEqual(
      a2.messages.map((m) => m.index),
      [3, 4, 5],
    );
    const b1 = await read(longId, "?from=beginning&limit=1&reader=bob");
    assert.deepEqual(
      b1.messages.map((m) => m.index),
      [0],
    );

    replica = await startGateway(common, { GATEWAY_API_KEYS: keys }, "gateway-2");
    const other = apiClient(replica.baseUrl, ACME);
    const a3 = await read(longId, "?from=last_consumed&reader=alice&limit=2", other);
    assert.deepEqual(
      a3.messages.map((m) => m.index),
      [6, 7],
      "the second replica continues where alice stopped on the first",
    );
    const b2 = await read(longId, "?from=last_consumed&reader=bob&limit=2", other);
    assert.deepEqual(
      b2.messages.map((m) => m.index),
      [1, 2],
      "bob's position is his own",
    );

    await replica.stop();
    replica = await startGateway(common, { GATEWAY_API_KEYS: keys }, "gateway-2b");
    const restarted = apiClient(replica.baseUrl, ACME);
    const a4 = await read(longId, "?from=last_consumed&reader=alice&limit=500", restarted);
    assert.deepEqual(
      a4.messages.map((m) => m.index),
      Array.from({ length: n - 8 }, (_, i) => 8 + i),
      "a restarted gateway continues where alice stopped",
    );
    assert.equal(a4.has_more_after, false);
    const caughtUp = await read(longId, "?from=last_consumed&reader=alice", restarted);
    assert.deepEqual(caughtUp.messages, [], "nothing new for a reader at the end");
    await turn(longId, "One more question?");
    const news = await read(longId, "?from=last_consumed&reader=alice");
    assert.deepEqual(
      news.messages.map((m) => [m.index, m.role]),
      [
        [n, "user"],
        [n + 1, "assistant"],
      ],
    );
  });

  it("answers bad input with a 400 that says what to fix, and keeps another tenant's conversation of the same id apart", async () => {
    const bad = async (query: string, pattern: RegExp) => {
      const res = await api("GET", `/v1/conversations/${longId}/messages${query}`);
      assert.equal(res.status, 400, `${query}: ${res.text}`);
      assert.match(res.body.error.message, pattern, query);
    };
    await bad("?after=not-a-cursor!", /after: not a cursor; pass first_cursor or last_cursor/);
    await bad(`?after=${Buffer.from("zz:1").toString("base64url")}`, /after: not a cursor/);
    await bad("?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", /since: must not be after until/);
    await bad("?since=yesterday", /since: must be an RFC 3339 time .* or epoch milliseconds/);
    await bad("?limit=0", /limit: must be >= 1/);
    await bad("?limit=501", /limit: must be <= 500/);
    await bad("?from=middle", /from: must be "beginning", "latest" or "last_consumed"/);
    await bad("?reader=has%20space", /reader: must be 1 to 64 letters/);
    await bad("?from=last_consumed", /reader: is required with from=last_consumed/);
    await bad("?from=last_consumed&reader=nobody", /unknown reader "nobody".*from=beginning&reader=nobody or from=latest&reader=nobody/);
    await bad(`?after=${whole.first_cursor}&before=${whole.last_cursor}`, /give one of from, after and before/);
    await bad(`?from=beginning&after=${whole.first_cursor}`, /give one of from, after and before/);
    const empty = await api("POST", `/v1/conversations/${longId}/history`, { messages: [] });
    assert.equal(empty.status, 400);
    assert.match(empty.body.error.message, /messages: must hold at least one message/);
    const role = await api("POST", `/v1/conversations/${longId}/history`, { messages: [{ role: "tool", content: "x" }] });
    assert.equal(role.status, 400);
    assert.match(role.body.error.message, /role: must be "user", "assistant" or "system"/);

    const stranger = apiClient(gateway.baseUrl, OTHER);
    assert.equal((await stranger("GET", `/v1/conversations/${longId}/messages`)).status, 404);
    assert.equal((await stranger("GET", `/v1/conversations/${longId}/memory`)).status, 404);
    const own = await stranger("POST", `/v1/conversations/${longId}/history`, { messages: [{ role: "user", content: "Mine?" }] });
    assert.equal(own.status, 200, own.text);
    assert.equal(own.body.total, 1, "the stranger's append starts the stranger's own conversation");
    assert.equal((await read(longId, "?limit=1")).total, whole.total + 2, "and changes nothing of this one");
  });

  it("makes a deleted conversation's history unreadable at once; the id then starts afresh", async () => {
    const id = `deleted-${randomUUID()}`;
    assert.equal((await api("POST", `/v1/conversations/${id}/history`, { messages: [{ role: "user", content: "Remember me." }] })).status, 200);
    const old = await read(id);
    assert.equal((await api("DELETE", `/v1/conversations/${id}`)).status, 200);
    assert.equal((await api("GET", `/v1/conversations/${id}/messages`)).status, 404);
    const again = await api("POST", `/v1/conversations/${id}/history`, { messages: [{ role: "user", content: "New start." }] });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.total, 1);
    const fresh = await read(id);
    assert.deepEqual(
      fresh.messages.map((m) => [m.index, m.content]),
      [[0, "New start."]],
    );
    const stale = await api("GET", `/v1/conversations/${id}/messages?after=${old.last_cursor}`);
    assert.equal(stale.status, 400);
    assert.match(stale.body.error.message, /earlier conversation with this id/);
  });

  it("checks chat.history's own partition count against an existing topic", async () => {
    const logger = createLogger("test", "silent");
    const admin = new KafkaAdmin(kafkaConfigFor(kafka));
    try {
      const names = topicNames(uniquePrefix("history-topics"));
      const settings = {
        requestPartitions: 2,
        eventPartitions: 2,
        replicationFactor: 1,
        conversationTtlMs: 3_600_000,
        history: { retentionMs: 7_200_000, partitions: 3, replicationFactor: 1 },
      };
      const created = await ensureTopics(admin, topicSpecs(names, settings), logger);
      assert.ok(created.created.includes(names.history));
      assert.equal((await admin.partitions([names.history])).get(names.history)?.length, 3, "the history has its own partition count");
      // Configs of existing topics are not compared (librdkafka's binding cannot read them:
      // platform/topic-admin.ts): a different retention alone is no mismatch.
      await assert.rejects(
        ensureTopics(admin, topicSpecs(names, { ...settings, history: { retentionMs: 3_600_000, partitions: 4, replicationFactor: 1 } }), logger),
        (err: unknown) => {
          assert.ok(err instanceof TopicMismatchError);
          assert.deepEqual(err.mismatches, [`${names.history}: has 3 partitions, configuration says 4`]);
          return true;
        },
      );
      const again = await ensureTopics(admin, topicSpecs(names, { ...settings, history: { ...settings.history, retentionMs: 3_600_000 } }), logger);
      assert.deepEqual(again.created, [], "a second run creates nothing");
    } finally {
      admin.close();
    }
  });
});
