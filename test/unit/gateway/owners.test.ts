/**
 * The gateway's side of conversation reads (gateway/kafka/owners.ts) and the worker's
 * advertised address (worker/query-server.ts): parsing what members advertise, the owner
 * map, and the lookup's retries against small HTTP servers standing in for workers, with
 * group descriptions given by the test (the integration test uses a real group).
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import { SCHEMA_VERSION, type ConversationState } from "../../../contracts/records.js";
import { LookupUnavailable, OwnerLookup, advertisedAddress, conversationPartition, ownerMap, type GroupMember } from "../../../gateway/kafka/owners.js";
import { advertisedClientId, queryAddress } from "../../../worker/query-server.js";

const logger = pino({ level: "silent" });

const state = (id: string): ConversationState => ({
  v: SCHEMA_VERSION,
  type: "conversation",
  conversation_id: id,
  tenant: "t",
  messages: [],
  applied: [],
  turns: 0,
  created_at: 1,
  updated_at: 1,
});

/** A stand-in worker: answers every read with `status` (200 with the conversation's state). */
async function fakeWorker(status: () => number, seen: string[] = []): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    seen.push(`${req.url} ${req.headers.authorization ?? ""}`);
    const s = status();
    const id = decodeURIComponent((req.url ?? "").split("/").at(-1)!);
    res.writeHead(s, { "content-type": "application/json" });
    res.end(JSON.stringify(s === 200 ? { state: state(id) } : s === 404 ? { error: "none", found: false } : { error: String(s) }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function lookup(describeGroup: () => Promise<{ members: GroupMember[]; state: string } | null>, timeoutMs = 2000, token = "") {
  const counts = { found: 0, not_found: 0, unavailable: 0, describes: 0 };
  const l = new OwnerLookup({
    describe: () => {
      counts.describes++;
      return describeGroup();
    },
    partitions: async () => 2,
    groupId: "workers",
    timeoutMs,
    token,
    logger,
    metrics: { lookups: { inc: ({ outcome }) => counts[outcome]++ }, lookupSeconds: { observe: () => {} } },
  });
  return { l, counts };
}

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

  it("spreads conversation ids over the partitions, the same id always on the same one", () => {
    const hits = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const p = conversationPartition(`c-${i}`, 6);
      assert.ok(p >= 0 && p < 6);
      assert.equal(conversationPartition(`c-${i}`, 6), p);
      hits.add(p);
    }
    assert.equal(hits.size, 6);
  });

  it("asks the owner with the token; a 421 makes it describe the group again and ask the new owner", async () => {
    const old = await fakeWorker(() => 421);
    const next = await fakeWorker(() => 200);
    servers.push(old, next);
    let moved = false;
    const { l, counts } = lookup(
      async () => {
        const owner = moved ? next.url : old.url;
        moved = true;
        return { state: "Stable", members: [{ clientId: `c@${owner}`, partitions: [0, 1] }] };
      },
      2000,
      "tok",
    );
    const got = await l.get("conv-1");
    assert.equal(got?.conversation_id, "conv-1");
    // fetch (undici) itself asks once more on a fresh connection after a 421 (RFC 9110 allows it).
    assert.ok(old.seen.length >= 1 && old.seen.length <= 2, JSON.stringify(old.seen));
    assert.equal(next.seen.length, 1);
    assert.match(next.seen[0]!, /^\/internal\/v1\/partitions\/[01]\/conversations\/conv-1 Bearer tok$/);
    assert.equal(counts.describes, 2);
    assert.equal(l.cachedOwners, 2);
    // Cached: the next read asks the owner without describing the group.
    await l.get("conv-2");
    assert.equal(counts.describes, 2);
    assert.deepEqual([counts.found, counts.unavailable], [2, 0]);
  });

  it("returns undefined only when the owner says 404", async () => {
    const w = await fakeWorker(() => 404);
    servers.push(w);
    const { l, counts } = lookup(async () => ({ state: "Stable", members: [{ clientId: `c@${w.url}`, partitions: [0, 1] }] }));
    assert.equal(await l.get("nobody"), undefined);
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
    await assert.rejects(l.get("c"), LookupUnavailable);
    assert.deepEqual([counts.not_found, counts.unavailable], [0, 1]);
  });

  it("says no worker runs when the group has no members, after its bound; without waiting when told not to", async () => {
    const { l, counts } = lookup(async () => null, 600);
    const started = Date.now();
    await assert.rejects(l.get("c"), (err: Error) => err instanceof LookupUnavailable && /no worker is running/.test(err.message));
    assert.ok(Date.now() - started >= 500, "it waited for an owner up to its bound");
    assert.ok(counts.describes >= 2, "and kept asking the group");
    const quick = Date.now();
    await assert.rejects(l.get("c", { wait: false }), LookupUnavailable);
    assert.ok(Date.now() - quick < 500);
    assert.equal(counts.unavailable, 2);
  });

  it("keeps trying while the owner is restoring (503), then answers", async () => {
    let calls = 0;
    const w = await fakeWorker(() => (++calls < 3 ? 503 : 200));
    servers.push(w);
    const { l } = lookup(async () => ({ state: "Stable", members: [{ clientId: `c@${w.url}`, partitions: [0, 1] }] }), 3000);
    assert.equal((await l.get("c"))?.conversation_id, "c");
    assert.equal(calls, 3);
  });
});
