/**
 * scripts/kafka-broker.ts against a real broker: start, topic, produce, consume in a group with
 * a commit, stop (process and port really gone), and the jar cache.
 * KAFKA_VERSION=4.1.0 runs the same against Kafka 4.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Kafka, logLevel, type Consumer } from "kafkajs";
import { ensureKafkaJars, startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";

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

describe("kafka-broker script", { timeout: 110_000 }, () => {
  let broker: RunningBroker;
  let kafka: Kafka;

  before(async () => {
    broker = await startBroker({ startTimeoutMs: 60_000 });
    kafka = new Kafka({ clientId: "broker-selftest", brokers: [broker.brokers], logLevel: logLevel.NOTHING });
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
