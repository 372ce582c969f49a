/**
 * Fencing: a worker that was frozen past its session timeout (a long GC pause, a VM
 * stall, or its broker connection lost while the broker restarted) has been replaced by
 * the time it wakes. Nothing it does then may be taken as applied: one request, one final,
 * each turn once in memory. Reproduces what the chaos run found after a broker restart.
 *
 * Both fences are run: the memory log's (the default: a turn checks that nobody wrote its
 * memory partition since it loaded, then writes) and WORKER_TRANSACTIONS (the turn's
 * records and its request offset in one transaction, which the broker refuses for a
 * replaced member: kafka-transactions.test.ts shows the broker's side alone).
 *
 * The owner is frozen with SIGSTOP either just as a request is produced (the fetch it had
 * outstanding carries the request into its socket buffer) or in the middle of a long
 * reply; the other worker takes the partition over after the session timeout and answers;
 * then the owner is let go.
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

const FENCES: Array<{ name: string; env: Record<string, string> }> = [
  { name: "the memory log's fence", env: {} },
  { name: "transactions (WORKER_TRANSACTIONS)", env: { WORKER_TRANSACTIONS: "true" } },
];

async function metric(worker: Service, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${worker.baseUrl}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => pattern.test(l))
    .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
}

for (const fence of FENCES)
  describe(`a frozen worker wakes up replaced: ${fence.name}`, { timeout: 300_000 }, () => {
    let kafka: TestKafka;
    const workers = new Map<string, Service>();
    let chat: ChatOverKafka;
    const prefix = uniquePrefix("zombie");

    before(async () => {
      kafka = await useKafka();
      const common = stackEnv(kafka, prefix, 1);
      const env = { SESSION_TIMEOUT_MS: "6000", HEARTBEAT_INTERVAL_MS: "1000", DEFAULT_MAX_TOKENS: "8", MEMORY_MAX_TOKENS: "4000", ...fence.env };
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

    /** Whoever answered `requestId` (its last start event's worker: a takeover starts again). */
    function answeredBy(requestId: string): Service {
      const start = [...chat.events.get(requestId)!].reverse().find((e) => e.type === "start");
      const worker = workers.get(start?.type === "start" ? start.worker_id : "");
      assert.ok(worker, `one of the two answered ${requestId}`);
      return worker;
    }

    /** One distinct terminal event for the request, and each user turn once in memory, in order. */
    async function answeredOnce(conversation: string, requestId: string, turns: string[]) {
      const finals = chat.events.get(requestId)!.filter(isTerminalEvent);
      const distinct = finals.filter((f, i) => finals.findIndex((g) => isDeepStrictEqual(f, g)) === i);
      assert.equal(distinct.length, 1, `one answer; got ${distinct.length}: attempts ${distinct.map((d) => d.attempt).join(", ")}`);
      const state = (await chat.readMemory()).get(conversation)!;
      assert.deepEqual(
        state.messages.filter((m) => m.role === "user").map((m) => m.request_id),
        turns,
        "memory holds each turn once",
      );
    }

    it("does not answer a request its successor answered while it was frozen", async (t) => {
      const warm = await chat.terminal(await chat.turn("z-1", "Who owns this?"));
      const owner = answeredBy(warm.request_id);
      await new Promise((r) => setTimeout(r, 300)); // the owner is back in its fetch loop

      owner.proc.kill("SIGSTOP");
      const requestId = await chat.turn("z-1", "Answered once, please.");
      const first = await chat.terminal(requestId, 90_000);
      assert.equal(first.type, "final");
      t.diagnostic(`answered by ${answeredBy(requestId).name} while ${owner.name} was frozen`);

      owner.proc.kill("SIGCONT");
      // Give the woken worker time to do whatever it will do with what it had fetched.
      await new Promise((r) => setTimeout(r, 5000));
      await answeredOnce("z-1", requestId, [warm.request_id, requestId]);
    });

    it("frozen in the middle of a long reply, writes nothing of it when it wakes", async (t) => {
      const warm = await chat.terminal(await chat.turn("z-2", "Who owns this one?"));
      const owner = answeredBy(warm.request_id);
      // Freeze the owner as soon as its reply starts; stories260K writes 1,500 tokens a second,
      // so a reply may already be done by then: try again until the freeze lands mid-reply.
      // Temperature 2 makes the end-of-story token rare, so replies run long.
      let requestId = "";
      for (let attempt = 1; ; attempt++) {
        requestId = await chat.turn("z-2", `Tell me a very long story, take ${attempt}.`, { params: { max_tokens: 1500, temperature: 2, top_k: 0 } });
        await chat.waitFor(requestId, (events) => events.some((e) => e.type === "delta"), 30_000);
        owner.proc.kill("SIGSTOP");
        await new Promise((r) => setTimeout(r, 500)); // what it had sent before it stopped arrives
        if (!chat.events.get(requestId)!.some(isTerminalEvent)) break;
        owner.proc.kill("SIGCONT");
        assert.ok(attempt < 8, "the owner was frozen mid-reply within 8 tries");
      }
      t.diagnostic(`${owner.name} frozen mid-reply`);
      const final = await chat.terminal(requestId, 120_000);
      assert.equal(final.type, "final");
      const successor = answeredBy(requestId);
      assert.notEqual(successor.name, owner.name, "the successor answered the reply the frozen worker had begun");

      owner.proc.kill("SIGCONT");
      await new Promise((r) => setTimeout(r, 5000));
      const turns = (await chat.readMemory()).get("z-2")!.messages.flatMap((m) => (m.role === "user" && m.request_id ? [m.request_id] : []));
      await answeredOnce("z-2", requestId, [...turns.filter((id) => id !== requestId), requestId]);
      assert.equal(turns[0], warm.request_id);
      if (fence.env.WORKER_TRANSACTIONS) {
        assert.ok(
          (await metric(successor, /^kafka_llm_turn_transactions_total\{[^}]*outcome="committed"/)) >= 1,
          "the successor's turns went through transactions",
        );
        t.diagnostic(`the woken worker's refused transactions: ${await metric(owner, /^kafka_llm_turn_transactions_total\{[^}]*outcome="fenced"/)}`);
      }
    });
  });
