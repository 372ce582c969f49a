import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../../../contracts/config/env.js";
import { loadGatewayConfig } from "../../../contracts/config/gateway.js";
import { loadWorkerConfig } from "../../../contracts/config/worker.js";

/** A worker's config with its ops port on loopback (no internal token needed), as most of these cases want. */
const workerConfig = (env: Record<string, string>) => loadWorkerConfig({ WORKER_HTTP_HOST: "127.0.0.1", ...env });

function problemsOf(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail("expected a ConfigError");
}

describe("worker config", () => {
  it("refuses KAFKA_GROUP_ID, the workers' group's old name, and says what to set", () => {
    assert.throws(() => workerConfig({ MODEL: "/models/m.gguf", KAFKA_GROUP_ID: "team-a-workers" }), /KAFKA_GROUP_ID: renamed WORKER_GROUP_ID/);
    assert.equal(workerConfig({ MODEL: "/models/m.gguf", WORKER_GROUP_ID: "team-a-workers" }).workerGroupId, "team-a-workers");
  });

  it("applies the documented defaults", () => {
    const c = workerConfig({ MODEL: "/models/m.gguf" });
    assert.deepEqual(c.kafka.brokers, ["127.0.0.1:9092"]);
    assert.equal(c.kafka.requestPartitions, 6);
    assert.equal(c.kafka.eventPartitions, 6, "events follow the request partition count");
    assert.equal(c.workerGroupId, "kafka-llm-workers");
    assert.equal(c.http.port, 9090);
    assert.equal(c.model.threads, 0, "0 = from the CPU quota");
    assert.equal(c.model.gpu, "auto");
    assert.equal(c.stream.flushMs, 50);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.model), "config is frozen");
  });

  it("keeps the state store under WORKER_STATE_DIR, by default a directory of the OS temp dir named for the worker", () => {
    assert.equal(workerConfig({ MODEL: "m", WORKER_ID: "w/1" }).memory.stateDir, path.join(os.tmpdir(), "kafka-llm-state-w_1"));
    assert.equal(workerConfig({ MODEL: "m", WORKER_STATE_DIR: "/var/lib/kafka-llm" }).memory.stateDir, "/var/lib/kafka-llm");
  });

  it("gives chat.history its own settings, defaulting to the memory's TTL and the requests' partitions and replication", () => {
    const defaults = workerConfig({ MODEL: "m", CONVERSATION_TTL_MS: "3600000", KAFKA_REQUEST_PARTITIONS: "4", KAFKA_REPLICATION_FACTOR: "3" });
    assert.deepEqual(defaults.kafka.history, { retentionMs: 3_600_000, partitions: 4, replicationFactor: 3 });
    const own = loadGatewayConfig({ GATEWAY_AUTH: "none", HISTORY_RETENTION_MS: "2592000000", HISTORY_PARTITIONS: "24", HISTORY_REPLICATION_FACTOR: "-1" });
    assert.deepEqual(own.kafka.history, { retentionMs: 2_592_000_000, partitions: 24, replicationFactor: -1 });
    const problems = problemsOf(() => workerConfig({ MODEL: "m", HISTORY_RETENTION_MS: "1000", HISTORY_PARTITIONS: "-2" })).join("\n");
    assert.match(problems, /^HISTORY_RETENTION_MS: must be 0 \(CONVERSATION_TTL_MS\) or >= 60000/m);
    assert.match(problems, /^HISTORY_PARTITIONS: must be >= 0/m);
  });

  it("parses values and treats empty strings as unset", () => {
    const c = workerConfig({
      MODEL: "hf:org/repo/file.gguf",
      KAFKA_BROKERS: " a:1, b:2 ",
      KAFKA_REQUEST_PARTITIONS: "12",
      LLAMA_GPU: "false",
      LLAMA_THREADS: "",
    });
    assert.deepEqual(c.kafka.brokers, ["a:1", "b:2"]);
    assert.equal(c.kafka.requestPartitions, 12);
    assert.equal(c.model.gpu, false);
    assert.equal(c.model.threads, 0);
  });

  it("names each bad variable, all at once", () => {
    const problems = problemsOf(() =>
      workerConfig({
        KAFKA_BROKERS: "localhost",
        KAFKA_REQUEST_PARTITIONS: "zero",
        WORKER_HTTP_PORT: "70000",
        LLAMA_GPU: "tpu",
      }),
    );
    const text = problems.join("\n");
    assert.match(text, /^MODEL: required/m);
    assert.match(text, /^KAFKA_BROKERS: must be a comma-separated list of host:port \(got "localhost"\)/m);
    assert.match(text, /^KAFKA_REQUEST_PARTITIONS: must be an integer/m);
    assert.match(text, /^WORKER_HTTP_PORT: must be <= 65535/m);
    assert.match(text, /^LLAMA_GPU: /m);
    assert.equal(problems.length, 5);
  });

  it("reads STOP_TRIGGERS as a JSON list and DEFAULT_REPEAT_PENALTY as a number, both optional", () => {
    const none = workerConfig({ MODEL: "m.gguf" });
    assert.deepEqual(none.generation.stopTriggers, []);
    assert.equal(none.generation.defaultRepeatPenalty, undefined);
    const set = workerConfig({ MODEL: "m.gguf", STOP_TRIGGERS: '["\\nUser:", "user\\n"]', DEFAULT_REPEAT_PENALTY: "1.3" });
    assert.deepEqual(set.generation.stopTriggers, ["\nUser:", "user\n"]);
    assert.equal(set.generation.defaultRepeatPenalty, 1.3);
    const problems = problemsOf(() => workerConfig({ MODEL: "m.gguf", STOP_TRIGGERS: "user,model", DEFAULT_REPEAT_PENALTY: "3" }));
    assert.ok(
      problems.some((p) => /^STOP_TRIGGERS: must be a JSON array of non-empty strings/.test(p)),
      problems.join(),
    );
    assert.ok(
      problems.some((p) => /^DEFAULT_REPEAT_PENALTY: must be <= 2/.test(p)),
      problems.join(),
    );
    assert.ok(problemsOf(() => workerConfig({ MODEL: "m.gguf", STOP_TRIGGERS: '[""]' })).some((p) => p.startsWith("STOP_TRIGGERS:")));
  });

  it("reads the pool, its model name and its adapters, and says what a pool other than the default needs", () => {
    const plain = workerConfig({ MODEL: "m" }).pool;
    assert.deepEqual(plain, { name: "default", group: "kafka-llm-workers", modelName: undefined, adapters: [], adapterSlots: 1 });
    const fast = workerConfig({
      MODEL: "m",
      WORKER_POOL: "fast",
      MODEL_NAME: "small",
      MODEL_ADAPTERS: "support=/m/support.gguf, legal=hf:org/legal-lora/a.gguf",
      ADAPTER_SLOTS: "2",
    }).pool;
    assert.equal(fast.group, "kafka-llm-workers.pool.fast");
    assert.deepEqual(fast.adapters, [
      { name: "support", source: "/m/support.gguf" },
      { name: "legal", source: "hf:org/legal-lora/a.gguf" },
    ]);
    const problems = problemsOf(() => workerConfig({ MODEL: "m", WORKER_POOL: "Fast_Pool", MODEL_ADAPTERS: "x=/a,x=/b" })).join("\n");
    assert.match(problems, /^WORKER_POOL: must be 1-40 lowercase letters/m);
    assert.match(problems, /^MODEL_ADAPTERS: names adapter x twice/m);
    assert.match(problemsOf(() => workerConfig({ MODEL: "m", WORKER_POOL: "fast" })).join("\n"), /^MODEL_NAME: required for WORKER_POOL=fast/m);
    assert.match(problemsOf(() => workerConfig({ MODEL: "m", MODEL_ADAPTERS: "support=/a" })).join("\n"), /^MODEL_NAME: required with MODEL_ADAPTERS/m);
    assert.match(problemsOf(() => workerConfig({ MODEL: "m", MODEL_ADAPTERS: "/just/a/path.gguf" })).join("\n"), /each adapter is NAME=GGUF/);
  });

  it("rejects a heartbeat too slow for the session timeout", () => {
    const problems = problemsOf(() => workerConfig({ MODEL: "m", HEARTBEAT_INTERVAL_MS: "20000", SESSION_TIMEOUT_MS: "30000" }));
    assert.match(problems[0]!, /^HEARTBEAT_INTERVAL_MS: must be at most a third of SESSION_TIMEOUT_MS/);
  });
});

describe("gateway config", () => {
  it("defaults to port 8080 and rejects bad values by name", () => {
    assert.equal(loadGatewayConfig({ GATEWAY_AUTH: "none" }).http.port, 8080);
    const problems = problemsOf(() => loadGatewayConfig({ GATEWAY_PORT: "-1", KAFKA_REPLICATION_FACTOR: "0", LOG_LEVEL: "loud" }));
    assert.match(problems.join("\n"), /GATEWAY_PORT: must be >= 0/);
    assert.match(problems.join("\n"), /KAFKA_REPLICATION_FACTOR: must be -1 \(broker default\) or >= 1/);
    assert.match(problems.join("\n"), /LOG_LEVEL: /);
  });
});

describe("Kafka security config", () => {
  it("reads SASL and TLS settings, secrets from files", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const dir = mkdtempSync(`${(await import("node:os")).tmpdir()}/cfg-`);
    writeFileSync(`${dir}/pw`, "s3cret\n");
    writeFileSync(`${dir}/ca.pem`, "-----BEGIN CERTIFICATE-----\n");
    const c = loadGatewayConfig({
      GATEWAY_AUTH: "none",
      KAFKA_SASL_MECHANISM: "scram-sha-512",
      KAFKA_SASL_USERNAME: "app",
      KAFKA_SASL_PASSWORD_FILE: `${dir}/pw`,
      KAFKA_TLS: "true",
      KAFKA_TLS_CA_FILE: `${dir}/ca.pem`,
    });
    assert.deepEqual(c.kafka.sasl, { mechanism: "scram-sha-512", username: "app", password: "s3cret" });
    assert.equal(c.kafka.tls?.ca, "-----BEGIN CERTIFICATE-----\n");
    assert.equal(c.kafka.tls?.rejectUnauthorized, true);
    assert.equal(loadGatewayConfig({ GATEWAY_AUTH: "none" }).kafka.sasl, null, "plaintext by default");
  });

  it("names what is missing, and never echoes a secret", () => {
    const problems = problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", KAFKA_SASL_MECHANISM: "plain", KAFKA_TLS_CA_FILE: "/x" }));
    assert.match(problems.join("\n"), /KAFKA_SASL_USERNAME: required when KAFKA_SASL_MECHANISM is plain/);
    assert.match(problems.join("\n"), /KAFKA_SASL_PASSWORD: set it or KAFKA_SASL_PASSWORD_FILE/);
    assert.match(problems.join("\n"), /KAFKA_TLS: TLS files are set but KAFKA_TLS is false/);
    const secret = `hunter2${"x".repeat(5000)}`;
    const bad = problemsOf(() =>
      loadGatewayConfig({ GATEWAY_AUTH: "none", KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: secret }),
    );
    assert.match(bad.join("\n"), /^KAFKA_SASL_PASSWORD: must be at most 4096 characters$/m);
    assert.ok(!bad.join("\n").includes("hunter2"), "the value of a secret is never echoed");
  });
});

describe("conversation reads config", () => {
  it("takes the internal token from the variable or a mounted file of tokens, never both, and never echoes it", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "token-"));
    const file = path.join(dir, "token");
    const token = "t".repeat(32);
    writeFileSync(file, `# rotating\n${"n".repeat(40)}\n${token}\n`);
    assert.deepEqual(workerConfig({ MODEL: "m" }).query.token, { token: "", file: null });
    assert.deepEqual(workerConfig({ MODEL: "m", KAFKA_LLM_INTERNAL_TOKEN: token }).query.token, { token, file: null });
    assert.deepEqual(workerConfig({ MODEL: "m", KAFKA_LLM_INTERNAL_TOKEN_FILE: file }).query.token, { token: "", file });
    assert.deepEqual(loadGatewayConfig({ GATEWAY_AUTH: "none", KAFKA_LLM_INTERNAL_TOKEN_FILE: file }).conversations.internalToken, { token: "", file });
    const both = problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", KAFKA_LLM_INTERNAL_TOKEN: token, KAFKA_LLM_INTERNAL_TOKEN_FILE: file }));
    assert.match(both.join("\n"), /KAFKA_LLM_INTERNAL_TOKEN_FILE: set it or KAFKA_LLM_INTERNAL_TOKEN, not both/);
    assert.ok(!both.join("\n").includes(token));
    const missing = problemsOf(() => workerConfig({ MODEL: "m", KAFKA_LLM_INTERNAL_TOKEN_FILE: path.join(dir, "nope") }));
    assert.match(missing.join("\n"), /KAFKA_LLM_INTERNAL_TOKEN_FILE: cannot read/);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses tokens that could be guessed from a signature, without quoting them", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "token-"));
    const file = path.join(dir, "token");
    writeFileSync(file, `${"n".repeat(40)}\nshort-one\n`);
    const short = problemsOf(() => workerConfig({ MODEL: "m", KAFKA_LLM_INTERNAL_TOKEN: "s3cret" })).join("\n");
    assert.match(short, /^KAFKA_LLM_INTERNAL_TOKEN: is shorter than 32 characters$/m);
    assert.ok(!short.includes("s3cret"));
    const inFile = problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", KAFKA_LLM_INTERNAL_TOKEN_FILE: file })).join("\n");
    assert.match(inFile, /KAFKA_LLM_INTERNAL_TOKEN_FILE: .* token 2 is shorter than 32 characters/);
    assert.ok(!inFile.includes("short-one"));
    writeFileSync(file, "# nothing yet\n");
    assert.match(problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", KAFKA_LLM_INTERNAL_TOKEN_FILE: file })).join("\n"), /holds no token/);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses to start a worker whose conversation reads listen beyond loopback without a token, and says what to set", () => {
    const problems = problemsOf(() => loadWorkerConfig({ MODEL: "m" })).join("\n");
    assert.match(
      problems,
      /^KAFKA_LLM_INTERNAL_TOKEN: required when the worker's ops port, which answers conversation reads, listens beyond loopback \(WORKER_HTTP_HOST=0\.0\.0\.0\)/m,
    );
    assert.match(problems, /set KAFKA_LLM_INTERNAL_TOKEN or KAFKA_LLM_INTERNAL_TOKEN_FILE/);
    assert.match(problemsOf(() => loadWorkerConfig({ MODEL: "m", WORKER_HTTP_HOST: "10.1.2.3" })).join("\n"), /WORKER_HTTP_HOST=10\.1\.2\.3/);
    for (const host of ["127.0.0.1", "localhost", "::1", "127.0.0.53"]) assert.equal(loadWorkerConfig({ MODEL: "m", WORKER_HTTP_HOST: host }).http.host, host);
    assert.equal(loadWorkerConfig({ MODEL: "m", KAFKA_LLM_INTERNAL_TOKEN: "t".repeat(32) }).http.host, "0.0.0.0");
  });

  it("checks WORKER_QUERY_ADDRESS is a base URL", () => {
    assert.equal(workerConfig({ MODEL: "m" }).query.address, null);
    assert.equal(workerConfig({ MODEL: "m", WORKER_QUERY_ADDRESS: "http://10.0.0.1:9090" }).query.address, "http://10.0.0.1:9090");
    assert.match(
      problemsOf(() => workerConfig({ MODEL: "m", WORKER_QUERY_ADDRESS: "10.0.0.1:9090/x" })).join("\n"),
      /^WORKER_QUERY_ADDRESS: must be http:\/\/HOST:PORT/m,
    );
  });
});
