/**
 * handleConsumerCrash against the order in which kafkajs reports a crash it gives up on:
 * it disconnects the consumer (which emits STOP) and then emits CRASH with restart: false.
 * The consumer here is a stand-in with kafkajs's event names; the order is kafkajs's own
 * (node_modules/kafkajs/src/consumer/index.js, onCrash).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import type { Consumer } from "kafkajs";
import { handleConsumerCrash } from "../../../platform/kafka.js";
import { createLogger } from "../../../platform/logger.js";

function standIn() {
  const emitter = new EventEmitter();
  const events = { STOP: "consumer.stop", CRASH: "consumer.crash" };
  const consumer = {
    events,
    on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener),
  } as unknown as Consumer;
  return {
    consumer,
    stop: () => emitter.emit(events.STOP, { type: events.STOP, payload: {} }),
    crash: (restart: boolean) => emitter.emit(events.CRASH, { type: events.CRASH, payload: { error: new Error("Failed to find group coordinator"), restart } }),
  };
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("handleConsumerCrash", () => {
  it("starts a consumer kafkajs gave up on again, though kafkajs stopped it (STOP) just before saying so", async () => {
    const c = standIn();
    let restarts = 0;
    handleConsumerCrash(c.consumer, { name: "reader", logger: createLogger("test", "silent"), restart: async () => void restarts++ });
    c.stop(); // kafkajs's own disconnect inside onCrash
    c.crash(false);
    await settle(700); // the first restart comes 500 ms after the crash
    assert.equal(restarts, 1, "started again once");
  });

  it("stays stopped after a stop of our own, and leaves kafkajs's own restarts to kafkajs", async () => {
    const c = standIn();
    let restarts = 0;
    handleConsumerCrash(c.consumer, { name: "reader", logger: createLogger("test", "silent"), restart: async () => void restarts++ });
    c.crash(true); // kafkajs restarts this one itself
    c.stop();
    c.crash(false);
    c.stop(); // our disconnect (shutdown) before the restart timer fires
    await settle(700);
    assert.equal(restarts, 0);
  });

  it("without a restart, reports the failure for the health check", () => {
    const c = standIn();
    const failure = handleConsumerCrash(c.consumer, { name: "events consumer", logger: createLogger("test", "silent") });
    assert.equal(failure(), null);
    c.stop();
    c.crash(false);
    assert.match(failure() ?? "", /events consumer stopped: Failed to find group coordinator/);
  });
});
