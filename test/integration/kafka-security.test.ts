/**
 * Kafka as a trust boundary, enforced by the real broker: SASL/SCRAM logins, one principal
 * per component with the ACLs of contracts/kafka-acls.ts, and the StandardAuthorizer denying
 * everything else (the broker every test runs on: scripts/kafka/security.ts).
 *
 *   - A worker logs in with its password from a file; a wrong password stops it at start,
 *     saying why without printing the password; a missing file is named.
 *   - Each principal does its job and is refused what it must not do: the gateway writing
 *     chat.memory or joining the workers' group, a worker forging requests, the autoscaler
 *     reading a record, the topics Job producing, anyone without a login.
 *   - A process that tries to join the workers' group without worker credentials, and to
 *     advertise its own address there, is refused by the broker: it never shows in the
 *     group, receives no read and no credential, and every conversation read is answered by
 *     the real worker.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { KafkaConfig as KafkaLlmConfig } from "../../contracts/config/shared.js";
import { topicNames } from "../../contracts/topics.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { librdkafkaConnection } from "../../platform/kafka/connection.js";
import { GroupDescriber } from "../../platform/kafka/group-describer.js";
import { authorizationFailure } from "../../platform/kafka/native.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { startOffsetReader } from "../../platform/kafka/offset-reader.js";
import { loginConfig } from "../../scripts/kafka/provision.js";
import type { BrokerRole } from "../../scripts/kafka/security.js";
import { ensureTestModel } from "../../scripts/models.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { apiClient, loggedIn, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { uniquePrefix, useKafka, type TestKafka } from "../helpers/kafka.js";
import { freePort, startService, type Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const KEY = "security-test-key-12345";
const TOKEN = "security-test-internal-token-0123456789";

/** Kafka's refusals of a principal (authorizationFailure names them from the error's code). */
const REFUSED = /^(TOPIC|GROUP|CLUSTER)_AUTHORIZATION_FAILED$/;

async function refused(what: string, attempt: Promise<unknown>, type: RegExp): Promise<void> {
  await assert.rejects(attempt, (err: unknown) => {
    assert.match(authorizationFailure(err) ?? `not an authorization error: ${String(err)}`, type, what);
    return true;
  });
}

interface NativeConsumer {
  connect(o: Record<string, unknown>, cb: (err: Error | null) => void): void;
  subscribe(t: string[]): void;
  consume(n: number, cb: (err: (Error & { code?: number }) | null, messages: unknown[]) => void): void;
  on(e: string, l: (event: Error & { code?: number }) => void): void;
  disconnect(cb: () => void): void;
}

/**
 * Joins `groupId` on `topic` the way a worker does (librdkafka, the KIP-848 consumer
 * protocol), logged in with `config` and advertising `clientId`; for up to 15 s. Resolves
 * with "joined" once it is given partitions or what librdkafka said when the broker refused.
 */
async function joinAs(config: KafkaLlmConfig, clientId: string, groupId: string, topic: string): Promise<string> {
  const require = createRequire(import.meta.url);
  const { KafkaConsumer } = require("@confluentinc/kafka-javascript") as { KafkaConsumer: new (conf: Record<string, unknown>) => NativeConsumer };
  const said: string[] = [];
  let assigned = false;
  const consumer = new KafkaConsumer({
    ...librdkafkaConnection({ ...config, clientId }),
    "group.id": groupId,
    "group.protocol": "consumer",
    // librdkafka says why a heartbeat failed in its group log.
    debug: "cgrp",
  });
  consumer.on("event.error", (err) => said.push(`${err.code}: ${err.message}`));
  consumer.on("event.log", (line) => {
    if (/error|authoriz/i.test(line.message)) said.push(line.message);
    if (/assignment.*: \S*\[\d/i.test(line.message)) assigned = true;
  });
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())));
  try {
    consumer.subscribe([topic]);
    const refusal = () => said.find((e) => /authorization failed/i.test(e));
    const deadline = Date.now() + 15_000;
    while (!refusal() && !assigned && Date.now() < deadline) {
      await new Promise<void>((r) =>
        consumer.consume(1, (err, messages) => {
          if (err && err.code !== -185) said.push(`${err.code}: ${err.message}`);
          if (messages?.length) assigned = true;
          r();
        }),
      );
    }
    return refusal() ?? (assigned ? "joined" : `no answer: ${said.join("; ")}`);
  } finally {
    await Promise.race([new Promise<void>((r) => consumer.disconnect(() => r())), new Promise((r) => setTimeout(r, 5000).unref())]);
  }
}

describe("Kafka principals and ACLs on the real broker", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let dir: string;
  const prefix = uniquePrefix("acl");
  const topics = topicNames(prefix);
  const workerGroup = `${prefix}workers`;
  const clients: Array<{ disconnect(): Promise<void> }> = [];
  const logger = createLogger("acl-test", "silent");

  /** A producer logged in as `role`: not idempotent (as the gateway's publisher), a refusal reported within seconds. */
  const producer = async (role: BrokerRole) => {
    const p = await KafkaProducer.connect({ ...login(role), clientId: `acl-${role}` }, { logger, idempotent: false, deliveryTimeoutMs: 10_000 });
    clients.push(p);
    return p;
  };
  const admin = (role: BrokerRole) => {
    const a = new KafkaAdmin({ ...login(role), clientId: `acl-${role}` }, { timeoutMs: 10_000 });
    clients.push({ disconnect: async () => a.close() });
    return a;
  };
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  before(async () => {
    kafka = await useKafka();
    assert.ok(kafka.credentials, "the test broker is secured (SCRAM, ACLs)");
    dir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-sasl-"));
    // The install: topics and every component's ACLs, as an operator makes them.
    await loggedIn(installEnv(), "worker");
  });

  after(async () => {
    // A client whose join the broker refused may never finish disconnecting: bounded.
    for (const c of clients) await Promise.race([c.disconnect().catch(() => {}), new Promise((r) => setTimeout(r, 5000).unref())]);
    await kafka?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The install's env, with its workers' group. */
  const installEnv = () => ({ ...stackEnv(kafka, prefix, 2), WORKER_GROUP_ID: workerGroup });

  async function workerEnv(passwordFile: string): Promise<{ env: Record<string, string>; port: number }> {
    const port = await freePort();
    const login = await loggedIn(installEnv(), "worker");
    const { KAFKA_SASL_PASSWORD: _password, ...env } = login;
    return {
      port,
      env: {
        ...env,
        KAFKA_SASL_PASSWORD_FILE: passwordFile,
        WORKER_HTTP_HOST: "127.0.0.1",
        WORKER_HTTP_PORT: String(port),
        MODEL: await ensureTestModel(),
        LLAMA_THREADS: "1",
        DEFAULT_MAX_TOKENS: "16",
      },
    };
  }

  it("serves a turn as the worker principal, its password read from a file", async () => {
    const passwordFile = path.join(dir, "password");
    await writeFile(passwordFile, `${kafka.credentials!.users.worker.password}\n`);
    const { env, port } = await workerEnv(passwordFile);
    const worker = await startService({ name: "sasl-worker", entry: "worker/main.ts", env, port, readyPath: "/readyz" });
    const chat = new ChatOverKafka(kafka, topics);
    try {
      await chat.start();
      const final = await chat.terminal(await chat.turn("sasl-1", "Hello over SASL."));
      assert.equal(final.type, "final");
      assert.ok(!worker.output().includes(kafka.credentials!.users.worker.password), "the password never reaches the logs");
    } finally {
      await chat.stop();
      await worker.stop();
    }
  });

  it("refuses to start with a wrong password and says why without printing it", async () => {
    const wrong = "not-the-Password-3";
    const passwordFile = path.join(dir, "wrong");
    await writeFile(passwordFile, wrong);
    const { env, port } = await workerEnv(passwordFile);
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
    const { env, port } = await workerEnv(path.join(dir, "no-such-file"));
    await assert.rejects(
      startService({ name: "sasl-nofile", entry: "worker/main.ts", env, port, readyPath: "/readyz" }),
      /KAFKA_SASL_PASSWORD_FILE: cannot read .*no-such-file \(ENOENT\)/,
    );
  });

  it("lets each principal do its job and refuses it the rest", async () => {
    const record = { key: `t/acl-${randomUUID()}`, value: json({}) };
    // The gateway writes requests and cancels, and nothing a worker writes.
    const gateway = await producer("gateway");
    await gateway.send({ topic: topics.requests, messages: [record] });
    await gateway.send({ topic: topics.control, messages: [record] });
    for (const topic of [topics.memory, topics.events, topics.history, topics.deadLetter]) {
      await refused(`gateway writing ${topic}`, gateway.send({ topic, messages: [record] }), REFUSED);
    }
    assert.match(
      await joinAs(login("gateway"), "acl-gateway", workerGroup, topics.requests),
      /Group authorization failed/,
      "the gateway cannot join the workers' group",
    );

    // A worker writes what a turn writes, and requests (it passes a conversation that moves
    // to another model's pool on to that pool's topic, worker/move.ts), never a cancel, and
    // joins no gateway group.
    const worker = await producer("worker");
    await worker.send({ topic: topics.memory, messages: [{ key: "#acl-check", value: null }] });
    await worker.send({ topic: topics.requests, messages: [record] });
    await refused(`worker writing ${topics.control}`, worker.send({ topic: topics.control, messages: [record] }), REFUSED);
    assert.match(
      await joinAs(login("worker"), "acl-worker", `${prefix}kafka-llm-gateways`, topics.events),
      /Group authorization failed/,
      "nor a worker the gateways'",
    );
    await refused(
      "worker creating a topic",
      admin("worker").createTopics([{ name: `${prefix}chat.extra`, partitions: 1, replicationFactor: -1, configs: {} }]),
      REFUSED,
    );

    // The autoscaler reads the workers' lag and no record.
    const autoscaler = admin("autoscaler");
    const ends = await autoscaler.offsets(topics.requests);
    assert.ok(
      ends.some((o) => o.high > 0),
      "it sees where the request topic ends",
    );
    await autoscaler.committed(
      workerGroup,
      topics.requests,
      ends.map((o) => o.partition),
    );
    const reader = await startOffsetReader({ kafka: autoscalerConfig(), topic: topics.requests, size: 1, groupId: workerGroup, logger });
    try {
      const partition = ends.find((o) => o.high > 0)!.partition;
      await assert.rejects(
        reader.withFetcher((f) => f.fetch(partition, 0)),
        (err: Error & { cause?: Error }) => /authoriz/i.test(`${err.message} ${err.cause?.message ?? ""}`),
        "the autoscaler cannot read a request",
      );
    } finally {
      await reader.stop();
    }
    assert.match(await joinAs(login("autoscaler"), "acl-autoscaler", workerGroup, topics.requests), /Group authorization failed/, "nor the autoscaler");

    // The topics Job creates and checks topics, and reads and writes no record.
    await refused("topics writing a request", (await producer("topics")).send({ topic: topics.requests, messages: [record] }), REFUSED);
    assert.ok((await admin("topics").listTopics()).includes(topics.memory), "it sees the topics it made");

    // Without a login, nothing.
    const anonymous = new KafkaAdmin({ ...login("admin"), sasl: null, clientId: "acl-anonymous" }, { timeoutMs: 3000 });
    try {
      await assert.rejects(anonymous.listTopics());
    } finally {
      anonymous.close();
    }
  });

  function autoscalerConfig() {
    return login("autoscaler");
  }

  function login(role: BrokerRole): KafkaLlmConfig {
    return loginConfig(kafka.brokers, kafka.credentials!, role);
  }

  describe("a process that tries to pass for a worker", () => {
    let gateway: Service;
    let worker: Service;
    let rogue: http.Server;
    const received: string[] = [];
    const roguePrefix = uniquePrefix("rogue");

    before(async () => {
      const common = { ...stackEnv(kafka, roguePrefix, 2), KAFKA_LLM_INTERNAL_TOKEN: TOKEN };
      gateway = await startGateway(common, { GATEWAY_API_KEYS: `t:${KEY}` });
      worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "8" });
      rogue = http.createServer((req, res) => {
        received.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ state: { forged: true } }));
      });
      await new Promise<void>((r) => rogue.listen(0, "127.0.0.1", r));
    });

    after(async () => {
      await new Promise<void>((r) => rogue.close(() => r()));
      await gateway?.stop();
      await worker?.stop();
    });

    for (const role of ["gateway", "autoscaler", "topics"] as const) {
      it(`with the ${role}'s credentials is refused the workers' group, and nothing it says is used`, async () => {
        const api = apiClient(gateway.baseUrl, KEY);
        const turn = await api("POST", `/v1/conversations/rogue-${role}/messages`, { content: "Hello.", max_tokens: 4 });
        assert.equal(turn.status, 202, turn.text);
        assert.equal(chatEvents(await readEvents(gateway.baseUrl + turn.body.events_url, KEY)).at(-1)!.type, "final");

        // The rogue joins the workers' group the way a worker does (librdkafka, KIP-848),
        // advertising its own address in its client id.
        const address = `http://127.0.0.1:${(rogue.address() as AddressInfo).port}`;
        const said = await joinAs(
          loginConfig(kafka.brokers, kafka.credentials!, role),
          `kafka-llm@${address}`,
          `${roguePrefix}workers`,
          topicNames(roguePrefix).requests,
        );
        assert.match(said, /Group authorization failed/, "the broker refused the join");

        // The group is the real worker alone, and the gateway's reads go to it.
        const describer = new GroupDescriber(loginConfig(kafka.brokers, kafka.credentials!, "admin"), { logger: createLogger("acl-test", "silent") });
        try {
          const group = await describer.describe(`${roguePrefix}workers`, topicNames(roguePrefix).requests);
          assert.deepEqual(
            group?.members.map((m) => m.clientId.includes(address)),
            [false],
            "one member, the worker",
          );
        } finally {
          describer.close();
        }
        for (let i = 0; i < 5; i++) {
          const read = await api("GET", `/v1/conversations/rogue-${role}`);
          assert.ok(read.status === 200 || read.status === 404, read.text);
        }
        const state = await api("GET", `/v1/conversations/rogue-${role}/memory`);
        assert.equal(state.status, 200, state.text);
        assert.equal(state.body.messages[0].content, "Hello.", "the real conversation, not a forged one");
        assert.deepEqual(received, [], "the rogue address received nothing: no read, no credential");
      });
    }
  });
});
