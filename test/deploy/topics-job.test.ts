/**
 * The chart's topics Job, run for real: its command (scripts/deploy/create-topics.ts, as
 * dist/scripts/deploy/create-topics.js in the image) with the environment the rendered Job
 * gives it (kafka.sasl on: the topics component's user, its password mounted from the
 * chart's Secret), against a real Kafka broker secured as production should be
 * (SASL/SCRAM, deny by default). With no ACL for the topics principal the broker refuses it
 * and nothing is created; with that principal's ACLs alone (contracts/kafka-acls.ts, granted
 * as an operator would) the Job creates the topics with the chart's partitions, replication,
 * chat.memory's compaction and chat.history's own settings (read back with Kafka's Java
 * AdminClient, scripts/kafka/admin-tool.ts); a second run is a no-op; a run whose partition
 * counts disagree with the topics fails and says how (their configs are not compared:
 * librdkafka's binding cannot read them, platform/topic-admin.ts).
 *
 * Model pools: the rendered Job's KAFKA_POOLS (pools: [] declares the default pool) makes
 * each pool's topics and a PoolRecord per pool on chat.models; a later release without a
 * pool removes it there (a tombstone); a release that declares what chat.models says already
 * writes nothing. The topics principal reads and writes chat.models with its own ACLs only.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { poolRecordSchema } from "../../contracts/records/models.js";
import { topicNames } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { describeTopicConfigs } from "../../scripts/kafka/admin-tool.js";
import { kafkaConfigFor, readTopic, useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { REPO_ROOT } from "../helpers/services.js";
import { envWithMountedSecrets, find, render, type PodSpec } from "./lib/chart.js";
import { grantAcls, saslValues } from "./lib/kafka-login.js";

describe("the topics Job against a real broker", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  const prefix = uniquePrefix("chart-topics");
  const names = topicNames(prefix);
  const secrets = mkdtempSync(path.join(os.tmpdir(), "topics-job-"));
  let renders = 0;

  before(async () => {
    kafka = await useKafka();
    assert.ok(kafka.credentials, "a secured broker (KAFKA_CREDENTIALS_FILE): the Job logs in as the topics principal");
  });
  after(async () => {
    await kafka?.stop();
    rmSync(secrets, { recursive: true, force: true });
  });

  /** The Job's environment as rendered with kafka.sasl on, its password file "mounted" from the chart's Secret. */
  function jobEnv(set: Record<string, string | number | object>): Record<string, string> {
    const objects = render({ set: { "kafka.topicPrefix": prefix, ...saslValues(kafka.credentials, ["gateway", "worker", "topics"]), ...set } });
    const job = find(objects, "Job", "-topics-1");
    const spec = (job.spec as { template: { spec: PodSpec } }).template.spec;
    const c = spec.containers[0]!;
    assert.deepEqual(c.args, ["dist/scripts/deploy/create-topics.js"]);
    return { ...envWithMountedSecrets(objects, spec, c, path.join(secrets, String(renders++))), KAFKA_BROKERS: kafka.brokers };
  }

  async function existingTopics(): Promise<string[]> {
    const admin = new KafkaAdmin(kafkaConfigFor(kafka));
    try {
      return (await admin.listTopics()).filter((t) => t.startsWith(prefix)).sort();
    } finally {
      admin.close();
    }
  }

  function runJob(env: Record<string, string>) {
    return spawnSync(process.execPath, ["--import", "tsx", "scripts/deploy/create-topics.ts"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 90_000,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    });
  }

  const settings = {
    "kafka.requestPartitions": 3,
    "autoscaling.maxReplicas": 3,
    "kafka.conversationTtlMs": 3_600_000,
    "kafka.history.partitions": 2,
    "kafka.history.retentionMs": 7_200_000,
  };

  it("logs in as the topics principal from the chart's Secret; with no ACL for it the broker refuses and nothing is created", async () => {
    const env = jobEnv(settings);
    const topics = kafka.credentials!.users.topics;
    assert.equal(env.KAFKA_SASL_MECHANISM, "scram-sha-512");
    assert.equal(env.KAFKA_SASL_USERNAME, topics.username, "the topics component's own user, not another component's");
    assert.equal(readFileSync(env.KAFKA_SASL_PASSWORD_FILE!, "utf8"), topics.password, "its password, mounted as a file");
    assert.equal(env.KAFKA_SASL_PASSWORD, undefined, "never in an environment variable");

    const refused = runJob(env);
    assert.equal(refused.status, 1, refused.stdout + refused.stderr);
    // The refusal says who may create topics (platform/topic-admin.ts).
    assert.match(refused.stderr, /create-topics: .*Kafka refused to create them \(TOPIC_AUTHORIZATION_FAILED\): this principal may not create topics/);
    assert.deepEqual(await existingTopics(), [], "no topic of the install exists");
  });

  it("with only the topics principal's ACLs, creates the topics with the chart's partitions and chat.memory compacted, chat.history with its own settings, once", async () => {
    // As an operator would, before the install: the Job's principal's ACLs, nobody else's.
    const granted = await grantAcls(kafka, { topics: names, workerGroup: "kafka-llm-workers", gatewayGroup: `${prefix}kafka-llm-gateways` }, ["topics"]);
    assert.deepEqual(new Set(granted.map((a) => a.principal)), new Set([`User:${kafka.credentials!.users.topics.username}`]));
    const env = jobEnv(settings);
    const first = runJob(env);
    assert.equal(first.status, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /"created":\[/);

    assert.deepEqual(await existingTopics(), Object.values(names).sort());
    const admin = new KafkaAdmin(kafkaConfigFor(kafka));
    try {
      const partitions = Object.fromEntries([...(await admin.partitions(Object.values(names)))].map(([name, list]) => [name, list.length]));
      assert.deepEqual(partitions, {
        [names.requests]: 3,
        [names.events]: 3,
        [names.memory]: 3,
        [names.history]: 2,
        [names.control]: 1,
        [names.deadLetter]: 1,
        [names.models]: 1,
      });
    } finally {
      admin.close();
    }
    // Read back with Kafka's Java AdminClient: librdkafka's binding cannot describe configs.
    const configs = await describeTopicConfigs(kafkaConfigFor(kafka), [names.memory, names.history], ["cleanup.policy", "retention.ms"]);
    assert.deepEqual(configs.get(names.memory), { "cleanup.policy": "compact,delete", "retention.ms": "3600000" });
    assert.deepEqual(configs.get(names.history), { "cleanup.policy": "delete", "retention.ms": "7200000" });

    // pools: [] declares the default pool with the gateway's model name.
    assert.deepEqual(await modelsOnBus(), { default: ["kafka-llm"] });
    assert.match(first.stdout, /"declared":\["default"\]/);

    const again = runJob(env);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /"created":\[\]/);
    assert.match(again.stdout, /"declared":\[\],"unchanged":\["default"\],"removed":\[\]/, "nothing to write: chat.models says it already");
  });

  /** chat.models as a gateway reads it: the latest record per pool (a tombstone removes it), each pool's model names. */
  async function modelsOnBus(): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    for (const r of await readTopic(kafkaConfigFor(kafka), names.models)) {
      const pool = r.key!.toString("utf8");
      if (r.value === null) delete out[pool];
      else {
        const record = poolRecordSchema.parse(JSON.parse(r.value.toString("utf8")));
        assert.equal(record.pool, pool, "keyed by its pool");
        assert.equal(record.by, "topics-job");
        out[pool] = record.models;
      }
    }
    return out;
  }

  it("pools: creates each pool's request and memory topics, declares every pool on chat.models, and removes a pool a later release drops", async () => {
    const pools = [
      { name: "small", model: { name: "small-model" } },
      { name: "large", model: { name: "large-model" }, adapters: [{ name: "large-sql", uri: "hf:example/lora/sql.gguf" }] },
    ];
    const env = jobEnv({ ...settings, pools });
    assert.equal(
      env.KAFKA_POOLS,
      '[{"models":["small-model"],"pool":"small"},{"adapters":{"large-sql":"large-model"},"models":["large-model","large-sql"],"pool":"large"}]',
    );
    const first = runJob(env);
    assert.equal(first.status, 0, first.stdout + first.stderr);
    const poolTopics = [names.requests, names.memory].flatMap((t) => ["small", "large"].map((p) => t.replace(/chat\.(requests|memory)$/, `chat.$1.pool.${p}`)));
    const admin = new KafkaAdmin(kafkaConfigFor(kafka));
    try {
      const partitions = await admin.partitions(poolTopics);
      for (const t of poolTopics) assert.equal(partitions.get(t)?.length, 3, `${t}: the pools' topics have the requests' partitions`);
    } finally {
      admin.close();
    }
    const memory = await describeTopicConfigs(kafkaConfigFor(kafka), [`${prefix}chat.memory.pool.small`], ["cleanup.policy"]);
    assert.deepEqual(memory.get(`${prefix}chat.memory.pool.small`), { "cleanup.policy": "compact,delete" });
    // The release no longer declares the default pool: removed; small and large declared.
    assert.deepEqual(await modelsOnBus(), { small: ["small-model"], large: ["large-model", "large-sql"] });

    // A later release drops large: a tombstone for it; small is unchanged.
    const later = runJob(jobEnv({ ...settings, pools: [pools[0]!] }));
    assert.equal(later.status, 0, later.stdout + later.stderr);
    assert.match(later.stdout, /"declared":\[\],"unchanged":\["small"\],"removed":\["large"\]/);
    assert.deepEqual(await modelsOnBus(), { small: ["small-model"] });
  });

  it("fails, naming the difference, when the chart's partitions no longer match the topics", () => {
    const r = runJob(jobEnv({ ...settings, "kafka.requestPartitions": 4, "autoscaling.maxReplicas": 4 }));
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
