import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Lifecycle } from "../../../worker/lifecycle.js";

describe("Lifecycle", () => {
  it("is ready in running only, and tells listeners each move", () => {
    const lifecycle = new Lifecycle();
    const seen: string[] = [];
    lifecycle.onChange((next, previous) => seen.push(`${previous}->${next}`));
    for (const state of ["loading_model", "joining"] as const) {
      assert.ok(lifecycle.to(state));
      assert.equal(lifecycle.ready, false);
    }
    assert.ok(lifecycle.to("running"));
    assert.equal(lifecycle.ready, true);
    assert.ok(lifecycle.to("draining"));
    assert.equal(lifecycle.ready, false);
    assert.equal(lifecycle.stopping, true);
    assert.ok(lifecycle.to("stopped"));
    assert.deepEqual(seen, [
      "starting->starting",
      "starting->loading_model",
      "loading_model->joining",
      "joining->running",
      "running->draining",
      "draining->stopped",
    ]);
  });

  it("refuses moves that are not allowed, so a start-up racing a SIGTERM never becomes ready", () => {
    const lifecycle = new Lifecycle();
    lifecycle.to("loading_model");
    assert.ok(lifecycle.to("draining"), "SIGTERM while loading the model");
    assert.equal(lifecycle.to("running"), false);
    assert.equal(lifecycle.state, "draining");
    assert.equal(lifecycle.ready, false);
    assert.ok(lifecycle.to("stopped"));
    assert.equal(lifecycle.to("failed"), false, "stopped is final");
  });
});
