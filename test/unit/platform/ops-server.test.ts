/**
 * The worker's probes as Kubernetes asks them, over real HTTP: started only once the model
 * is loaded, alive unless something says it is hung, ready only when running.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { startOpsServer } from "../../../platform/ops-server.js";

describe("the ops server's probes", () => {
  it("answers /startupz, /healthz and /readyz from what the worker says", async () => {
    let started = false;
    let hung: string | null = null;
    let ready = false;
    const ops = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      registry: new Registry(),
      ready: () => ready,
      started: () => started,
      live: () => hung,
    });
    const probe = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${ops.port}${path}`);
      return { status: res.status, body: (await res.json()) as Record<string, string> };
    };
    try {
      // Loading the model: alive (the process answers), not started, not ready.
      assert.deepEqual(await probe("/startupz"), { status: 503, body: { status: "starting" } });
      assert.equal((await probe("/healthz")).status, 200);
      assert.equal((await probe("/readyz")).status, 503);

      started = true;
      ready = true;
      assert.deepEqual(await probe("/startupz"), { status: 200, body: { status: "started" } });
      assert.equal((await probe("/readyz")).status, 200);

      hung = "the request consumer's poll loop has not returned for 61 s";
      assert.deepEqual(await probe("/healthz"), { status: 503, body: { status: "hung", reason: hung } });
    } finally {
      await ops.close();
    }
  });

  it("is started and alive when the service gives no such checks (the defaults)", async () => {
    const ops = await startOpsServer({ host: "127.0.0.1", port: 0, registry: new Registry(), ready: () => false });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${ops.port}/startupz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${ops.port}/healthz`)).status, 200);
    } finally {
      await ops.close();
    }
  });
});
