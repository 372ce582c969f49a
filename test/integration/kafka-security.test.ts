/**
 * Kafka with authentication: a real broker whose only client listener takes SASL/SCRAM-
 * SHA-512. A worker with the right credentials (password from a file) answers a turn; one
 * with a wrong password does not start, and says why without printing the password.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { topicNames } from "../../contracts/topics.js";
import { startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { ensureTestModel } from "../../scripts/models.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { uniquePrefix } from "../helpers/kafka.js";
import { freePort, startService } from "../helpers/services.js";

const ADMIN = { name: "admin", password: "admin-Secret-1" };
const APP = { name: "kafka-llm", password: "app-Secret-2" };

describe("Kafka SASL/SCRAM", { timeout: 180_000 }, () => {
  let broker: RunningBroker;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-sasl-"));
    const jaas = `org.apache.kafka.common.security.scram.ScramLoginModule required username="${ADMIN.name}" password="${ADMIN.password}";`;
    broker = await startBroker({
      serverProperties: {
        listeners: "SASL_PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}",
        "advertised.listeners": "SASL_PLAINTEXT://127.0.0.1:${port}",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": jaas,
      },
      formatArgs: [
        "--add-scram",
        `SCRAM-SHA-512=[name=${ADMIN.name},password=${ADMIN.password}]`,
        "--add-scram",
        `SCRAM-SHA-512=[name=${APP.name},password=${APP.password}]`,
      ],
    });
  });

  after(async () => {
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function workerEnv(prefix: string, passwordFile: string): Promise<{ env: Record<string, string>; port: number }> {
    const port = await freePort();
    return {
      port,
      env: {
        KAFKA_BROKERS: broker.brokers,
        KAFKA_TOPIC_PREFIX: prefix,
        KAFKA_REQUEST_PARTITIONS: "1",
        KAFKA_REPLICATION_FACTOR: "1",
        KAFKA_GROUP_ID: `${prefix}workers`,
        KAFKA_SASL_MECHANISM: "scram-sha-512",
        KAFKA_SASL_USERNAME: APP.name,
        KAFKA_SASL_PASSWORD_FILE: passwordFile,
        WORKER_HTTP_HOST: "127.0.0.1",
        WORKER_HTTP_PORT: String(port),
        MODEL: await ensureTestModel(),
        LLAMA_THREADS: "1",
        DEFAULT_MAX_TOKENS: "16",
      },
    };
  }

  it("serves a turn with credentials read from a file", async () => {
    const prefix = uniquePrefix("sasl");
    const passwordFile = path.join(dir, "password");
    await writeFile(passwordFile, `${APP.password}\n`);
    const { env, port } = await workerEnv(prefix, passwordFile);
    const worker = await startService({ name: "sasl-worker", entry: "worker/main.ts", env, port, readyPath: "/readyz" });
    const chat = new ChatOverKafka(broker.brokers, topicNames(prefix), {
      sasl: { mechanism: "scram-sha-512", username: APP.name, password: APP.password },
    });
    try {
      await chat.start();
      const final = await chat.terminal(await chat.turn("sasl-1", "Hello over SASL."));
      assert.equal(final.type, "final");
      assert.ok(!worker.output().includes(APP.password), "the password never reaches the logs");
    } finally {
      await chat.stop();
      await worker.stop();
    }
  });

  it("refuses to start with a wrong password and says why without printing it", async () => {
    const wrong = "not-the-Password-3";
    const passwordFile = path.join(dir, "wrong");
    await writeFile(passwordFile, wrong);
    const { env, port } = await workerEnv(uniquePrefix("sasl-bad"), passwordFile);
    await assert.rejects(
      startService({ name: "sasl-bad", entry: "worker/main.ts", env: { ...env, LOG_LEVEL: "debug" }, port, readyPath: "/readyz", timeoutMs: 90_000 }),
      (err: Error) => {
        assert.match(err.message, /exited with 1/);
        assert.match(err.message, /SASL|[Aa]uthentication/);
        assert.ok(!err.message.includes(wrong), "the password is not printed");
        return true;
      },
    );
  });

  it("names a missing password file at start", async () => {
    const { env, port } = await workerEnv(uniquePrefix("sasl-nofile"), path.join(dir, "no-such-file"));
    await assert.rejects(
      startService({ name: "sasl-nofile", entry: "worker/main.ts", env, port, readyPath: "/readyz" }),
      /KAFKA_SASL_PASSWORD_FILE: cannot read .*no-such-file \(ENOENT\)/,
    );
  });
});
