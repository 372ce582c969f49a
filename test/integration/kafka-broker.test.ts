/**
 * scripts/kafka-broker.ts against a real broker: start (secured: SCRAM logins, deny by
 * default), topic, produce, consume in a group with a commit as the administrator; a
 * component's principal refused everything no ACL grants, a client without a login or with
 * a wrong password refused; the principals kept across a restart on the same data dir; stop
 * (process and port really gone), and the jar cache.
 * KAFKA_VERSION=4.1.0 runs the same against Kafka 4.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Kafka, logLevel, type Consumer, type KafkaConfig } from "kafkajs";
import { ensureKafkaJars, startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { kafkajsClient } from "../helpers/kafka.js";

const TOPIC = "broker-selftest";

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

describe("kafka-broker script", { timeout: 240_000 }, () => {
  let broker: RunningBroker;
  let kafka: Kafka;

  before(async () => {
    broker = await startBroker({ startTimeoutMs: 60_000 });
    kafka = new Kafka({ clientId: "broker-selftest", ...kafkajsClient(broker), logLevel: logLevel.NOTHING });
  });

  // Also runs when a test fails, so no broker outlives the file.
  after(() => broker?.stop());

  test("produces and consumes a message through a consumer group", { timeout: 60_000 }, async () => {
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer();
    let consumer: Consumer | undefined;
    try {
      assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1 }], waitForLeaders: true }), true);

      await producer.connect();
      await producer.send({ topic: TOPIC, messages: [{ key: "k", value: "hello kafka" }] });

      const groupId = `selftest-${process.pid}`;
      consumer = kafka.consumer({ groupId });
      await consumer.connect();
      await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
      const received = new Promise<{ value: string; offset: string }>((resolve) => {
        void consumer!.run({
          autoCommit: false,
          eachMessage: async ({ message }) => resolve({ value: message.value?.toString() ?? "", offset: message.offset }),
        });
      });
      const message = await received;
      assert.equal(message.value, "hello kafka");

      await consumer.commitOffsets([{ topic: TOPIC, partition: 0, offset: String(Number(message.offset) + 1) }]);
      const committed = await admin.fetchOffsets({ groupId, topics: [TOPIC] });
      assert.equal(committed[0]?.partitions[0]?.offset, "1");
      const topicOffsets = await admin.fetchTopicOffsets(TOPIC);
      assert.equal(topicOffsets[0]?.high, "1");
    } finally {
      await consumer?.disconnect();
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  test("denies by default: a principal with no ACL, no login and a wrong password are all refused", { timeout: 60_000 }, async () => {
    assert.ok(broker.credentials && broker.credentialsFile, "secured by default");
    assert.equal((fs.statSync(broker.credentialsFile).mode & 0o077).toString(8), "0", "the credentials file is the owner's only");
    const as = (extra: Partial<KafkaConfig>) =>
      new Kafka({ brokers: [broker.brokers], logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 3000, ...extra });
    // The gateway's principal exists, but no ACL names it on this topic.
    const gateway = as(kafkajsClient(broker, "gateway")).producer({ retry: { retries: 0 } });
    await gateway.connect();
    try {
      await assert.rejects(gateway.send({ topic: TOPIC, messages: [{ value: "x" }] }), /not authorized|AUTHORIZATION/i);
    } finally {
      await gateway.disconnect();
    }
    const wrong = as({ sasl: { mechanism: "scram-sha-512", username: "admin", password: "not-it" } }).admin();
    await assert.rejects(wrong.connect(), /SASL|[Aa]uthentication/);
    const anonymous = as({}).admin();
    await assert.rejects(anonymous.connect().then(() => anonymous.listTopics()));
    await anonymous.disconnect().catch(() => {});
  });

  test("keeps its principals across a restart on the same data dir", { timeout: 120_000 }, async () => {
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), "kafka-llm-broker-again-"));
    try {
      const first = await startBroker({ dataDir });
      const creds = first.credentials;
      await first.stop();
      const again = await startBroker({ dataDir });
      try {
        assert.deepEqual(again.credentials, creds, "the same passwords");
        const admin = new Kafka({ ...kafkajsClient(again), logLevel: logLevel.NOTHING }).admin();
        await admin.connect();
        await admin.listTopics();
        await admin.disconnect();
      } finally {
        await again.stop();
      }
    } finally {
      await fsp.rm(dataDir, { recursive: true, force: true });
    }
  });

  test("stop() ends the JVM and frees the port", { timeout: 30_000 }, async () => {
    await broker.stop();
    await broker.stop(); // idempotent
    assert.throws(() => process.kill(broker.pid, 0), { code: "ESRCH" });
    assert.equal(await refusesConnections(broker.port), true);
    assert.equal(fs.existsSync(broker.dataDir), false, "temp data dir is removed");
  });

  test("a second ensureKafkaJars is served from the cache without mvn", async () => {
    const libDir = await ensureKafkaJars();
    assert.ok(fs.existsSync(path.join(path.dirname(libDir), ".complete")), "marker file exists");

    // Put a fake mvn first on PATH that leaves a trace; the cached call must not run it.
    const fakeBin = await fsp.mkdtemp(path.join(os.tmpdir(), "fake-mvn-"));
    const trace = path.join(fakeBin, "ran");
    await fsp.writeFile(path.join(fakeBin, "mvn"), `#!/bin/sh\ntouch '${trace}'\nexit 1\n`, { mode: 0o755 });
    const savedPath = process.env.PATH;
    process.env.PATH = `${fakeBin}${path.delimiter}${savedPath ?? ""}`;
    try {
      assert.equal(await ensureKafkaJars(), libDir);
      assert.equal(fs.existsSync(trace), false, "mvn was not run");
    } finally {
      process.env.PATH = savedPath;
      await fsp.rm(fakeBin, { recursive: true, force: true });
    }
  });
});
