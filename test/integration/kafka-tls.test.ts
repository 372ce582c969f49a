/**
 * Kafka with SASL over TLS, as production runs it: a real broker whose only client listener
 * is SASL_SSL (SCRAM logins, the StandardAuthorizer, a PEM keystore made with openssl in a
 * temp dir: scripts/kafka/certificates.ts). A worker logged in as its own principal, with
 * KAFKA_TLS=true and the CA in KAFKA_TLS_CA_FILE, answers a turn; one without the CA does
 * not start, and says why.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { topicNames } from "../../contracts/topics.js";
import { startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { makeBrokerCertificates } from "../../scripts/kafka/certificates.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { loggedIn, stackEnv, startWorker } from "../helpers/gateway.js";
import { uniquePrefix } from "../helpers/kafka.js";

describe("Kafka with SASL over TLS", { timeout: 240_000 }, () => {
  let broker: RunningBroker;
  let dir: string;
  let ca: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-tls-"));
    const tls = await makeBrokerCertificates(dir);
    ca = tls.ca;
    broker = await startBroker({ tls });
  });

  after(async () => {
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("serves a turn over TLS with the CA from a file, logged in as the worker", async () => {
    const prefix = uniquePrefix("tls");
    const worker = await startWorker(stackEnv(broker, prefix, 1), { KAFKA_TLS: "true", KAFKA_TLS_CA_FILE: ca, DEFAULT_MAX_TOKENS: "8" }, "tls-worker");
    const chat = new ChatOverKafka(broker, topicNames(prefix), { tls: { ca: await readFile(ca, "utf8"), rejectUnauthorized: true } });
    try {
      await chat.start();
      const final = await chat.terminal(await chat.turn("tls-1", "Hello over TLS."));
      assert.equal(final.type, "final");
    } finally {
      await chat.stop();
      await worker.stop();
    }
  });

  it("refuses to start when it cannot verify the broker's certificate, and says why", async () => {
    // The install is made over TLS with the CA; the worker alone lacks it.
    const prefix = uniquePrefix("tls-noca");
    const env = await loggedIn({ ...stackEnv(broker, prefix, 1), KAFKA_TLS: "true", KAFKA_TLS_CA_FILE: ca }, "worker");
    await assert.rejects(startWorker({ ...env, KAFKA_TLS_CA_FILE: "" }, { KAFKA_TLS: "true" }, "tls-no-ca"), (err: Error) => {
      assert.match(err.message, /exited with 1/);
      assert.match(err.message, /self[- ]signed|unable to (get|verify)|certificate/i);
      return true;
    });
  });
});
