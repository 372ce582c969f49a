/**
 * The topics as a contract: a service that knows kafka-llm only from contracts/schema/
 * and docs/asyncapi.yaml (test/helpers/plain_bus_client.py: Python, kafka-python, no
 * code of this project), logged in as the gateway's principal (it does what a gateway
 * does on the bus), produces a turn to chat.requests and is answered on chat.events by a
 * real worker on the real broker, with events that match the published schema.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { keyPartition } from "../../platform/kafka/partitioner.js";
import { stackEnv, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import { pythonTool } from "../helpers/python-tools.js";
import { REPO_ROOT, type Service } from "../helpers/services.js";

const run = promisify(execFile);
const PARTITIONS = 3;

describe("the bus contract, from a plain Kafka client", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let prefix: string;

  before(async () => {
    kafka = await useKafka();
    prefix = uniquePrefix("bus");
    worker = await startWorker(stackEnv(kafka, prefix, PARTITIONS));
  });

  after(async () => {
    await worker?.stop();
    await kafka?.stop();
  });

  it("a turn produced from the JSON Schemas alone is answered by a worker", async () => {
    const python = pythonTool("python");
    const { stdout } = await run(
      python,
      [
        path.join(REPO_ROOT, "test/helpers/plain_bus_client.py"),
        "--brokers",
        kafka.brokers,
        "--prefix",
        prefix,
        "--schemas",
        path.join(REPO_ROOT, "contracts/schema"),
        "--content",
        "Once upon a time",
        "--max-tokens",
        "12",
        ...(kafka.credentials ? ["--sasl-username", kafka.credentials.users.gateway.username] : []),
      ],
      { timeout: 150_000, env: { ...process.env, KAFKA_SASL_PASSWORD: kafka.credentials?.users.gateway.password ?? "" } },
    ).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`plain client failed: ${err.stdout ?? ""}\n${err.stderr ?? ""}\nworker:\n${worker.output().slice(-4000)}`);
    });
    const seen = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assert.equal(seen.final?.type, "final", stdout);
    assert.equal(seen.final.request_id, seen.request_id);
    assert.ok(seen.final.reply.length > 0, "the worker generated a reply");
    assert.ok(seen.final.usage.completion_tokens > 0 && seen.final.usage.completion_tokens <= 12, "params.max_tokens was applied");
    assert.equal(seen.events[0].type, "start");
    assert.deepEqual(
      seen.events.map((e: { seq: number }) => e.seq),
      seen.events.map((_: unknown, i: number) => i),
      "seq counts up from 0 without gaps",
    );

    // The partition the plain client chose is the one the contract names (murmur2 of the conversation key),
    // the one the gateway would have chosen: the worker's memory is co-partitioned with it.
    const expected = keyPartition(seen.key, PARTITIONS);
    assert.equal(seen.key, `plain-client/${seen.conversation_id}`);
    assert.equal(seen.request_partition, expected);
  });
});
