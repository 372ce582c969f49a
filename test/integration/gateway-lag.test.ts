/**
 * The lag exporter against the real broker: requests produced while no worker runs show
 * up as lag (the group never committed: everything retained counts), a worker drains it
 * to 0, the recent mean turn time appears once turns end, and the lag keeps being
 * exported when the group has no members (scale from zero).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { apiClient, eventually, metricValue, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "lag-key-000000000";

describe("consumer group lag exporter", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let common: Record<string, string>;
  let gateway: Service;
  let worker: Service | undefined;
  let api: ReturnType<typeof apiClient>;
  const prefix = uniquePrefix("gw-lag");
  const topic = `${prefix}chat.requests`;

  before(async () => {
    kafka = await useKafka();
    common = stackEnv(kafka, prefix, 3);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}`, LAG_REFRESH_MS: "500" });
    api = apiClient(gateway.baseUrl, KEY);
  });

  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  const metrics = async () => (await fetch(`${gateway.baseUrl}/metrics`)).text();
  const totalLag = async () => metricValue(await metrics(), "kafka_llm_consumer_group_total_lag");
  const lagIs = (n: number) => async () => ((await totalLag()) === n ? true : undefined);

  async function send(count: number, tag: string): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const res = await api("POST", `/v1/conversations/${tag}-${i}/messages`, { content: `Story ${i}.`, max_tokens: 8 });
      assert.equal(res.status, 202);
      ids.push(res.body.request_id);
    }
    return ids;
  }

  it("counts requests waiting for a group that has never committed", async () => {
    await eventually(lagIs(0), 30_000, "the first refresh (lag 0)");
    assert.equal(metricValue(await metrics(), "kafka_llm_recent_turn_duration_seconds"), 0, "no turn has ended yet");
    const ids = await send(5, "lag");
    await eventually(lagIs(5), 30_000, "lag 5");
    const text = await metrics();
    const perPartition = [0, 1, 2].map((p) => metricValue(text, "kafka_llm_consumer_group_lag", { topic, partition: String(p) }) ?? NaN);
    assert.equal(
      perPartition.reduce((a, b) => a + b, 0),
      5,
      `per-partition lag adds up: ${perPartition}`,
    );
    for (const id of ids) assert.equal((await api("GET", `/v1/requests/${id}`)).body.status, "queued");
  });

  it("goes to 0 as a worker drains the queue, and exports the recent mean turn time", async () => {
    worker = await startWorker(common, { WORKER_SLOTS: "2" });
    await eventually(lagIs(0), 60_000, "lag 0 after the worker");
    const text = await metrics();
    assert.ok((metricValue(text, "kafka_llm_recent_turn_duration_seconds") ?? 0) > 0, "mean turn time is exported");
    assert.ok((metricValue(text, "kafka_llm_recent_turns") ?? 0) >= 5);
  });

  it("keeps exporting while the group has no members (scale from zero)", async () => {
    await worker!.stop();
    worker = undefined;
    await send(2, "idle");
    await eventually(lagIs(2), 30_000, "lag 2 with no worker");
    const text = await metrics();
    assert.ok((metricValue(text, "kafka_llm_recent_turn_duration_seconds") ?? 0) > 0, "the last mean is kept while nothing runs");
    assert.ok((metricValue(text, "kafka_llm_consumer_group_lag_refresh_timestamp_seconds") ?? 0) > Date.now() / 1000 - 60);
  });
});
