/**
 * The gateway's side of conversation reads (gateway/kafka/owners.ts) and the worker's
 * (worker/query-server.ts): parsing what members advertise, the owner map, the lookup's
 * retries, and the signing of reads and answers with the internal token, against real
 * query servers on 127.0.0.1 (the worker's own route over a stand-in memory store) and
 * rogue HTTP servers, with group descriptions given by the test (the integration test uses
 * a real group).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { conversationKey, parseConversationKey } from "../../../contracts/conversation-key.js";
import { SCHEMA_VERSION } from "../../../contracts/records/fields.js";
import type { ConversationState } from "../../../contracts/records/memory.js";
import { LookupUnavailable, OwnerLookup, advertisedAddress, conversationPartition, ownerMap, type GroupMember } from "../../../gateway/kafka/owners.js";
import { InternalKeys } from "../../../platform/internal-auth.js";
import { startOpsServer } from "../../../platform/ops-server.js";
import { advertisedClientId, queryAddress, queryRoute } from "../../../worker/query-server.js";

const logger = pino({ level: "silent" });
const TOKEN = "a-token-of-at-least-thirty-two-characters";
const OTHER = "another-token-of-thirty-two-characters!!";

const state = (tenant: string, id: string): ConversationState => ({
  v: SCHEMA_VERSION,
  type: "conversation",
  conversation_id: id,
  tenant,
  messages: [],
  applied: [],
  turns: 0,
  created_at: 1,
  updated_at: 1,
});

interface Server {
  url: string;
  seen: string[];
  close(): Promise<void>;
}

/**
 * A worker's query server (the real route) over a stand-in memory store that answers every
 * read as `status` says: 200 the conversation's state, 404 none, 421 not the owner, 503 not restored.
 */
async function fakeWorker(status: () => number, keys: InternalKeys = InternalKeys.none(), seen: string[] = []): Promise<Server> {
  const ops = await startOpsServer({ host: "127.0.0.1", port: 0, registry: new Registry(), ready: () => true });
  const url = `http://127.0.0.1:${ops.port}`;
  const route = queryRoute({
    keys,
    address: url,
    registry: new Registry(),
    logger,
    memory: {
      lookup: async (_p, key) => {
        const s = status();
        if (s === 421) return { owned: false };
        if (s === 503) throw new Error("restoring");
        const ref = parseConversationKey(key)!;
        return s === 200 ? { owned: true, state: state(ref.tenant, ref.conversation_id) } : { owned: true };
      },
    },
  });
  ops.setRoute((req, res, p) => {
    seen.push(`${req.url} ${req.headers.authorization ?? ""}`);
    return route(req, res, p);
  });
  return { url, seen, close: () => ops.close() };
}

/** Not a worker: answers every request with `answer`, and keeps what it was sent. */
async function rogue(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Server & { auth: string[] }> {
  const seen: string[] = [];
  const auth: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? "");
    auth.push(req.headers.authorization ?? "");
    answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    auth,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function lookup(describeGroup: () => Promise<{ members: GroupMember[]; state: string } | null>, timeoutMs = 2000, keys: InternalKeys = InternalKeys.none()) {
  const counts = { found: 0, not_found: 0, unavailable: 0, describes: 0 };
  const l = new OwnerLookup({
    describe: () => {
      counts.describes++;
      return describeGroup();
    },
    partitions: async () => 2,
    groupId: "workers",
    timeoutMs,
    keys,
    logger,
    metrics: { lookups: { inc: ({ outcome }) => counts[outcome]++ }, lookupSeconds: { observe: () => {} } },
  });
  return { l, counts };
}

const owning = (url: string) => async () => ({ state: "Stable", members: [{ clientId: `c@${url}`, partitions: [0, 1] }] });
const conv = (id: string, tenant = "t") => ({ tenant, conversation_id: id });

describe("conversation owners", () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it("reads the query address a member advertises at the end of its client id", () => {
    assert.equal(advertisedAddress("kafka-llm@http://10.1.2.3:9090"), "http://10.1.2.3:9090");
    assert.equal(advertisedAddress("team@a@http://[fd00::1]:9090"), "http://[fd00::1]:9090");
    assert.equal(advertisedAddress("kafka-llm"), null, "no address: an older worker");
    assert.equal(advertisedAddress("kafka-llm@not-a-url"), null);
    assert.equal(advertisedAddress("kafka-llm@http://host:1/path"), null);
    assert.equal(advertisedAddress(advertisedClientId("kafka-llm", "http://w-0:9090")), "http://w-0:9090");
  });

  it("maps partitions to their owners' addresses, skipping members that advertise none", () => {
    const owners = ownerMap([
      { clientId: "c@http://a:1", partitions: [0, 2] },
      { clientId: "c", partitions: [1] },
      { clientId: "c@http://b:1", partitions: [3] },
    ]);
    assert.deepEqual([...owners].sort(), [
      [0, "http://a:1"],
      [2, "http://a:1"],
      [3, "http://b:1"],
    ]);
  });

  it("advertises WORKER_QUERY_ADDRESS, else the pod IP, else a specific listen address, else the host name", () => {
    assert.equal(queryAddress("http://w.example:80", "0.0.0.0", 9090, { POD_IP: "10.0.0.9" }), "http://w.example:80");
    assert.equal(queryAddress(null, "0.0.0.0", 9090, { POD_IP: "10.0.0.9" }), "http://10.0.0.9:9090");
    assert.equal(queryAddress(null, "0.0.0.0", 9090, { POD_IP: "fd00::9" }), "http://[fd00::9]:9090");
    assert.equal(queryAddress(null, "127.0.0.1", 41234, {}), "http://127.0.0.1:41234");
    assert.match(queryAddress(null, "0.0.0.0", 9090, {}), /^http:\/\/[^/]+:9090$/);
  });

  it("spreads conversation keys over the partitions, the same key always on the same one", () => {
    const hits = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const key = conversationKey(conv(`c-${i}`));
      const p = conversationPartition(key, 6);
      assert.ok(p >= 0 && p < 6);
      assert.equal(conversationPartition(key, 6), p);
      hits.add(p);
    }
    assert.equal(hits.size, 6);
  });

  it("asks the owner with a signed read; a 421 makes it describe the group again and ask the new owner", async () => {
    const keys = InternalKeys.of([TOKEN]);
    const old = await fakeWorker(() => 421, keys);
    const next = await fakeWorker(() => 200, keys);
    servers.push(old, next);
    let moved = false;
    const { l, counts } = lookup(
      async () => {
        const owner = moved ? next.url : old.url;
        moved = true;
        return { state: "Stable", members: [{ clientId: `c@${owner}`, partitions: [0, 1] }] };
      },
      2000,
      keys,
    );
    const got = await l.get(conv("conv-1", "acme"));
    assert.deepEqual([got?.tenant, got?.conversation_id], ["acme", "conv-1"]);
    // fetch (undici) itself asks once more on a fresh connection after a 421 (RFC 9110 allows it).
    assert.ok(old.seen.length >= 1 && old.seen.length <= 2, JSON.stringify(old.seen));
    assert.equal(next.seen.length, 1);
    assert.match(
      next.seen[0]!,
      /^\/internal\/v1\/partitions\/[01]\/tenants\/acme\/conversations\/conv-1 KafkaLLM-HMAC key=[\w-]+,ts=\d+,nonce=[\w-]+,sig=[\w-]+$/,
    );
    assert.ok(!next.seen[0]!.includes(TOKEN), "the token itself never travels");
    assert.equal(counts.describes, 2);
    assert.equal(l.cachedOwners, 2);
    // Cached: the next read asks the owner without describing the group.
    await l.get(conv("conv-2"));
    assert.equal(counts.describes, 2);
    assert.deepEqual([counts.found, counts.unavailable], [2, 0]);
  });

  it("a read a rogue address received opens nothing: not at a real worker, not for another conversation, not later", async () => {
    const keys = InternalKeys.of([TOKEN]);
    const worker = await fakeWorker(() => 200, keys);
    const thief = await rogue((_req, res) => res.writeHead(503).end());
    servers.push(worker, thief);
    const { l } = lookup(owning(thief.url), 400, keys);
    await assert.rejects(l.get(conv("secret", "acme")), LookupUnavailable);
    assert.ok(thief.auth.length >= 1 && thief.auth.every((a) => a.startsWith("KafkaLLM-HMAC ") && !a.includes(TOKEN)));
    // Replayed as it was received: signed for the rogue's address, so the worker refuses it.
    const replay = await fetch(`${worker.url}${thief.seen[0]}`, { headers: { authorization: thief.auth[0]! } });
    assert.equal(replay.status, 401);
    assert.match(await replay.text(), /signature does not match/);
    assert.equal(worker.seen.length, 1);
  });

  it("uses no answer that is not signed with the token: a forged state, a forged 'not found', a wrong key", async () => {
    const keys = InternalKeys.of([TOKEN]);
    const forged = JSON.stringify({ state: state("acme", "c") });
    const liars = [
      await rogue((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(forged)),
      await rogue((_req, res) => res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ found: false }))),
    ];
    const wrongKey = await fakeWorker(() => 200, InternalKeys.of([OTHER]));
    servers.push(...liars, wrongKey);
    for (const liar of [...liars, wrongKey]) {
      const { l, counts } = lookup(owning(liar.url), 400, keys);
      await assert.rejects(l.get(conv("c", "acme")), LookupUnavailable, liar.url);
      assert.deepEqual([counts.found, counts.not_found, counts.unavailable], [0, 0, 1]);
    }
  });

  it("without a token asks only owners on loopback", async () => {
    const { l, counts } = lookup(owning("http://192.0.2.10:9090"), 400);
    await assert.rejects(l.get(conv("c")), (err: Error) => err instanceof LookupUnavailable && /no internal token is set/.test(err.message));
    assert.equal(counts.unavailable, 1);
    const local = await fakeWorker(() => 200);
    servers.push(local);
    assert.equal((await lookup(owning(local.url)).l.get(conv("c")))?.conversation_id, "c");
  });

  it("rotates the token in three steps without a refused read", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kafka-llm-token-"));
    try {
      const gatewayFile = path.join(dir, "gateway");
      const workerFile = path.join(dir, "worker");
      writeFileSync(gatewayFile, `${TOKEN}\n`);
      writeFileSync(workerFile, `${TOKEN}\n`);
      const gatewayKeys = InternalKeys.fromConfig({ token: "", file: gatewayFile }, logger, 20);
      const workerKeys = InternalKeys.fromConfig({ token: "", file: workerFile }, logger, 20);
      const worker = await fakeWorker(() => 200, workerKeys);
      servers.push(worker, {
        close: async () => {
          gatewayKeys.stop();
          workerKeys.stop();
        },
      });
      const { l, counts } = lookup(owning(worker.url), 2000, gatewayKeys);
      const settle = () => new Promise((r) => setTimeout(r, 100));
      // Each step reaches the two sides at different times; the order that could hurt is tried
      // (the gateway signing with the new token first, the worker dropping the old one first).
      const steps = [`${TOKEN}\n${OTHER}\n`, `${OTHER}\n${TOKEN}\n`, `${OTHER}\n`];
      const firsts = [gatewayFile, gatewayFile, workerFile];
      for (const [i, text] of steps.entries()) {
        const first = firsts[i]!;
        const second = first === gatewayFile ? workerFile : gatewayFile;
        writeFileSync(first, text);
        await settle();
        assert.equal((await l.get(conv(`half-${i}`)))?.conversation_id, `half-${i}`, `step ${i + 1}, one side only`);
        writeFileSync(second, text);
        await settle();
        assert.equal((await l.get(conv(`both-${i}`)))?.conversation_id, `both-${i}`, `step ${i + 1}, both sides`);
      }
      assert.equal(gatewayKeys.signingKeyId, InternalKeys.of([OTHER]).signingKeyId, "the new token signs");
      assert.deepEqual([counts.found, counts.unavailable], [6, 0], "no read was refused");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("returns undefined only when the owner says 404", async () => {
    const w = await fakeWorker(() => 404);
    servers.push(w);
    const { l, counts } = lookup(owning(w.url));
    assert.equal(await l.get(conv("nobody")), undefined);
    assert.equal(counts.not_found, 1);
  });

  it("never takes a 404 that is not the owner's own answer (a server without the route) for a missing conversation", async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "no route" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push({
      close: () =>
        new Promise((r) => {
          server.close(() => r());
          server.closeAllConnections();
        }),
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { l, counts } = lookup(async () => ({ state: "Stable", members: [{ clientId: `c@${url}`, partitions: [0, 1] }] }), 600);
    await assert.rejects(l.get(conv("c")), LookupUnavailable);
    assert.deepEqual([counts.not_found, counts.unavailable], [0, 1]);
  });

  it("says no worker runs when the group has no members, after its bound; without waiting when told not to", async () => {
    const { l, counts } = lookup(async () => null, 600);
    const started = Date.now();
    await assert.rejects(l.get(conv("c")), (err: Error) => err instanceof LookupUnavailable && /no worker is running/.test(err.message));
    assert.ok(Date.now() - started >= 500, "it waited for an owner up to its bound");
    assert.ok(counts.describes >= 2, "and kept asking the group");
    const quick = Date.now();
    await assert.rejects(l.get(conv("c"), { wait: false }), LookupUnavailable);
    assert.ok(Date.now() - quick < 500);
    assert.equal(counts.unavailable, 2);
  });

  it("keeps trying while the owner is restoring (503), then answers", async () => {
    let calls = 0;
    const w = await fakeWorker(() => (++calls < 3 ? 503 : 200));
    servers.push(w);
    const { l } = lookup(owning(w.url), 3000);
    assert.equal((await l.get(conv("c")))?.conversation_id, "c");
    assert.equal(calls, 3);
  });
});
