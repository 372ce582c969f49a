/**
 * Fencing: a worker that was frozen past its session timeout (a long GC pause, a VM
 * stall, or its broker connection lost while the broker restarted) has been replaced by
 * the time it wakes. It must not answer a request its successor already answered: one
 * request, one final. Reproduces what the chaos run found after a broker restart.
 *
 * The owner is frozen with SIGSTOP just as a request is produced, so the fetch it had
 * outstanding carries that request into its socket buffer; the other worker takes the
 * partition over after the session timeout and answers it; then the owner is let go.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { after, before, describe, it } from "node:test";
import { isTerminalEvent } from "../../contracts/records/events.js";
import { topicNames } from "../../contracts/topics.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { stackEnv, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

describe("a frozen worker wakes up replaced", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  const workers = new Map<string, Service>();
  let chat: ChatOverKafka;
  const prefix = uniquePrefix("zombie");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix, 1);
    const env = { SESSION_TIMEOUT_MS: "6000", HEARTBEAT_INTERVAL_MS: "1000", DEFAULT_MAX_TOKENS: "8", MEMORY_MAX_TOKENS: "4000" };
    workers.set("zombie-a", await startWorker(common, env, "zombie-a"));
    workers.set("zombie-b", await startWorker(common, env, "zombie-b"));
    chat = new ChatOverKafka(kafka, topicNames(prefix));
    await chat.start();
  });

  after(async () => {
    await chat?.stop();
    for (const w of workers.values()) {
      w.proc.kill("SIGCONT");
      await w.stop("SIGKILL");
    }
    await kafka?.stop();
  });

  it("does not answer a request its successor answered while it was frozen", async (t) => {
    const warm = await chat.terminal(await chat.turn("z-1", "Who owns this?"));
    const start = chat.events.get(warm.request_id)!.find((e) => e.type === "start");
    const owner = workers.get(start?.type === "start" ? start.worker_id : "")!;
    assert.ok(owner, "one of the two owns the partition");
    await new Promise((r) => setTimeout(r, 300)); // the owner is back in its fetch loop

    owner.proc.kill("SIGSTOP");
    const requestId = await chat.turn("z-1", "Answered once, please.");
    const first = await chat.terminal(requestId, 90_000);
    assert.equal(first.type, "final");
    const firstStart = chat.events.get(requestId)!.find((e) => e.type === "start");
    t.diagnostic(`answered by ${firstStart?.type === "start" ? firstStart.worker_id : "?"} while ${owner.name} was frozen`);

    owner.proc.kill("SIGCONT");
    // Give the woken worker time to do whatever it will do with what it had fetched.
    await new Promise((r) => setTimeout(r, 5000));
    const finals = chat.events.get(requestId)!.filter(isTerminalEvent);
    const distinct = finals.filter((f, i) => finals.findIndex((g) => isDeepStrictEqual(f, g)) === i);
    assert.equal(distinct.length, 1, `one answer; got ${distinct.length}: ${distinct.map((d) => d.attempt).join(", ")}`);
    const state = (await chat.readMemory()).get("z-1")!;
    assert.deepEqual(
      state.messages.filter((m) => m.role === "user").map((m) => m.request_id),
      [warm.request_id, requestId],
      "memory holds each turn once",
    );
  });
});
