/**
 * The broker stops and comes back (same port, same data) while a worker runs, once while
 * it is idle and once in the middle of a generation. The worker reconnects by itself, and
 * every turn is answered once and remembered once, in order.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { after, before, describe, it } from "node:test";
import { isTerminalEvent } from "../../contracts/records/events.js";
import { topicNames } from "../../contracts/topics.js";
import { startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { stackEnv, startWorker } from "../helpers/gateway.js";
import { uniquePrefix } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

describe("broker restart", { timeout: 300_000 }, () => {
  let dataDir: string;
  let port: number;
  let broker: RunningBroker;
  let worker: Service;
  let chat: ChatOverKafka;
  const prefix = uniquePrefix("restart");

  const restart = async (downMs: number) => {
    await broker.stop();
    await new Promise((r) => setTimeout(r, downMs));
    broker = await startBroker({ port, dataDir });
  };

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-restart-"));
    broker = await startBroker({ dataDir });
    port = broker.port;
    worker = await startWorker(stackEnv(broker, prefix, 2), {
      MEMORY_MAX_TOKENS: "4000",
      DEFAULT_MAX_TOKENS: "16",
    });
    chat = new ChatOverKafka(broker, topicNames(prefix));
    await chat.start();
  });

  after(async () => {
    await chat?.stop().catch(() => {});
    await worker?.stop();
    await broker?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("keeps answering, exactly once, across broker restarts without restarting the worker", async () => {
    try {
      await scenario();
    } catch (err) {
      // The worker's own account of the outage is what explains a failure here.
      const log = worker
        .output()
        .split("\n")
        .filter((l) => /"level":(40|50|60)|restart|crash|rejoin|partitions|"msg":"worker /i.test(l))
        .filter((l) => !/Connect to ipv4/.test(l))
        .slice(-60)
        .join("\n");
      throw new Error(`${(err as Error).message}\n--- worker warnings and errors ---\n${log}`, { cause: err });
    }
  });

  async function scenario(): Promise<void> {
    const sent: string[] = [];
    const ask = async (content: string, maxTokens?: number) => {
      const id = await chat.turn("restart-1", content, maxTokens ? { params: { max_tokens: maxTokens } } : {});
      sent.push(id);
      return id;
    };
    for (let i = 0; i < 3; i++) await chat.terminal(await ask(`before ${i}`));

    await restart(2000); // while idle
    for (let i = 0; i < 3; i++) await chat.terminal(await ask(`after idle restart ${i}`), 120_000);

    const long = await ask("a long one, interrupted by the broker", 1500);
    await chat.waitFor(long, (events) => events.some((e) => e.type === "delta"), 60_000);
    await restart(2000); // mid-generation
    await chat.terminal(long, 180_000);
    await chat.terminal(await ask("after the second restart"), 120_000);
    await new Promise((r) => setTimeout(r, 1500));

    for (const id of sent) {
      const finals = chat.events.get(id)!.filter(isTerminalEvent);
      assert.equal(finals[0]!.type, "final", JSON.stringify(finals[0]));
      assert.ok(
        finals.every((f) => isDeepStrictEqual(f, finals[0])),
        `request ${id}: one answer`,
      );
    }
    const state = (await chat.readMemory()).get("restart-1")!;
    assert.deepEqual(
      state.messages.map((m) => `${m.role}:${m.request_id}`),
      sent.flatMap((id) => [`user:${id}`, `assistant:${id}`]),
      "memory holds every turn once, in order",
    );
    assert.equal(worker.proc.exitCode, null, "the worker was never restarted");
  }
});
