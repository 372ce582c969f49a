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
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { librdkafkaConnection } from "../../platform/kafka/connection.js";
import { GroupConsumer, type GroupRecord } from "../../platform/kafka/group-consumer.js";
import { call, rdkafka, type NativeError } from "../../platform/kafka/native.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { ensureKafkaJars, startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { defaultVersion, majorOf } from "../../scripts/kafka/jars.js";
import { kafkaConfigFor } from "../helpers/kafka.js";

const TOPIC = "broker-selftest";

const logger = createLogger("broker-selftest", "silent");

/**
 * Connects a client logged in with `config` and returns what librdkafka said: the connect's
 * error and the client's errors and error logs (a refused login surfaces there), or "connected".
 */
async function loginOutcome(config: KafkaConfig): Promise<string> {
  const producer = new (rdkafka().Producer)({ ...librdkafkaConnection(config), event_cb: true });
  const said: string[] = [];
  producer.on("event.error", (err: NativeError) => said.push(err.message));
  // A refused login is in librdkafka's log (FAIL, at error severity); the connect only times out.
  producer.on("event.log", (log: { severity: number; message: string }) => {
    if (log.severity <= 3) said.push(log.message);
  });
  try {
    await call((cb) => producer.connect({ timeout: 5000 }, cb));
    return "connected";
  } catch (err) {
    return [(err as Error).message, ...said].join("; ");
  } finally {
    await Promise.race([call((cb) => producer.disconnect(cb)).catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
  }
}

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
  let config: KafkaConfig;

  before(async () => {
    broker = await startBroker({ startTimeoutMs: 60_000 });
    config = { ...kafkaConfigFor(broker), clientId: "broker-selftest" };
  });

  // Also runs when a test fails, so no broker outlives the file.
  after(() => broker?.stop());

  test("produces and consumes a message through a consumer group", { timeout: 60_000 }, async () => {
    const admin = new KafkaAdmin(config);
    const producer = await KafkaProducer.connect(config, { logger });
    let consumer: GroupConsumer | undefined;
    try {
      await admin.createTopics([{ name: TOPIC, partitions: 1, replicationFactor: -1, configs: {} }]);
      assert.ok((await admin.listTopics()).includes(TOPIC), "the topic exists");

      const [delivered] = await producer.send({ topic: TOPIC, messages: [{ key: "k", value: Buffer.from("hello kafka") }] });
      assert.deepEqual(delivered, { partition: 0, offset: 0 });

      const groupId = `selftest-${process.pid}`;
      // The workers' kind of member: the KIP-848 protocol on Kafka 4, the classic one on 3.x.
      consumer = new GroupConsumer({
        kafka: config,
        groupId,
        topic: TOPIC,
        protocol: majorOf(defaultVersion()) >= 4 ? "consumer" : "classic",
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1000,
        rebalanceTimeoutMs: 30_000,
        logger,
      });
      const received = new Promise<GroupRecord>((resolve, reject) => {
        void consumer!.start({
          onAssigned: () => {},
          onRevoked: async () => {},
          onRecord: resolve,
          onFatal: reject,
        });
      });
      const message = await received;
      assert.equal(message.value?.toString(), "hello kafka");

      await consumer.commit(0, String(Number(message.offset) + 1));
      // The binding's commit callback comes once the commit is sent (commitAsync), not acknowledged.
      const deadline = Date.now() + 10_000;
      let committed = await admin.committed(groupId, TOPIC, [0]);
      while (committed.size === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        committed = await admin.committed(groupId, TOPIC, [0]);
      }
      assert.deepEqual(committed, new Map([[0, 1]]));
      assert.deepEqual(await admin.offsets(TOPIC), [{ partition: 0, low: 0, high: 1 }]);
    } finally {
      await consumer?.close();
      await producer.disconnect();
      admin.close();
    }
  });

  test("the request consumer's watchdog restarts a partition whose fetch stopped, without leaving the group", { timeout: 60_000 }, async () => {
    const topic = "fetch-stall";
    const admin = new KafkaAdmin(config);
    const producer = await KafkaProducer.connect(config, { logger });
    let consumer: GroupConsumer | undefined;
    try {
      await admin.createTopics([{ name: topic, partitions: 1, replicationFactor: -1, configs: {} }]);
      const records: string[] = [];
      const stalls: number[] = [];
      let revoked = 0;
      let delivered: () => void = () => {};
      consumer = new GroupConsumer({
        kafka: config,
        groupId: `fetch-stall-${process.pid}`,
        topic,
        protocol: majorOf(defaultVersion()) >= 4 ? "consumer" : "classic",
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1000,
        rebalanceTimeoutMs: 30_000,
        logger,
        onStall: (partition) => stalls.push(partition),
      });
      await consumer.start({
        onAssigned: () => {},
        onRevoked: async () => {
          revoked++;
        },
        onRecord: (record) => {
          records.push(record.value!.toString());
          delivered();
        },
        onFatal: () => {},
      });
      const next = (timeoutMs: number) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), timeoutMs);
          delivered = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
      const first = next(30_000);
      await producer.send({ topic, messages: [{ key: "k", value: Buffer.from("one") }] });
      assert.ok(await first, "the first record is delivered");

      // The fetch stops behind the wrapper's back, as librdkafka's own pause left in place or
      // a fetch stuck after a broker restart would; the worker never asked for it.
      consumer.native().pause([{ topic, partition: 0 }]);
      const second = next(30_000);
      await producer.send({ topic, messages: [{ key: "k", value: Buffer.from("two") }] });
      assert.ok(await second, "the record waiting past the stalled position is delivered");
      assert.deepEqual(records, ["one", "two"], "each record once, in order");
      assert.deepEqual(stalls, [0], "the watchdog restarted partition 0's fetch once");
      assert.equal(revoked, 0, "the member kept its partition (no rebalance)");
    } finally {
      await consumer?.close();
      await producer.disconnect();
      admin.close();
    }
  });

  test("denies by default: a principal with no ACL, no login and a wrong password are all refused", { timeout: 60_000 }, async () => {
    assert.ok(broker.credentials && broker.credentialsFile, "secured by default");
    assert.equal((fs.statSync(broker.credentialsFile).mode & 0o077).toString(8), "0", "the credentials file is the owner's only");
    // The gateway's principal exists, but no ACL names it on this topic. Not idempotent: an
    // idempotent producer would be refused its producer id first (no Write on any topic).
    const gateway = await KafkaProducer.connect(kafkaConfigFor(broker, "gateway"), { logger, idempotent: false, deliveryTimeoutMs: 10_000 });
    try {
      await assert.rejects(gateway.send({ topic: TOPIC, messages: [{ value: Buffer.from("x") }] }), /[Aa]uthorization/);
    } finally {
      await gateway.disconnect();
    }
    const admin = kafkaConfigFor(broker);
    assert.match(await loginOutcome({ ...admin, sasl: { mechanism: "scram-sha-512", username: "admin", password: "not-it" } }), /SASL|[Aa]uthentication/);
    assert.notEqual(await loginOutcome({ ...admin, sasl: null }), "connected", "no login, no connection");
    assert.equal(await loginOutcome(admin), "connected", "the administrator's login is accepted");
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
        const admin = new KafkaAdmin(kafkaConfigFor(again));
        try {
          await admin.listTopics();
        } finally {
          admin.close();
        }
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
