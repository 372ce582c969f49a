/**
 * A waiting request is visible: against the real broker with no worker running, a
 * request's event stream carries `queued` notices every QUEUE_NOTICE_MS, with how many
 * requests are ahead of it on its partition and that no worker owns the partition; the
 * page shows "waiting for a worker". Once a worker starts, the same stream gets the
 * start and final events (a request queued with nobody running is answered), and no
 * notice after the start. With the worker running and busy on the requests ahead of it, a
 * waiting request is told that a worker owns its partition and how many workers there are:
 * the worker group is a KIP-848 group (the workers' default), described with
 * ConsumerGroupDescribe.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import type { QueuedNotice } from "../../gateway/kafka/queue-watch.js";
import { launchChromium } from "../helpers/browser.js";
import { apiClient, eventually, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { followSse, type SseMessage } from "../helpers/sse.js";

const KEY = "queued-key-24680";
const NOTICE_MS = 500;

const auth = { authorization: `Bearer ${KEY}` };
const notices = (messages: SseMessage[]) => messages.filter((m) => m.event === "queued").map((m) => JSON.parse(m.data) as QueuedNotice);

describe("queued notices while a request waits", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let common: Record<string, string>;
  let gateway: Service;
  let worker: Service | undefined;
  let browser: Browser | undefined;
  let api: ReturnType<typeof apiClient>;
  const streams: Array<ReturnType<typeof followSse>> = [];
  const ids: string[] = [];

  before(async () => {
    kafka = await useKafka();
    common = stackEnv(kafka, uniquePrefix("gw-queued"), 2);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `q:${KEY}`, QUEUE_NOTICE_MS: String(NOTICE_MS) });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    for (const s of streams) s.close();
    await browser?.close();
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("says how many are ahead on the partition and that no worker owns it, every few seconds", async () => {
    // One conversation: one key, one partition, so the three queue behind each other.
    for (let i = 0; i < 3; i++) {
      const res = await api("POST", "/v1/conversations/waiting/messages", { content: `Story ${i}.`, max_tokens: 8 });
      assert.equal(res.status, 202, res.text);
      ids.push(res.body.request_id);
      streams.push(followSse(`${gateway.baseUrl}/v1/requests/${res.body.request_id}/events`, auth));
    }
    await eventually(async () => (streams.every((s) => notices(s.messages).length >= 3) ? true : undefined), 30_000, "three notices on each stream");
    for (const [i, s] of streams.entries()) {
      const seen = notices(s.messages);
      const last = seen.at(-1)!;
      assert.equal(last.request_id, ids[i]);
      assert.equal(last.ahead, i, `request ${i} has ${i} ahead of it on its partition`);
      assert.equal(last.worker_assigned, false, "no worker owns the partition");
      assert.equal(last.workers, 0);
      assert.ok(
        s.messages.every((m) => m.event === "queued"),
        "nothing but notices while nobody runs it",
      );
      const gaps = seen.slice(1).map((n, j) => n.at - seen[j]!.at);
      assert.ok(
        gaps.every((g) => g >= NOTICE_MS * 0.8),
        `repeated at the interval, not flooded: ${gaps}`,
      );
    }
    assert.equal(new Set(streams.map((s) => notices(s.messages).at(-1)!.partition)).size, 1, "one partition");
    const status = await api("GET", `/v1/requests/${ids[0]}`);
    assert.equal(status.body.status, "queued");
  });

  it("the page shows that the reply waits for a worker", async () => {
    browser = await launchChromium();
    const page = await browser.newPage();
    page.on("pageerror", (err) => assert.fail(`page error: ${err.message}`));
    await page.goto(gateway.baseUrl);
    await page.fill("#api-key", KEY);
    // A new conversation's greeting is a request like any other: it waits too.
    await page.click("#new-conversation");
    const waiting = page.locator(".message.assistant .waiting").first();
    await waiting.waitFor({ timeout: 30_000 });
    assert.match((await waiting.textContent()) ?? "", /^waiting for a worker/);
    await browser.close();
    browser = undefined;
  });

  it("once a worker starts, the streams get start and final, and no notice after the start", async () => {
    worker = await startWorker(common, { WORKER_SLOTS: "2" });
    await Promise.all(streams.map((s) => s.done));
    for (const [i, s] of streams.entries()) {
      const types = s.messages.map((m) => m.event);
      const start = types.indexOf("start");
      assert.ok(start > 0, `request ${i}: notices, then start (${types.join(",")})`);
      assert.equal(types.at(-1), "final", `request ${i} answered`);
      assert.ok(!types.slice(start).includes("queued"), `request ${i}: no notice after the start`);
    }
  });

  it("behind a running, busy worker: the partition is owned and the worker counted", async () => {
    // Five long replies of one conversation run one after another; the sixth waits behind them.
    const busy: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await api("POST", "/v1/conversations/busy/messages", { content: "Tell me a very long story.", max_tokens: 1900 });
      assert.equal(res.status, 202, res.text);
      busy.push(res.body.request_id as string);
    }
    await eventually(
      async () => ((await api("GET", `/v1/requests/${busy[0]}`)).body.status === "running" ? true : undefined),
      30_000,
      "the first reply to be running",
    );
    const waiting = await api("POST", "/v1/conversations/busy/messages", { content: "And then?", max_tokens: 8 });
    assert.equal(waiting.status, 202, waiting.text);
    const stream = followSse(`${gateway.baseUrl}/v1/requests/${waiting.body.request_id}/events`, auth);
    streams.push(stream);
    const notice = await eventually(async () => notices(stream.messages)[0], 30_000, "a queued notice behind the busy worker");
    assert.equal(notice.worker_assigned, true, `a worker owns the partition: ${JSON.stringify(notice)}`);
    assert.equal(notice.workers, 1, "the running worker is counted");
    assert.ok(notice.ahead >= 1, `requests ahead of it: ${notice.ahead}`);
    for (const id of busy) await api("POST", `/v1/requests/${id}/cancel`, { reason: "test" });
    await stream.done;
    assert.equal(stream.messages.at(-1)?.event, "final", "answered once the worker gets to it");
  });
});
