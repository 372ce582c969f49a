/**
 * Kafka over TLS: a real broker whose only client listener is SSL, with a PEM keystore
 * (certificates made with openssl in a temp dir: a CA, and a broker certificate for
 * 127.0.0.1 signed by it). A worker with KAFKA_TLS=true and the CA in KAFKA_TLS_CA_FILE
 * answers a turn; one without the CA does not start, and says why.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { topicNames } from "../../contracts/topics.js";
import { startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { stackEnv, startWorker } from "../helpers/gateway.js";
import { uniquePrefix } from "../helpers/kafka.js";

const run = promisify(execFile);

/** A CA and a broker certificate (SAN IP 127.0.0.1) signed by it, as PEM files in `dir`. */
async function makeCertificates(dir: string): Promise<{ ca: string; keystore: string }> {
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => run("openssl", args, { cwd: dir });
  await openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kafka-llm test CA");
  await openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=127.0.0.1");
  await writeFile(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl(
    "x509",
    "-req",
    "-in",
    "broker.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "broker.pem",
    "-days",
    "2",
    "-extfile",
    "san.ext",
  );
  // Kafka's PEM keystore file: the (unencrypted PKCS#8) private key, then the certificate chain.
  const keystore = file("broker-keystore.pem");
  await writeFile(keystore, (await readFile(file("broker.key"), "utf8")) + (await readFile(file("broker.pem"), "utf8")));
  return { ca: file("ca.pem"), keystore };
}

describe("Kafka over TLS", { timeout: 240_000 }, () => {
  let broker: RunningBroker;
  let dir: string;
  let ca: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-tls-"));
    const certs = await makeCertificates(dir);
    ca = certs.ca;
    broker = await startBroker({
      serverProperties: {
        listeners: "SSL://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}",
        "advertised.listeners": "SSL://127.0.0.1:${port}",
        "listener.security.protocol.map": "SSL:SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": certs.keystore,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": certs.ca,
      },
    });
  });

  after(async () => {
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("serves a turn over TLS with the CA from a file", async () => {
    const prefix = uniquePrefix("tls");
    const worker = await startWorker(stackEnv(broker.brokers, prefix, 1), { KAFKA_TLS: "true", KAFKA_TLS_CA_FILE: ca, DEFAULT_MAX_TOKENS: "8" }, "tls-worker");
    const chat = new ChatOverKafka(broker.brokers, topicNames(prefix), { ssl: { ca: [await readFile(ca, "utf8")] } });
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
    await assert.rejects(startWorker(stackEnv(broker.brokers, uniquePrefix("tls-noca"), 1), { KAFKA_TLS: "true" }, "tls-no-ca"), (err: Error) => {
      assert.match(err.message, /exited with 1/);
      assert.match(err.message, /self[- ]signed|unable to (get|verify)|certificate/i);
      return true;
    });
  });
});
