/**
 * The project on another Kafka 4 release than the default (Kafka 4 removed old protocol
 * versions): a real worker serves real turns against a real 4.1.0 broker (topic creation
 * and checks, consumer groups with commits, the compacted memory topic, the fence-based
 * restore).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { topicNames } from "../../contracts/topics.js";
import { startBroker, type RunningBroker } from "../../scripts/kafka-broker.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { stackEnv, startWorker } from "../helpers/gateway.js";
import { uniquePrefix } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KAFKA_4 = "4.1.0";

describe(`Kafka ${KAFKA_4}`, { timeout: 240_000 }, () => {
  let broker: RunningBroker;
  let worker: Service;
  let chat: ChatOverKafka;
  const prefix = uniquePrefix("k4");

  before(async () => {
    broker = await startBroker({ version: KAFKA_4 });
    worker = await startWorker(stackEnv(broker, prefix), { MEMORY_MAX_TOKENS: "4000", DEFAULT_MAX_TOKENS: "16" }, "worker-k4");
    chat = new ChatOverKafka(broker, topicNames(prefix));
    await chat.start();
  });

  after(async () => {
    await chat?.stop();
    await worker?.stop();
    await broker?.stop();
  });

  it("serves turns, remembers them, and restores them after a worker restart", async () => {
    const first = await chat.terminal(await chat.turn("k4-1", "Hello, Kafka four."));
    assert.equal(first.type, "final");
    assert.equal(await worker.stop(), 0);
    worker = await startWorker(stackEnv(broker, prefix), { MEMORY_MAX_TOKENS: "4000", DEFAULT_MAX_TOKENS: "16" }, "worker-k4b");
    const second = await chat.terminal(await chat.turn("k4-1", "And again."));
    assert.equal(second.type, "final");
    const state = (await chat.readMemory()).get("k4-1")!;
    assert.deepEqual(
      state.messages.map((m) => m.content).filter((_, i) => i % 2 === 0),
      ["Hello, Kafka four.", "And again."],
    );
    assert.ok(second.type === "final" && second.usage.prompt_tokens > first.usage.prompt_tokens, "the restored history is in the prompt");
  });
});
