import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../../contracts/config/env.js";
import { loadGatewayConfig } from "../../../contracts/config/gateway.js";

function problemsOf(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail("expected a ConfigError");
}

describe("gateway config", () => {
  it("applies the documented defaults", () => {
    const c = loadGatewayConfig({ GATEWAY_API_KEYS: "acme:k1" });
    assert.equal(c.auth.mode, "keys");
    assert.equal(c.auth.keysText, "acme:k1", "parsed by gateway/auth.ts at start");
    assert.equal(c.auth.keysFile, null);
    assert.equal(c.maxContentChars, 32_000);
    assert.equal(c.kafkaSendTimeoutMs, 3000);
    assert.equal(c.applyWaitMs, 10_000);
    assert.equal(c.requests.unknownWaitMs, 2000);
    assert.deepEqual(c.lag, { refreshMs: 5000 });
    assert.equal(c.workerGroupId, "kafka-llm-workers");
    assert.equal(c.turnStatsWindowMs, 300_000);
    assert.deepEqual(c.conversations, { lookupTimeoutMs: 5000, internalToken: { token: "", file: null } });
    assert.equal(c.modelName, "kafka-llm");
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.auth), "config is frozen");
  });

  it("reads every gateway variable", () => {
    const c = loadGatewayConfig({
      GATEWAY_AUTH: "keys",
      GATEWAY_API_KEYS_FILE: "/etc/kafka-llm/keys",
      GATEWAY_MAX_CONTENT_CHARS: "500",
      KAFKA_SEND_TIMEOUT_MS: "1500",
      GATEWAY_APPLY_WAIT_MS: "0",
      UNKNOWN_REQUEST_WAIT_MS: "0",
      LAG_REFRESH_MS: "1000",
      WORKER_GROUP_ID: "team-a-workers",
      TURN_STATS_WINDOW_MS: "60000",
      CONVERSATION_LOOKUP_TIMEOUT_MS: "2500",
      KAFKA_LLM_INTERNAL_TOKEN: "s3cret-s3cret-s3cret-s3cret-s3cret",
      MODEL_NAME: "gemma-3-1b-it",
    });
    assert.equal(c.auth.keysFile, "/etc/kafka-llm/keys");
    assert.equal(c.auth.keysText, "", "the file is read by the gateway at start, not here");
    assert.equal(c.maxContentChars, 500);
    assert.equal(c.kafkaSendTimeoutMs, 1500);
    assert.equal(c.applyWaitMs, 0);
    assert.equal(c.workerGroupId, "team-a-workers");
    assert.deepEqual(c.conversations, { lookupTimeoutMs: 2500, internalToken: { token: "s3cret-s3cret-s3cret-s3cret-s3cret", file: null } });
    assert.equal(c.modelName, "gemma-3-1b-it");
  });

  it("runs without auth only when GATEWAY_AUTH=none says so", () => {
    assert.equal(loadGatewayConfig({ GATEWAY_AUTH: "none" }).auth.mode, "none");
    const missing = problemsOf(() => loadGatewayConfig({}));
    assert.match(missing[0]!, /^GATEWAY_AUTH: API keys are required but none are set/);
    const both = problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", GATEWAY_API_KEYS: "a:b" }));
    assert.match(both[0]!, /^GATEWAY_AUTH: is none, yet API keys are set/);
    assert.match(problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "off" }))[0]!, /^GATEWAY_AUTH: must be "keys"/);
  });

  it("names the gateways' chat.events group after the topic prefix unless told otherwise", () => {
    assert.deepEqual(loadGatewayConfig({ GATEWAY_AUTH: "none" }).events, { groupId: "kafka-llm-gateways", groupProtocol: "consumer" });
    assert.equal(loadGatewayConfig({ GATEWAY_AUTH: "none", KAFKA_TOPIC_PREFIX: "staging." }).events.groupId, "staging.kafka-llm-gateways");
    const set = loadGatewayConfig({
      GATEWAY_AUTH: "none",
      KAFKA_TOPIC_PREFIX: "staging.",
      GATEWAY_EVENTS_GROUP_ID: "gw",
      GATEWAY_EVENTS_GROUP_PROTOCOL: "classic",
    });
    assert.deepEqual(set.events, { groupId: "gw", groupProtocol: "classic" });
    assert.match(
      problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", GATEWAY_EVENTS_GROUP_PROTOCOL: "eager" }))[0]!,
      /^GATEWAY_EVENTS_GROUP_PROTOCOL: must be "consumer"/,
    );
  });

  it("bounds slow clients by default: headers, whole request, idle keep-alive, connections", () => {
    const c = loadGatewayConfig({ GATEWAY_AUTH: "none" });
    assert.deepEqual(
      { ...c.http },
      {
        host: "0.0.0.0",
        port: 8080,
        bodyLimitBytes: 262_144,
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 30_000,
        keepAliveTimeoutMs: 65_000,
        maxConnections: 10_000,
      },
    );
    const set = loadGatewayConfig({
      GATEWAY_AUTH: "none",
      GATEWAY_HEADERS_TIMEOUT_MS: "2000",
      GATEWAY_REQUEST_TIMEOUT_MS: "5000",
      GATEWAY_KEEP_ALIVE_TIMEOUT_MS: "1000",
      GATEWAY_MAX_CONNECTIONS: "50",
    });
    assert.deepEqual([set.http.headersTimeoutMs, set.http.requestTimeoutMs, set.http.keepAliveTimeoutMs, set.http.maxConnections], [2000, 5000, 1000, 50]);
    // Node would refuse a headers timeout above the request's: said at start, by name.
    const problems = problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", GATEWAY_HEADERS_TIMEOUT_MS: "6000", GATEWAY_REQUEST_TIMEOUT_MS: "5000" }));
    assert.match(problems.join("\n"), /^GATEWAY_HEADERS_TIMEOUT_MS: must not be above GATEWAY_REQUEST_TIMEOUT_MS/m);
    assert.match(
      problemsOf(() => loadGatewayConfig({ GATEWAY_AUTH: "none", GATEWAY_MAX_CONNECTIONS: "0" })).join("\n"),
      /^GATEWAY_MAX_CONNECTIONS: must be >= 1/m,
    );
  });

  it("rejects out-of-range values by name", () => {
    const problems = problemsOf(() =>
      loadGatewayConfig({
        GATEWAY_AUTH: "none",
        GATEWAY_MAX_CONTENT_CHARS: "40000",
        LAG_REFRESH_MS: "10",
        KAFKA_SEND_TIMEOUT_MS: "abc",
        MODEL_NAME: "has space",
      }),
    );
    const text = problems.join("\n");
    assert.match(text, /^GATEWAY_MAX_CONTENT_CHARS: must be <= 32000/m);
    assert.match(text, /^LAG_REFRESH_MS: must be >= 500/m);
    assert.match(text, /^KAFKA_SEND_TIMEOUT_MS: must be an integer/m);
    assert.match(text, /^MODEL_NAME: must be 1-256 printable characters/m);
  });
});
