import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../../platform/logger.js";
import { TurnScheduler, type RequestRecord, type RevokeCause, type RunVerdict } from "../../../worker/turn-scheduler.js";

const logger = createLogger("test", "silent");
const record = (partition: number, offset: number): RequestRecord => ({ topic: "t", partition, offset: String(offset), key: null, value: null });

/** A turn the test finishes by hand, or that ends when its revoke signal aborts. */
interface Held {
  record: RequestRecord;
  revoke: AbortSignal;
  finish(result?: RunVerdict): void;
}

function harness(concurrency: number, prefetch = 0) {
  const held: Held[] = [];
  const log: string[] = [];
  const firsts: string[] = [];
  const scheduler = new TurnScheduler({
    concurrency,
    logger,
    retryBackoffMs: 1,
    prefetch,
    pause: (p) => log.push(`pause ${p}`),
    resume: (p) => log.push(`resume ${p}`),
    run: (r, revoke, first) =>
      new Promise<RunVerdict>((resolve) => {
        log.push(`run ${r.partition}/${r.offset}`);
        if (first) firsts.push(`${r.partition}/${r.offset}`);
        const h: Held = { record: r, revoke, finish: (result = "done") => resolve(result) };
        revoke.addEventListener("abort", () => {
          log.push(`revoked ${r.partition}/${r.offset} ${(revoke.reason as RevokeCause).kind}`);
          resolve("done");
        });
        held.push(h);
      }),
  });
  const tick = () => new Promise((r) => setTimeout(r, 5));
  return { scheduler, held, log, firsts, tick };
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
  it("pauses a partition only once it holds its running record and `prefetch` more, and starts the next at once", async () => {
    const { scheduler, held, log, tick } = harness(2, 1);
    scheduler.offer(record(0, 1));
    scheduler.offer(record(0, 2));
    await tick();
    assert.deepEqual(log, ["run 0/1", "pause 0"]);
    held[0]!.finish();
    await tick();
    assert.deepEqual(log, ["run 0/1", "pause 0", "run 0/2", "resume 0"], "the held record starts without a fetch");
  });
});
