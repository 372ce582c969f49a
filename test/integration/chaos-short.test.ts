/**
 * The chaos run in its short CI form (chaos/run.ts has the full one: `npm run chaos`):
 * a broker, gateways and three workers as real processes; 20 concurrent clients with 3 turns
 * each through the gateways' HTTP API; three workers SIGKILLed (and restarted), one broker
 * restart, and the scale events of an autoscaler (a fourth worker joins, a worker is sent
 * SIGTERM and not replaced) while they talk. Every turn must be answered exactly once, in
 * order, and remembered once, in order. The accounting reads the topics straight from Kafka
 * (chaos/accounting.ts, itself tested in test/unit/chaos/). It runs with each fence: the
 * memory log's (the default) and Kafka transactions (WORKER_TRANSACTIONS). With
 * CHAOS_SHORT_NEW_FAULTS=1 the default mode also has two gateway replicas, one SIGKILLed
 * mid-reply twice (its clients resume at the other with Last-Event-ID), a second tenant
 * flooding at its quota, and three poison records on chat.requests, each that names a
 * request to be ended with an error event.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FULL_RUN, validated } from "../../chaos/options.js";
import { runChaos } from "../../chaos/run.js";

/** Two gateway replicas, one killed mid-reply twice; a tenant flooding at 12 a minute; three poison records. */
const NEW_FAULTS = { gateways: 2, gatewayKillMinMs: 8_000, gatewayKillMaxMs: 12_000, maxGatewayKills: 2, floodRequestsPerMinute: 12, poisonRecords: 3 };

const WITHOUT_NEW_FAULTS = { gateways: 1, maxGatewayKills: 0, floodRequestsPerMinute: 0, poisonRecords: 0 };

describe("chaos (short form)", { timeout: 840_000 }, () => {
  for (const transactions of [false, true])
    it(
      `loses, doubles and reorders no turn while workers are killed, added and removed and the broker restarts${transactions ? " (WORKER_TRANSACTIONS)" : ""}`,
      { timeout: 420_000 },
      async (t) => {
        const options = validated({
          ...FULL_RUN,
          transactions,
          conversations: 20,
          turns: 3,
          durationMs: 40_000,
          drainMs: 90_000,
          maxKills: 3,
          // Without issue 24's faults (NEW_FAULTS, the full run has them): with a second
          // gateway the broker's restart took 95-113 s on the shared 2-core machine, past this
          // form's 130 s, and the default mode failed on time twice (0 lost, doubled or
          // reordered). Set CHAOS_SHORT_NEW_FAULTS=1 to run them in the default mode.
          ...(transactions || process.env.CHAOS_SHORT_NEW_FAULTS !== "1" ? WITHOUT_NEW_FAULTS : NEW_FAULTS),
          brokerRestartAt: 0.5,
          name: transactions ? "chaos-short-tx" : "chaos-short",
          seed: Math.floor(Math.random() * 2 ** 31),
          verbose: false,
        });
        const result = await runChaos(options, (line) => t.diagnostic(line));
        for (const line of result.report.split("\n")) t.diagnostic(line);
        const a = result.accounting;

        const kills = result.faults.filter((f) => f.kind === "worker_kill").length;
        assert.ok(kills >= 2, `workers were killed (${kills})`);
        assert.equal(result.faults.filter((f) => f.kind === "broker_restart").length, 1, "the broker restarted once");
        assert.equal(result.faults.filter((f) => f.kind === "scale_out").length, 1, "a worker joined");
        assert.equal(result.faults.filter((f) => f.kind === "scale_in").length, 1, "a worker was scaled in (SIGTERM)");

        assert.equal(a.sent, 60, "every turn was sent");
        assert.equal(a.lost, 0, "no turn lost");
        assert.equal(a.answeredTwice, 0, "no turn answered twice");
        assert.equal(a.outOfOrder, 0, "no turn out of order");
        assert.equal(a.ghosts, 0, "no turn applied twice after a 503 (Idempotency-Key)");
        assert.equal(a.memoryMismatches, 0, "every conversation's memory holds each turn once, in order");
        assert.equal(a.memoryChecked, 20);
        assert.equal(a.historyMismatches, 0, "every conversation's history chain holds each turn once, in order");
        assert.equal(a.historyChecked, 20);
        assert.equal(a.answeredOnce, 60, "every client received its one final");
        assert.ok(a.ok, `the accounting found problems:\n${a.anomalies.join("\n")}\n(result: ${result.file})`);

        assert.ok(result.ok, "the poison and the flood as expected too");
        if (options.gateways < 2) return;
        assert.ok(result.gateways.kills >= 1, `a gateway was killed (${result.gateways.kills})`);
        assert.ok(result.flood.accepted > 0, "the flooding tenant got some turns in");
        assert.ok(
          result.flood.accepted <= 12 + 6 * result.gateways.kills,
          `within its quota, give or take a restarted replica's share (${result.flood.accepted})`,
        );
        assert.ok(result.flood.refused > 0, "and was refused past its quota");
        assert.equal(result.flood.refusedWithRetryAfter, result.flood.refused, "every 429 says when to come back");
        const p = result.poison;
        assert.equal(p.sent, 3, `every poison record was written: ${p.problems.join("; ")}`);
        assert.equal(p.named, 2);
        assert.equal(p.endedWithError, 2, `every poison request ended with request_dead_lettered: ${p.problems.join("; ")}`);
        assert.equal(p.deadLettered, 3, "every poison record is on the dead letter topic");
        assert.equal(p.followedToError, 1, "the client following the misplaced request at a gateway was told");
      },
    );
});
