/**
 * The chaos run in its short CI form (chaos/run.ts has the full one: `npm run chaos`):
 * a broker, a gateway and three workers as real processes; 20 concurrent clients with 3
 * turns each through the gateway's HTTP API; three workers SIGKILLed (and restarted), one
 * broker restart, and the scale events of an autoscaler (a fourth worker joins, a worker
 * is sent SIGTERM and not replaced) while they talk. Every turn must be answered exactly once, in
 * order, and remembered once, in order; the accounting reads the topics straight from
 * Kafka (chaos/accounting.ts, itself tested in test/unit/chaos/accounting.test.ts). It runs
 * with each fence: the memory log's (the default) and Kafka transactions (WORKER_TRANSACTIONS).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FULL_RUN, validated } from "../../chaos/options.js";
import { runChaos } from "../../chaos/run.js";

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
      },
    );
});
