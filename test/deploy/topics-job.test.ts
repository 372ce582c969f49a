/**
 * The chart's topics Job, run for real: its command (scripts/deploy/create-topics.ts, as
 * dist/scripts/deploy/create-topics.js in the image) with the environment the rendered Job
 * gives it, against a real Kafka broker. The topics come out with the chart's partitions,
 * replication, chat.memory's compaction and chat.history's own settings; a second run is
 * a no-op; a run whose settings disagree with the topics fails and says how.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import kafkajs, { Kafka, logLevel } from "kafkajs";
import { topicNames } from "../../contracts/topics.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { REPO_ROOT } from "../helpers/services.js";
import { containerEnv, find, render, type Container } from "./lib/chart.js";

const { ConfigResourceTypes } = kafkajs;

describe("the topics Job against a real broker", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  const prefix = uniquePrefix("chart-topics");

  before(async () => {
    kafka = await useKafka();
  });
  after(async () => {
    await kafka?.stop();
  });

  function jobEnv(set: Record<string, string | number>): Record<string, string> {
    const objects = render({ set: { "kafka.topicPrefix": prefix, ...set } });
    const job = find(objects, "Job", "-topics-1");
    const c = (job.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;
    assert.deepEqual(c.args, ["dist/scripts/deploy/create-topics.js"]);
    return { ...containerEnv(objects, c), KAFKA_BROKERS: kafka.brokers };
  }

  function runJob(env: Record<string, string>) {
    return spawnSync(process.execPath, ["--import", "tsx", "scripts/deploy/create-topics.ts"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 90_000,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    });
  }

  it("creates the topics with the chart's partitions and chat.memory compacted, chat.history with its own settings, once", async () => {
    const env = jobEnv({
      "kafka.requestPartitions": 3,
      "autoscaling.maxReplicas": 3,
      "kafka.conversationTtlMs": 3_600_000,
      "kafka.history.partitions": 2,
      "kafka.history.retentionMs": 7_200_000,
    });
    const first = runJob(env);
    assert.equal(first.status, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /"created":\[/);

    const names = topicNames(prefix);
    const admin = new Kafka({ brokers: [kafka.brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: Object.values(names) });
      const partitions = Object.fromEntries(topics.map((t) => [t.name, t.partitions.length]));
      assert.deepEqual(partitions, {
        [names.requests]: 3,
        [names.events]: 3,
        [names.memory]: 3,
        [names.history]: 2,
        [names.control]: 1,
        [names.deadLetter]: 1,
      });
      const configs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [names.memory, names.history].map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ["cleanup.policy", "retention.ms"] })),
      });
      const entries = (name: string) =>
        Object.fromEntries(configs.resources.find((r) => r.resourceName === name)!.configEntries.map((e) => [e.configName, e.configValue]));
      assert.deepEqual(entries(names.memory), { "cleanup.policy": "compact,delete", "retention.ms": "3600000" });
      assert.deepEqual(entries(names.history), { "cleanup.policy": "delete", "retention.ms": "7200000" });
    } finally {
      await admin.disconnect();
    }

    const again = runJob(env);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /"created":\[\]/);
  });

  it("fails, naming the difference, when the chart's partitions no longer match the topics", () => {
    const r = runJob(
      jobEnv({
        "kafka.requestPartitions": 4,
        "autoscaling.maxReplicas": 4,
        "kafka.conversationTtlMs": 3_600_000,
        "kafka.history.partitions": 2,
        "kafka.history.retentionMs": 7_200_000,
      }),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /existing topics do not match the configuration/);
    assert.match(r.stderr, new RegExp(`${prefix.replace(/\./g, "\\.")}chat\\.requests`));
  });

  it("refuses a bad setting with exit code 2", () => {
    const r = runJob({ ...jobEnv({}), KAFKA_REQUEST_PARTITIONS: "zero" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /KAFKA_REQUEST_PARTITIONS/);
  });
});
