/**
 * The gateway's HTTP server holds no connection for a slow client: headers that come a byte
 * at a time are cut at GATEWAY_HEADERS_TIMEOUT_MS, a body that does at
 * GATEWAY_REQUEST_TIMEOUT_MS, a request without a valid key is answered 401 before its body
 * is read (and its connection closed), and past GATEWAY_MAX_CONNECTIONS a new connection is
 * closed on arrival. What the bounds must not cut: an SSE stream that lasts longer than
 * them. Real gateway processes on a real broker; raw sockets play the slow clients.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import net from "node:net";
import { apiClient, stackEnv, startGateway } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "bounds-key-123456789";
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
/** Node checks the timeouts once a second (gateway/app.ts), so a cut comes up to that late. */
const CHECK_MS = 1000;
const SLACK_MS = 1500;

/** A raw connection to a gateway: what it received, and when the server closed it. */
interface RawClient {
  socket: net.Socket;
  received: () => string;
  closed: Promise<number>;
  startedAt: number;
}

async function connect(gateway: Service): Promise<RawClient> {
  const url = new URL(gateway.baseUrl);
  const socket = net.connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let data = "";
  socket.on("data", (chunk: Buffer) => (data += chunk.toString("latin1")));
  socket.on("error", () => {});
  const startedAt = Date.now();
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now())));
  return { socket, received: () => data, closed, startedAt };
}

/** Writes `text` a byte every `everyMs` until the socket closes; resolves with the bytes written. */
function dribble(socket: net.Socket, text: string, everyMs: number): Promise<number> {
  return new Promise((resolve) => {
    let i = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || !socket.writable || i >= text.length) {
        clearInterval(timer);
        return resolve(i);
      }
      socket.write(text[i++]!);
    }, everyMs);
  });
}

/** `closed`, or a failure after `timeoutMs`. */
function within(closed: Promise<number>, timeoutMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs)));
  return Promise.race([closed, late]).finally(() => clearTimeout(timer));
}

describe("gateway HTTP bounds against slow clients", { timeout: 120_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let capped: Service;
  const prefix = uniquePrefix("gw-bounds");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    const keys = { GATEWAY_API_KEYS: `t:${KEY}` };
    [gateway, capped] = await Promise.all([
      startGateway(
        common,
        {
          ...keys,
          GATEWAY_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
          GATEWAY_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
          SSE_KEEPALIVE_MS: "300",
        },
        "gateway",
      ),
      // Its readiness probes' connections close at once when idle, so the cap counts only the test's.
      startGateway(common, { ...keys, GATEWAY_MAX_CONNECTIONS: "4", GATEWAY_KEEP_ALIVE_TIMEOUT_MS: "200" }, "gateway-capped"),
    ]);
  });

  after(async () => {
    await Promise.all([gateway?.stop(), capped?.stop()]);
    await kafka?.stop();
  });

  it("cuts a client that sends its headers a byte a second, with a 408, at GATEWAY_HEADERS_TIMEOUT_MS", async () => {
    const client = await connect(gateway);
    client.socket.write("POST /v1/conversations HTTP/1.1\r\nHost: x\r\n");
    void dribble(client.socket, `Authorization: Bearer ${KEY}\r\nContent-Type: application/json\r\n\r\n`, 1000);
    const closedAt = await within(client.closed, HEADERS_TIMEOUT_MS + CHECK_MS + SLACK_MS);
    const held = closedAt - client.startedAt;
    assert.ok(held >= HEADERS_TIMEOUT_MS - 100, `held ${held} ms: not cut before the bound`);
    assert.ok(held <= HEADERS_TIMEOUT_MS + CHECK_MS + SLACK_MS, `held ${held} ms`);
    assert.match(client.received(), /^HTTP\/1\.1 408 /, "told why");
  });

  it("cuts a client with a valid key whose body comes a byte a second, at GATEWAY_REQUEST_TIMEOUT_MS", async () => {
    const client = await connect(gateway);
    const body = JSON.stringify({ greeting: false, system: "x".repeat(60) });
    client.socket.write(
      `POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    const written = dribble(client.socket, body, 1000);
    const closedAt = await within(client.closed, REQUEST_TIMEOUT_MS + CHECK_MS + SLACK_MS);
    const held = closedAt - client.startedAt;
    assert.ok(held >= REQUEST_TIMEOUT_MS - 100, `held ${held} ms: not cut before the bound`);
    assert.ok((await written) < body.length, "the body never finished");
    assert.match(client.received(), /^HTTP\/1\.1 408 /, "told why");
  });

  it("answers a POST without a valid key 401 before reading its body, and closes its connection", async () => {
    for (const auth of ["", "Authorization: Bearer not-a-key-at-all\r\n"]) {
      const client = await connect(gateway);
      // A megabyte announced, ten bytes sent: the answer cannot wait for the body.
      client.socket.write(
        `POST /v1/conversations/c-1/messages HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"content"`,
      );
      const answeredAt = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer; received ${JSON.stringify(client.received())}`)), REQUEST_TIMEOUT_MS);
        const check = () => {
          if (/\r\n\r\n/.test(client.received())) {
            clearTimeout(timer);
            client.socket.off("data", check);
            resolve(Date.now());
          }
        };
        client.socket.on("data", check);
      });
      assert.ok(answeredAt - client.startedAt < 1000, `answered after ${answeredAt - client.startedAt} ms`);
      const head = client.received().split("\r\n\r\n")[0]!;
      assert.match(head, /^HTTP\/1\.1 401 /);
      assert.match(head, /\r\nconnection: close/i, "the connection is not kept to drain the body");
      // Closed by the server well before the request timeout would have cut it.
      const closedAt = await within(client.closed, 1000);
      assert.ok(closedAt - client.startedAt < REQUEST_TIMEOUT_MS, `closed after ${closedAt - client.startedAt} ms`);
    }
  });

  it("keeps an SSE stream open longer than the request timeout", async () => {
    // No worker: the turn waits, and its stream sends keepalives and queued notices.
    const accepted = await apiClient(gateway.baseUrl, KEY)("POST", "/v1/conversations/sse-long/messages", { content: "Still there?" });
    assert.equal(accepted.status, 202, accepted.text);
    const stop = new AbortController();
    const res = await fetch(gateway.baseUrl + accepted.body.events_url, { headers: { authorization: `Bearer ${KEY}` }, signal: stop.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const openedAt = Date.now();
    const lastFrameAfter = REQUEST_TIMEOUT_MS + CHECK_MS + SLACK_MS;
    let lastAt = 0;
    try {
      while (Date.now() - openedAt < lastFrameAfter + 1000) {
        const { done } = await reader.read();
        assert.ok(!done, `the stream ended after ${Date.now() - openedAt} ms`);
        lastAt = Date.now() - openedAt;
      }
    } finally {
      stop.abort();
    }
    assert.ok(lastAt >= lastFrameAfter, `frames still came ${lastAt} ms after the stream opened`);
  });

  it("closes a connection past GATEWAY_MAX_CONNECTIONS on arrival, and serves again once one is free", async () => {
    await new Promise((r) => setTimeout(r, 500)); // readiness probes' idle connections gone
    // Four connections, each in the middle of its headers (held until the headers timeout, 10 s).
    const held = await Promise.all([1, 2, 3, 4].map(() => connect(capped)));
    for (const c of held) c.socket.write("GET /healthz HTTP/1.1\r\n");
    await new Promise((r) => setTimeout(r, 100));
    const refused = await connect(capped).catch(() => null);
    if (refused) {
      refused.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      await within(refused.closed, 1000);
      assert.equal(refused.received(), "", "nothing is served past the cap");
    }
    held[0]!.socket.destroy();
    await held[0]!.closed;
    await new Promise((r) => setTimeout(r, 100));
    const next = await connect(capped);
    next.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await within(next.closed, 2000);
    assert.match(next.received(), /^HTTP\/1\.1 200 /);
    for (const c of held) c.socket.destroy();
  });
});
