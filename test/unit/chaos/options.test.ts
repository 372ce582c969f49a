/** The chaos CLI's options: flags over CHAOS_* env over the full run, every problem at once. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChaosOptionsError, FULL_RUN, parseChaosOptions } from "../../../chaos/options.js";

describe("chaos options", () => {
  it("flags win over env, env over the full run's defaults", () => {
    const o = parseChaosOptions(["--conversations", "3", "--verbose", "0", "--broker-signal=SIGKILL"], { CHAOS_TURNS: "2", CHAOS_CONVERSATIONS: "9" });
    assert.equal(o.conversations, 3);
    assert.equal(o.turns, 2);
    assert.equal(o.verbose, false);
    assert.equal(o.brokerSignal, "SIGKILL");
    assert.equal(o.workers, FULL_RUN.workers);
    assert.ok(Object.isFrozen(o));
  });

  it("lists every bad flag and value in one error", () => {
    assert.throws(
      () => parseChaosOptions(["--bogus", "1", "--turns", "x", "stray", "--seed"], { CHAOS_WORKERS: "-1" }),
      (err: unknown) => {
        assert.ok(err instanceof ChaosOptionsError);
        for (const part of [
          "--bogus: unknown flag",
          "stray: not a flag",
          "--seed: missing value",
          '--turns: "x" is not a non-negative integer',
          'CHAOS_WORKERS / --workers: "-1"',
        ]) {
          assert.ok(err.message.includes(part), `${part} in ${err.message}`);
        }
        assert.ok(!err.message.includes("1: not a flag"), "an unknown flag's value is not reported twice");
        return true;
      },
    );
  });
});
