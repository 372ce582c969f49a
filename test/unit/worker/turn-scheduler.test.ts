import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../../platform/logger.js";
import { MAX_DONE_AHEAD, TurnScheduler, type RequestRecord, type RevokeCause, type RunVerdict } from "../../../worker/turn-scheduler.js";

const logger = createLogger("test", "silent");
/** A record of conversation `key` (tenant/id); unkeyed records are each a conversation of their own. */
const record = (partition: number, offset: number, key?: string): RequestRecord => ({
  topic: "t",
  partition,
  offset: String(offset),
  key: key === undefined ? null : Buffer.from(key),
  value: null,
});

/** A turn the test finishes by hand, or that ends when its revoke signal aborts. */
interface Held {
  record: RequestRecord;
  revoke: AbortSignal;
  /**
   * Ends the turn; `done` settles it (its effects written) and commits where the scheduler
   * says; `unsettled` returns done without that (left for a next owner).
   */
  finish(result?: RunVerdict | "unsettled"): void;
}

function harness(concurrency: number, prefetch = 0, options: { fairShareWindowMs?: number; now?: () => number } = {}) {
  const held: Held[] = [];
  const log: string[] = [];
  const firsts: string[] = [];
  const commits: string[] = [];
  const scheduler = new TurnScheduler({
    concurrency,
    logger,
    retryBackoffMs: 1,
    prefetch,
    ...options,
    pause: (p) => log.push(`pause ${p}`),
    resume: (p) => log.push(`resume ${p}`),
    run: (r, revoke, first, commit) =>
      new Promise<RunVerdict>((resolve) => {
        log.push(`run ${r.partition}/${r.offset}`);
        if (first) firsts.push(`${r.partition}/${r.offset}`);
        const h: Held = {
          record: r,
          revoke,
          finish: (result = "done") => {
            if (result === "done") {
              const to = commit.next();
              if (commit.settle(to)) commits.push(`${r.partition}@${to}`);
            }
            resolve(result === "unsettled" ? "done" : result);
          },
        };
        revoke.addEventListener("abort", () => {
          log.push(`revoked ${r.partition}/${r.offset} ${(revoke.reason as RevokeCause).kind}`);
          resolve("done");
        });
        held.push(h);
      }),
  });
  const tick = () => new Promise((r) => setTimeout(r, 5));
  const runs = () => log.filter((l) => l.startsWith("run"));
  return { scheduler, held, log, firsts, commits, tick, runs };
}

describe("TurnScheduler", () => {
  it("pauses a partition on its record and resumes it only after the turn is done", async () => {
    const { scheduler, held, log, tick } = harness(2);
    scheduler.offer(record(0, 5));
    await tick();
    assert.deepEqual(log, ["pause 0", "run 0/5"]);
    held[0]!.finish();
    await tick();
    assert.deepEqual(log, ["pause 0", "run 0/5", "resume 0"]);
  });

  it("runs one record of a partition at a time, in offset order, and drops a record delivered twice", async () => {
    const { scheduler, held, log, tick } = harness(4);
    scheduler.offer(record(1, 10));
    scheduler.offer(record(1, 11));
    scheduler.offer(record(1, 11));
    await tick();
    assert.equal(held.length, 1, "the second record waits for the first");
    held[0]!.finish();
    await tick();
    assert.equal(held.length, 2);
    assert.equal(held[1]!.record.offset, "11");
    held[1]!.finish();
    await tick();
    assert.equal(held.length, 2, "offset 11 ran once");
    assert.deepEqual(
      log.filter((l) => l.startsWith("run")),
      ["run 1/10", "run 1/11"],
    );
  });

  it("marks the first record it starts of a partition since gaining it, the only one an earlier owner may have started", async () => {
    const { scheduler, held, firsts, tick } = harness(2);
    scheduler.offer(record(4, 20));
    scheduler.offer(record(4, 21));
    await tick();
    held[0]!.finish("retry");
    await tick();
    held[1]!.finish();
    await tick();
    held[2]!.finish();
    await tick();
    await scheduler.revoke([4], { drainMs: 0, lost: false });
    scheduler.offer(record(4, 22));
    await tick();
    assert.deepEqual(firsts, ["4/20", "4/22"], "not a retry of the first, nor the record after it; again once the partition is gained anew");
  });

  it("runs at most `concurrency` turns, first come first served across partitions", async () => {
    const { scheduler, held, tick } = harness(2);
    for (const p of [3, 1, 2, 0]) scheduler.offer(record(p, 0));
    await tick();
    assert.deepEqual(
      held.map((h) => h.record.partition),
      [3, 1],
    );
    assert.equal(scheduler.running, 2);
    held[1]!.finish();
    await tick();
    assert.deepEqual(
      held.map((h) => h.record.partition),
      [3, 1, 2],
    );
  });

  it("retries a record whose turn asked for it, on the partition it still owns", async () => {
    const { scheduler, held, log, tick } = harness(1);
    scheduler.offer(record(0, 7));
    await tick();
    held[0]!.finish("retry");
    await tick();
    await tick();
    assert.deepEqual(
      log.filter((l) => l.startsWith("run")),
      ["run 0/7", "run 0/7"],
    );
    assert.ok(!log.includes("resume 0"), "not resumed while the record is still to be done");
  });

  it("lets a revoked partition's running turn finish within the drain bound, and drops what had not started", async () => {
    const { scheduler, held, log, tick } = harness(1);
    scheduler.offer(record(0, 1));
    scheduler.offer(record(1, 1));
    await tick();
    let released = false;
    const revoked = scheduler.revoke([0, 1], { drainMs: 10_000, lost: false }).then(() => (released = true));
    await tick();
    assert.equal(released, false, "not released while the turn runs");
    held[0]!.finish();
    await revoked;
    await tick();
    assert.deepEqual(
      log.filter((l) => l.startsWith("run")),
      ["run 0/1"],
      "partition 1's record never started",
    );
    assert.ok(!log.some((l) => l.startsWith("revoked")), "the turn finished on its own");
    assert.ok(!log.includes("resume 0"), "a revoked partition is not resumed");
  });

  it("asks a turn still running at the drain bound to hand over, and stops a lost partition's turn at once", async () => {
    const { scheduler, log, tick } = harness(2);
    scheduler.offer(record(0, 1));
    scheduler.offer(record(1, 1));
    await tick();
    await scheduler.revoke([0], { drainMs: 20, lost: false });
    await scheduler.revoke([1], { drainMs: 10_000, lost: true });
    assert.ok(log.includes("revoked 0/1 handover"));
    assert.ok(log.includes("revoked 1/1 lost"));
    await tick();
    assert.equal(scheduler.running, 0);
  });

  it("takes nothing after close, and drains what runs", async () => {
    const { scheduler, held, log, tick } = harness(2);
    scheduler.offer(record(0, 1));
    await tick();
    const closed = scheduler.close(10_000);
    scheduler.offer(record(1, 1));
    held[0]!.finish();
    await closed;
    await tick();
    assert.deepEqual(
      log.filter((l) => l.startsWith("run")),
      ["run 0/1"],
      "nothing fetched after the signal starts",
    );
  });
});

describe("TurnScheduler with records held ahead", () => {
  it("pauses a partition once it holds more than `prefetch` records not started, and starts the next at once", async () => {
    const { scheduler, held, log, tick } = harness(2, 1);
    for (const offset of [1, 2, 3]) scheduler.offer(record(0, offset, "a/c"));
    await tick();
    assert.deepEqual(log, ["run 0/1", "pause 0"], "one conversation: 2 and 3 wait, and hold more than prefetch");
    held[0]!.finish();
    await tick();
    assert.deepEqual(log, ["run 0/1", "pause 0", "run 0/2", "resume 0"], "the held record starts without a fetch");
  });
});

describe("TurnScheduler: conversations of one partition side by side", () => {
  it("runs a conversation's records one at a time and other conversations of the partition beside them", async () => {
    const { scheduler, held, runs, tick } = harness(4, 16);
    scheduler.offer(record(0, 1, "a/x"));
    await tick();
    held[0]!.finish();
    await tick();
    for (const [offset, key] of [
      [2, "b/long"],
      [3, "b/long"],
      [4, "a/short"],
      [5, "b/other"],
    ] as const)
      scheduler.offer(record(0, offset, key));
    await tick();
    assert.deepEqual(runs(), ["run 0/1", "run 0/2", "run 0/4", "run 0/5"], "offset 3 waits for its conversation's 2; 4 and 5 do not");
    held.find((h) => h.record.offset === "2")!.finish();
    await tick();
    assert.deepEqual(runs().at(-1), "run 0/3");
  });

  it("runs a partition's first record alone after gaining it: an earlier owner may have died on it", async () => {
    const { scheduler, held, runs, firsts, tick } = harness(4, 16);
    scheduler.offer(record(2, 40, "a/x"));
    scheduler.offer(record(2, 41, "a/y"));
    scheduler.offer(record(2, 42, "b/z"));
    await tick();
    assert.deepEqual(runs(), ["run 2/40"]);
    held[0]!.finish("retry");
    await tick();
    await tick();
    assert.deepEqual(runs(), ["run 2/40", "run 2/40"], "still alone on its retry");
    held[1]!.finish();
    await tick();
    assert.deepEqual(runs(), ["run 2/40", "run 2/40", "run 2/41", "run 2/42"]);
    assert.deepEqual(firsts, ["2/40"]);
  });

  it("commits each partition up to its lowest record not done, never backwards", async () => {
    const { scheduler, held, commits, tick } = harness(4, 16);
    scheduler.offer(record(0, 10, "a/first"));
    await tick();
    held[0]!.finish();
    await tick();
    assert.deepEqual(commits, ["0@11"]);
    scheduler.offer(record(0, 11, "a/long"));
    scheduler.offer(record(0, 12, "b/quick"));
    scheduler.offer(record(0, 13, "c/quick"));
    await tick();
    held.find((h) => h.record.offset === "13")!.finish();
    held.find((h) => h.record.offset === "12")!.finish();
    await tick();
    assert.deepEqual(commits, ["0@11"], "11 still runs: nothing past it is committed");
    held.find((h) => h.record.offset === "11")!.finish();
    await tick();
    assert.deepEqual(commits, ["0@11", "0@14"], "11 done: past 12 and 13, done before it");
  });

  it("runs no further ahead of its lowest record not done than a conversation remembers applied requests", async () => {
    const { scheduler, held, runs, commits, tick } = harness(2, 64);
    scheduler.offer(record(0, 0, "x/first"));
    await tick();
    held[0]!.finish();
    await tick();
    scheduler.offer(record(0, 1, "a/long"));
    for (let i = 2; i < MAX_DONE_AHEAD + 10; i++) scheduler.offer(record(0, i, "b/quick"));
    for (let done = 0; done < MAX_DONE_AHEAD + 5; done++) {
      await tick();
      held.find((h) => h.record.key?.toString() === "b/quick" && !h.revoke.aborted && h.record.offset === String(done + 2))?.finish();
    }
    await tick();
    assert.equal(runs().filter((r) => r !== "run 0/0" && r !== "run 0/1").length, MAX_DONE_AHEAD, "b's turns stop once that many are done above offset 1");
    held.find((h) => h.record.offset === "1")!.finish();
    await tick();
    assert.deepEqual(commits, ["0@1", `0@${MAX_DONE_AHEAD + 2}`], "the long turn done: the commit passes every record done after it");
    assert.equal(runs().at(-1), `run 0/${MAX_DONE_AHEAD + 2}`, "and the partition goes on");
  });

  it("runs a record again that ended without being done on a partition it still holds, and commits no further meanwhile", async () => {
    const { scheduler, held, runs, commits, tick } = harness(4, 16);
    scheduler.offer(record(1, 0, "a/x"));
    await tick();
    held[0]!.finish();
    await tick();
    scheduler.offer(record(1, 1, "a/refused"));
    scheduler.offer(record(1, 2, "b/y"));
    await tick();
    // The turn at 1 was left for a next owner (a transaction refused for a group generation
    // that moved on) while this worker kept the partition: nobody else will run it.
    held.find((h) => h.record.offset === "1")!.finish("unsettled");
    held.find((h) => h.record.offset === "2")!.finish();
    await tick();
    await tick();
    assert.deepEqual(commits, ["1@1"], "nothing past offset 1 is committed");
    assert.deepEqual(runs(), ["run 1/0", "run 1/1", "run 1/2", "run 1/1"], "offset 1 runs again");
    held.at(-1)!.finish();
    await tick();
    assert.deepEqual(commits, ["1@1", "1@3"]);
  });

  it("leaves a revoked partition's record that ended without being done to the next owner", async () => {
    const { scheduler, held, runs, tick } = harness(4, 16);
    scheduler.offer(record(1, 0, "a/x"));
    await tick();
    held[0]!.finish();
    await tick();
    scheduler.offer(record(1, 1, "a/handed"));
    await tick();
    await scheduler.revoke([1], { drainMs: 0, lost: false });
    await tick();
    assert.deepEqual(runs(), ["run 1/0", "run 1/1"], "handed over, not run again here");
  });
});

describe("TurnScheduler: fair slots among tenants", () => {
  it("starts the oldest record of the tenant with the fewest turns running, not the oldest record", async () => {
    const { scheduler, held, runs, tick } = harness(2, 64);
    scheduler.offer(record(0, 0, "b/warm"));
    await tick();
    held[0]!.finish();
    await tick();
    for (let i = 1; i <= 6; i++) scheduler.offer(record(0, i, `b/c${i}`));
    scheduler.offer(record(0, 7, "a/c"));
    await tick();
    assert.deepEqual(runs(), ["run 0/0", "run 0/1", "run 0/2"], "b alone had both slots when its records came");
    held.find((h) => h.record.offset === "1")!.finish();
    await tick();
    assert.deepEqual(runs().at(-1), "run 0/7", "a's record, behind four of b's, takes the slot b gave back");
  });

  it("keeps a share of the slots for a tenant between its turns, and gives them back after the window", async () => {
    let now = 0;
    const { scheduler, held, runs, tick } = harness(2, 64, { fairShareWindowMs: 1000, now: () => now });
    scheduler.offer(record(0, 0, "a/c"));
    await tick();
    held[0]!.finish();
    await tick();
    for (let i = 1; i <= 4; i++) scheduler.offer(record(0, i, `b/c${i}`));
    await tick();
    assert.deepEqual(runs(), ["run 0/0", "run 0/1"], "a ended a turn just now: b may hold one slot of two");
    scheduler.offer(record(0, 5, "a/c"));
    await tick();
    assert.deepEqual(runs().at(-1), "run 0/5", "a's next turn finds its slot free");
    held.find((h) => h.record.offset === "5")!.finish();
    await tick();
    assert.equal(runs().length, 3, "b still holds one slot: a ended a turn just now");
    now += 1500;
    held.find((h) => h.record.offset === "1")!.finish();
    await tick();
    assert.deepEqual(runs().slice(-2), ["run 0/2", "run 0/3"], "a quiet for longer than the window: b has both slots");
  });

  it("gives one tenant alone every slot", async () => {
    const { scheduler, held, runs, tick } = harness(3, 64);
    scheduler.offer(record(0, 0, "b/c0"));
    await tick();
    held[0]!.finish();
    await tick();
    for (let i = 1; i <= 4; i++) scheduler.offer(record(0, i, `b/c${i}`));
    await tick();
    assert.equal(runs().length, 4, "three at once after the first");
  });
});
