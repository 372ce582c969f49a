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

  it("reads the gateway, flood and poison options, and refuses a gateway kill interval that is backwards", () => {
    const o = parseChaosOptions(["--gateways", "3", "--flood-requests-per-minute", "0", "--poison-records", "5"], { CHAOS_MAX_GATEWAY_KILLS: "2" });
    assert.deepEqual([o.gateways, o.floodRequestsPerMinute, o.poisonRecords, o.maxGatewayKills], [3, 0, 5, 2]);
    assert.equal(FULL_RUN.gateways, 2, "the full run has two replicas");
    assert.throws(
      () => parseChaosOptions(["--gateway-kill-min-ms", "9000", "--gateway-kill-max-ms", "8000", "--gateways", "0"], {}),
      /gateways must be at least 1\n {2}gatewayKillMinMs must not exceed gatewayKillMaxMs/,
    );
  });
});
