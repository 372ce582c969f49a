import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { pino } from "pino";
import { ConfigError } from "../../../contracts/config/env.js";
import { ApiKeyStore, LOCAL_TENANT, createAuthenticator, parseApiKeyList, parseKeysFile } from "../../../gateway/auth.js";
import { ApiError } from "../../../gateway/errors.js";

const silent = pino({ level: "silent" });

describe("API keys", () => {
  it("reads a keys file as lines or as JSON", () => {
    assert.deepEqual(parseKeysFile("a:k1\n# c\nb:k2\n", "f").keys, [
      { tenant: "a", key: "k1" },
      { tenant: "b", key: "k2" },
    ]);
    assert.deepEqual(parseKeysFile('{"a": "k1", "b": ["k2", "k3"]}', "f").keys, [
      { tenant: "a", key: "k1" },
      { tenant: "b", key: "k2" },
      { tenant: "b", key: "k3" },
    ]);
    assert.deepEqual(parseKeysFile('[{"tenant": "a", "key": "k1"}]', "f").keys, [{ tenant: "a", key: "k1" }]);
    assert.deepEqual(parseKeysFile('[{"tenant": "a"}, {"tenant": "b c", "key": "k"}]', "f").problems, [
      'f: entry 1: not in the form {"tenant": string, "key": string}',
      "f: entry 2: the tenant may contain only letters, digits, '.', '_' and '-' (1-64)",
    ]);
    assert.deepEqual(parseKeysFile("{oops", "f").problems, ["f: looks like JSON but does not parse"]);
  });

  it("reads a tenant's quotas from its JSON entries, and names a bad one without quoting a key", () => {
    const file = JSON.stringify([
      { tenant: "a", key: "k1", limits: { requests_per_minute: 60, open_streams: 4, named_readers: 10 } },
      { tenant: "a", key: "k2", limits: { requests_per_minute: 60, open_streams: 4, named_readers: 10 } },
      { tenant: "b", key: "k3" },
    ]);
    const parsed = parseKeysFile(file, "f");
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual(parsed.keys[0], { tenant: "a", key: "k1", limits: { requestsPerMinute: 60, openStreams: 4, namedReaders: 10 } });
    const store = new ApiKeyStore(parsed.keys, null);
    store.load();
    assert.deepEqual(store.limitsOf("a"), { requestsPerMinute: 60, openStreams: 4, namedReaders: 10 });
    assert.equal(store.limitsOf("b"), undefined, "no limits of its own: the defaults");

    const bad = parseKeysFile(
      JSON.stringify([
        { tenant: "a", key: "secret-1", limits: { requests_per_minute: -1 } },
        { tenant: "b", key: "secret-2", limits: { rpm: 5 } },
      ]),
      "f",
    ).problems;
    assert.deepEqual(bad, [
      "f: entry 1: limits.requests_per_minute: must be a whole number >= 0 (0: no limit)",
      "f: entry 2: limits: unknown limit (use requests_per_minute, tokens_per_minute, concurrent_requests, open_streams, named_readers)",
    ]);
    assert.ok(!bad.join().includes("secret"), "no key in a problem");

    const differ = new ApiKeyStore(
      [
        { tenant: "a", key: "k1", limits: { requestsPerMinute: 1 } },
        { tenant: "a", key: "k2", limits: { requestsPerMinute: 2 } },
      ],
      null,
    );
    assert.throws(
      () => differ.load(),
      (err: unknown) => err instanceof ConfigError && err.problems.includes("tenant a: its entries give different limits (limits are per tenant)"),
    );
  });

  it("maps a key to its tenant and nothing else to anything", () => {
    const store = new ApiKeyStore(
      [
        { tenant: "a", key: "k1" },
        { tenant: "b", key: "k2" },
      ],
      null,
    );
    assert.equal(store.load(), 2);
    assert.equal(store.tenantOf("k1"), "a");
    assert.equal(store.tenantOf("k2"), "b");
    assert.equal(store.tenantOf("k"), null);
    assert.equal(store.tenantOf("k1 "), null);
    assert.equal(store.tenantOf(""), null);
  });

  it("refuses one key for two tenants, and an empty key set", () => {
    assert.throws(
      () =>
        new ApiKeyStore(
          [
            { tenant: "a", key: "dup-secret" },
            { tenant: "b", key: "dup-secret" },
          ],
          null,
        ).load(),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.problems[0]!, /the same API key is given to tenants a and b/);
        assert.ok(!err.message.includes("dup-secret"), "the key itself is not in the message");
        return true;
      },
    );
    assert.throws(() => new ApiKeyStore([], null).load(), /no API key was found/);
  });

  it("re-reads a changed file and keeps the old keys when the new file is unusable", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "keys-"));
    try {
      const file = path.join(dir, "keys");
      await writeFile(file, "a:old\n");
      const store = new ApiKeyStore([], file);
      store.load();
      assert.equal(store.tenantOf("old"), "a");
      await writeFile(file, "a:new\n");
      store.reloadIfChanged(silent);
      assert.equal(store.tenantOf("new"), "a");
      assert.equal(store.tenantOf("old"), null);
      await writeFile(file, "not a key line\n");
      store.reloadIfChanged(silent);
      assert.equal(store.tenantOf("new"), "a", "a broken file does not lock everyone out");
      await assert.rejects(async () => new ApiKeyStore([], path.join(dir, "missing")).load(), /cannot read .*ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("authenticates Bearer keys and answers 401 otherwise", () => {
    const auth = createAuthenticator({ mode: "keys", keysText: "acme:k1", keysFile: null }, silent);
    assert.equal(auth.authenticate("Bearer k1"), "acme");
    assert.equal(auth.authenticate("bearer   k1 "), "acme");
    for (const header of [undefined, "", "Bearer", "Bearer k2", "Basic k1", "k1", "Bearer k1 k1"]) {
      assert.throws(
        () => auth.authenticate(header),
        (err: unknown) => err instanceof ApiError && err.code === "unauthorized",
        String(header),
      );
    }
    auth.stop();
    const open = createAuthenticator({ mode: "none", keysText: "", keysFile: null }, silent);
    assert.equal(open.authenticate(undefined), "local");
    assert.equal(open.authenticate("Bearer anything"), "local");
  });

  it("parses key lists with newlines, comments and keys that contain colons", () => {
    const { keys, problems } = parseApiKeyList("# team keys\na:k1\n\nb:k:2,c:k3", "file");
    assert.deepEqual(problems, []);
    assert.deepEqual(keys, [
      { tenant: "a", key: "k1" },
      { tenant: "b", key: "k:2" },
      { tenant: "c", key: "k3" },
    ]);
    assert.equal(LOCAL_TENANT, "local");
  });

  it("names bad GATEWAY_API_KEYS entries by position at start and never quotes a key", () => {
    const secret = "s3cr3t-value";
    assert.throws(
      () => createAuthenticator({ mode: "keys", keysText: `good:${secret},${secret},bad tenant!:${secret}x, :${secret}y`, keysFile: null }, silent),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, [
          'GATEWAY_API_KEYS: entry 2: not in the form "tenant:key"',
          "GATEWAY_API_KEYS: entry 3: the tenant may contain only letters, digits, '.', '_' and '-' (1-64)",
          'GATEWAY_API_KEYS: entry 4: not in the form "tenant:key"',
        ]);
        assert.ok(!err.message.includes(secret));
        return true;
      },
    );
  });
});
