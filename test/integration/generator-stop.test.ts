/**
 * Stop triggers with the real model (stories260K, greedy, so every run writes the same
 * text): a reply ends where a trigger begins, the trigger itself is neither streamed nor
 * kept, and the stop is reported as "stop". The chat template's turn headers, added to
 * every generation's triggers, are checked against node-llama-cpp's own chat wrappers in
 * test/unit/worker/turn-stop-triggers.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getLlama, type Llama, type LlamaContext, type LlamaModel } from "node-llama-cpp";
import { ensureTestModel } from "../../scripts/models.js";
import { SequenceGenerator, type ChatMessage } from "../../worker/generator.js";

const messages: ChatMessage[] = [{ role: "user", content: "Tell me a story." }];
const params = { temperature: 0, max_tokens: 60 };

describe("generator stop triggers (stories260K)", { timeout: 120_000 }, () => {
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;

  before(async () => {
    llama = await getLlama({ gpu: false, build: "never", maxThreads: 1 });
    model = await llama.loadModel({ modelPath: await ensureTestModel() });
    context = await model.createContext({ contextSize: 512, sequences: 2, threads: 1, flashAttention: false });
  });
  after(async () => {
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
  });

  async function reply(generator: SequenceGenerator) {
    let streamed = "";
    const result = await generator.generate({ messages, params, defaultMaxTokens: 60, onText: (t) => (streamed += t) });
    return { ...result, streamed };
  }

  it("ends the reply where a STOP_TRIGGERS text begins, without streaming or keeping the trigger", async () => {
    const plain = new SequenceGenerator(context.getSequence());
    const full = await reply(plain);
    plain.dispose();
    assert.equal(full.stopReason, "length", "without a trigger the reply runs to max_tokens");
    // A word from the middle of the greedy reply, as the trigger.
    const words = full.reply.split(/\s+/).filter((w) => /^[a-z]{3,}$/.test(w));
    const trigger = ` ${words[Math.floor(words.length / 2)]!}`;
    const cut = full.reply.indexOf(trigger);
    assert.ok(cut > 0, `"${trigger}" is in ${JSON.stringify(full.reply)}`);

    const stopping = new SequenceGenerator(context.getSequence(), { stopTriggers: [trigger] });
    const stopped = await reply(stopping);
    stopping.dispose();
    assert.equal(stopped.reply, full.reply.slice(0, cut));
    assert.equal(stopped.streamed, stopped.reply, "the clients saw exactly the kept reply");
    assert.equal(stopped.stopReason, "stop");
    assert.ok(stopped.completionTokens < full.completionTokens);
  });
});
