/**
 * scripts/deploy/ensure-secret.ts, the pure parts: what it generates and how it reads its
 * configuration. What it does against a real API server, with the chart's RBAC and
 * admission policy, is k8s-generated-secret.test.ts's.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MIN_TOKEN_CHARS, parseTokens, tokensProblem } from "../../contracts/internal-token.js";
import { EnsureSecretConfigError, generateValue, loadEnsureSecretConfig, randomToken, TOKEN_LENGTH } from "../../scripts/deploy/ensure-secret.js";

describe("generated values", () => {
  it("a token is 48 letters and digits (at least the 32 the services require), different every time", () => {
    const tokens = Array.from({ length: 200 }, () => randomToken());
    for (const t of tokens) assert.match(t, /^[A-Za-z0-9]{48}$/);
    assert.equal(new Set(tokens).size, tokens.length);
    assert.ok(TOKEN_LENGTH >= MIN_TOKEN_CHARS);
    // The file the pods mount is one the services' own token rules accept.
    assert.equal(tokensProblem(parseTokens(generateValue("token"))), null);
  });

  it("uses the whole alphabet, evenly enough (no modulo bias toward the first characters)", () => {
    const counts = new Map<string, number>();
    for (const ch of Array.from({ length: 2000 }, () => randomToken()).join("")) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    assert.equal(counts.size, 62);
    // 96,000 characters over 62: 1,548 each (σ ≈ 39). Taking bytes mod 62 without rejecting
    // the top 8 values would make the first 8 characters 5/4 as likely: about 1,875 each.
    for (const [ch, n] of counts) assert.ok(n > 1350 && n < 1750, `${ch}: ${n}`);
  });

  it("a file's content: the token on a line of its own; an API key for tenant default", () => {
    assert.match(generateValue("token"), /^[A-Za-z0-9]{48}\n$/);
    assert.match(generateValue("api-key"), /^default:[A-Za-z0-9]{48}\n$/);
  });
});

describe("loadEnsureSecretConfig", () => {
  it("reads the name, namespace, keys and labels the chart's Job sets", () => {
    const c = loadEnsureSecretConfig({
      ENSURE_SECRET_NAME: "llm-kafka-llm-generated",
      ENSURE_SECRET_NAMESPACE: "llm",
      ENSURE_SECRET_KEYS: "internal-token=token,api-keys=api-key",
      ENSURE_SECRET_LABELS: '{"app.kubernetes.io/instance":"llm"}',
    });
    assert.deepEqual(c, {
      name: "llm-kafka-llm-generated",
      namespace: "llm",
      keys: { "internal-token": "token", "api-keys": "api-key" },
      labels: { "app.kubernetes.io/instance": "llm" },
    });
    assert.ok(Object.isFrozen(c));
  });

  it("lists every problem at once", () => {
    assert.throws(
      () => loadEnsureSecretConfig({ ENSURE_SECRET_NAME: "Not_A_Name", ENSURE_SECRET_KEYS: "a=token,b=password", ENSURE_SECRET_LABELS: "[1]" }),
      (err: unknown) => {
        assert.ok(err instanceof EnsureSecretConfigError);
        assert.equal(err.problems.length, 4, err.message);
        assert.match(err.message, /ENSURE_SECRET_NAME: not a Secret name/);
        assert.match(err.message, /ENSURE_SECRET_NAMESPACE: not a namespace/);
        assert.match(err.message, /"b=password" is not key=token or key=api-key/);
        assert.match(err.message, /ENSURE_SECRET_LABELS: not an object of strings/);
        return true;
      },
    );
    assert.throws(() => loadEnsureSecretConfig({ ENSURE_SECRET_NAME: "s", ENSURE_SECRET_NAMESPACE: "n" }), /no key to ensure/);
  });
});
