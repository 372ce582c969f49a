/**
 * Takeover between real worker processes sharing one consumer group on a real broker.
 * SIGKILL in the middle of a generation: every turn is still answered exactly once and
 * in order, and every conversation's memory holds each turn once, in order. SIGTERM: the
 * leaving worker starts nothing new, finishes or hands over what runs, and leaves the
 * group at once, so the other resumes long before the session timeout.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { after, before, describe, it } from "node:test";
import { isTerminalEvent, type ChatEvent, type FinalEvent } from "../../contracts/records/events.js";
import { topicNames } from "../../contracts/topics.js";
import { startBroker } from "../../scripts/kafka-broker.js";
import { stackEnv, startWorker as startTestWorker } from "../helpers/gateway.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

function startWorker(kafka: TestKafka, prefix: string, id: string, env: Record<string, string> = {}): Promise<Service> {
  return startTestWorker(stackEnv(kafka, prefix, 4), { WORKER_SLOTS: "2", MEMORY_MAX_TOKENS: "4000", ...env }, id);
}

async function metric(worker: Service, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${worker.baseUrl}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? "0");
}

/** Resolves once the worker's log says it has begun draining (it has taken the signal). */
async function draining(worker: Service): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!/"state":"draining"/.test(worker.output())) {
    assert.ok(Date.now() < deadline, `${worker.name} never began draining`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function terminals(events: ChatEvent[]) {
  return events.filter(isTerminalEvent);
}

describe("failover", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  before(async () => {
    kafka = await useKafka();
  });
  after(async () => {
    await kafka?.stop();
  });

  it("answers every turn exactly once and in order when a worker is killed mid-generation", async (t) => {
    const prefix = uniquePrefix("kill");
    const env = { SESSION_TIMEOUT_MS: "6000", HEARTBEAT_INTERVAL_MS: "1000", DEFAULT_MAX_TOKENS: "200" };
    const a = await startWorker(kafka, prefix, "worker-a", env);
    const b = await startWorker(kafka, prefix, "worker-b", env);
    const chat = new ChatOverKafka(kafka, topicNames(prefix));
    await chat.start();
    try {
      const conversations = Array.from({ length: 20 }, (_, i) => `conv-${i}`);
      const sent = new Map<string, string[]>(); // conversation → request ids, in order
      for (let turn = 1; turn <= 3; turn++) {
        for (const c of conversations) {
          const id = await chat.turn(c, `Turn ${turn} of ${c}: tell me more.`);
          sent.set(c, [...(sent.get(c) ?? []), id]);
        }
      }
      // Long replies on conversations of their own, so that a kill lands mid-generation for
      // certain: A is killed once one of its long replies has streamed text and not ended.
      const long = await Promise.all(Array.from({ length: 4 }, (_, i) => chat.turn(`long-${i}`, "A long story, please.", { params: { max_tokens: 1500 } })));
      const all = [...[...sent.values()].flat(), ...long];
      const deadline = Date.now() + 90_000;
      const generatingOnA = () =>
        long.find((id) => {
          const events = chat.events.get(id) ?? [];
          const start = events.find((e) => e.type === "start");
          return start?.type === "start" && start.worker_id === "worker-a" && events.some((e) => e.type === "delta") && !events.some(isTerminalEvent);
        });
      let victim: string | undefined;
      while (!(victim = generatingOnA())) {
        assert.ok(Date.now() < deadline, "worker A never streamed a long reply");
        await new Promise((r) => setTimeout(r, 5));
      }
      await a.stop("SIGKILL");

      for (const id of all) await chat.terminal(id, 120_000);
      // Let late duplicates (re-announcements) arrive before counting.
      await new Promise((r) => setTimeout(r, 1500));

      let rerun = 0;
      for (const id of all) {
        const events = chat.events.get(id)!;
        const finals = terminals(events);
        assert.equal(finals[0]!.type, "final", `request ${id} failed: ${JSON.stringify(finals[0])}`);
        assert.ok(
          finals.every((f) => isDeepStrictEqual(f, finals[0])),
          `request ${id} has ${finals.length} different answers`,
        );
        if (new Set(events.map((e) => e.attempt)).size > 1) rerun++;
      }
      assert.ok(rerun >= 1, "the killed worker's generation was run again by the survivor");
      assert.equal(new Set(chat.events.get(victim)!.map((e) => e.attempt)).size, 2, "the reply A was streaming was run again by B");
      t.diagnostic(`${all.length} turns answered once each; ${rerun} re-run after the kill`);

      const memory = await chat.readMemory();
      for (const [c, ids] of sent) {
        const state = memory.get(c)!;
        assert.deepEqual(
          state.messages.map((m) => `${m.role}:${m.request_id}`),
          ids.flatMap((id) => [`user:${id}`, `assistant:${id}`]),
          `memory of ${c} holds each turn once, in order`,
        );
        for (const id of ids) {
          const reply = (terminals(chat.events.get(id)!)[0] as FinalEvent).reply;
          assert.equal(state.messages.find((m) => m.role === "assistant" && m.request_id === id)!.content, reply);
        }
        assert.equal(state.turns, 3);
      }
    } finally {
      await chat.stop();
      await a.stop("SIGKILL");
      await b.stop();
    }
  });

  it("hands partitions over on SIGTERM so the other worker resumes within 5 s", async (t) => {
    const prefix = uniquePrefix("term");
    // A long session timeout: without the leave on SIGTERM the takeover would wait 30 s.
    const env = { SESSION_TIMEOUT_MS: "30000", HEARTBEAT_INTERVAL_MS: "3000", DEFAULT_MAX_TOKENS: "16" };
    const a = await startWorker(kafka, prefix, "worker-a", env);
    const b = await startWorker(kafka, prefix, "worker-b", env);
    const chat = new ChatOverKafka(kafka, topicNames(prefix));
    await chat.start();
    try {
      // Warm up: both workers own partitions and have answered.
      const warm = await Promise.all(Array.from({ length: 8 }, (_, i) => chat.turn(`c-${i}`, "hello")));
      const owners = new Set<string>();
      for (const id of warm) {
        await chat.terminal(id);
        const start = chat.events.get(id)!.find((e) => e.type === "start");
        if (start?.type === "start") owners.add(start.worker_id);
      }
      assert.deepEqual([...owners].sort(), ["worker-a", "worker-b"], "both workers had partitions");

      const t0 = Date.now();
      const exited = a.stop("SIGTERM");
      // Requests sent once A has taken the signal: A may finish what it had started, but
      // never starts one of these.
      await draining(a);
      const after = await Promise.all(Array.from({ length: 8 }, (_, i) => chat.turn(`c-${i}`, "still there?")));
      assert.equal(await exited, 0, "worker A shut down cleanly");
      let latest = 0;
      for (const id of after) {
        await chat.terminal(id, 30_000);
        const start = chat.events.get(id)!.find((e) => e.type === "start")!;
        assert.equal(start.type === "start" && start.worker_id, "worker-b");
        latest = Math.max(latest, start.at - t0);
      }
      t.diagnostic(`handover: worker B started A's requests within ${latest} ms of SIGTERM`);
      assert.ok(latest <= 5000, `worker B started the last of A's requests ${latest} ms after SIGTERM`);
    } finally {
      await chat.stop();
      await a.stop("SIGKILL");
      await b.stop();
    }
  });

  for (const [graceMs, expectation] of [
    ["25000", "finishes the running turn within the grace period, then leaves"],
    ["0", "hands a turn still running when the grace period ends over to the next owner, which continues the same reply"],
  ] as const) {
    it(`on SIGTERM ${expectation}`, async () => {
      const prefix = uniquePrefix(`grace${graceMs}`);
      const env = { SESSION_TIMEOUT_MS: "30000", HEARTBEAT_INTERVAL_MS: "1000", SHUTDOWN_GRACE_MS: graceMs };
      const workers = new Map<string, Service>();
      workers.set("worker-a", await startWorker(kafka, prefix, "worker-a", env));
      workers.set("worker-b", await startWorker(kafka, prefix, "worker-b", env));
      const chat = new ChatOverKafka(kafka, topicNames(prefix));
      await chat.start();
      try {
        const requestId = await chat.turn("grace-1", "A long story, please.", { params: { max_tokens: 1500 } });
        const events = await chat.waitFor(requestId, (list) => list.some((e) => e.type === "delta"));
        const start = events.find((e) => e.type === "start");
        const owner = start?.type === "start" ? start.worker_id : "";
        const other = owner === "worker-a" ? "worker-b" : "worker-a";
        assert.equal(await workers.get(owner)!.stop("SIGTERM"), 0, "clean exit");

        const final = await chat.terminal(requestId, 60_000);
        await new Promise((r) => setTimeout(r, 1000));
        const all = chat.events.get(requestId)!;
        const finals = terminals(all);
        assert.equal(final.type, "final");
        assert.ok(
          finals.every((f) => isDeepStrictEqual(f, finals[0])),
          "one answer",
        );
        const finalStart = all.find((e) => e.type === "start" && e.attempt === final.attempt);
        const answeredBy = finalStart?.type === "start" ? finalStart.worker_id : "";
        assert.equal(answeredBy, owner, "the reply began on the terminating worker");
        assert.equal(new Set(all.map((e) => e.attempt)).size, 1, "one attempt: the reply was never started again");
        assert.equal(all.filter((e) => e.type === "start").length, 1, "one start event");
        // One unbroken reply: seqs without gaps, and the deltas spell the final reply.
        const ordered = [...new Map(all.map((e) => [e.seq, e])).values()].sort((x, y) => x.seq - y.seq);
        assert.deepEqual(
          ordered.map((e) => e.seq),
          ordered.map((_, i) => i),
          "seqs run on without a gap",
        );
        const streamed = ordered.map((e) => (e.type === "delta" ? e.text : "")).join("");
        assert.equal(streamed, (final as FinalEvent).reply, "the streamed deltas are the final reply");
        const continued = await metric(workers.get(other)!, /^kafka_llm_handovers_total\{[^}]*direction="in"[^}]*\} (\d+)/m);
        if (graceMs === "0") {
          assert.equal(continued, 1, "the next owner continued the handed-over reply");
          assert.match(workers.get(owner)!.output(), /reply handed over to the next owner/);
        } else {
          assert.equal(continued, 0, "nothing was handed over");
        }
        const state = (await chat.readMemory()).get("grace-1")!;
        assert.deepEqual(
          state.messages.map((m) => `${m.role}:${m.request_id}`),
          [`user:${requestId}`, `assistant:${requestId}`],
        );
      } finally {
        await chat.stop();
        for (const w of workers.values()) await w.stop("SIGKILL");
      }
    });
  }

  it("keeps its partitions through a generation longer than the session timeout", async (t) => {
    // A broker of its own whose consumer groups have a 500 ms session, so a ~1 s generation
    // outlasts it twice: the worker stays in the group only because heartbeats never wait
    // on a generation.
    const broker = await startBroker({
      serverProperties: {
        "group.consumer.session.timeout.ms": "500",
        "group.consumer.min.session.timeout.ms": "500",
        "group.consumer.heartbeat.interval.ms": "100",
        "group.consumer.min.heartbeat.interval.ms": "100",
      },
    });
    const own: TestKafka = broker;
    const prefix = uniquePrefix("long");
    const worker = await startWorker(own, prefix, "worker-long", { WORKER_SLOTS: "1" });
    const chat = new ChatOverKafka(own, topicNames(prefix));
    await chat.start();
    try {
      const requestId = await chat.turn("long-1", "The longest story you know.", { params: { max_tokens: 1900 } });
      const final = await chat.terminal(requestId, 120_000);
      assert.equal(final.type, "final");
      const f = final as FinalEvent;
      t.diagnostic(`generation took ${f.timings.generation_ms} ms against a 500 ms session timeout`);
      assert.ok(f.timings.generation_ms > 500, "the generation outlasted the session timeout");
      const events = chat.events.get(requestId)!;
      assert.equal(new Set(events.map((e) => e.attempt)).size, 1, "never handed to another attempt");
      const metrics = await (await fetch(`${worker.baseUrl}/metrics`)).text();
      assert.match(metrics, /^kafka_llm_rebalances_total\{[^}]*\} 1$/m, "no rebalance: the worker never lost its partitions");
    } finally {
      await chat.stop();
      await worker.stop();
      await own.stop();
    }
  });
});
