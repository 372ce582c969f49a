/**
 * A reply handed over at a partition move is continued by the next owner from its text.
 * With greedy sampling the continuation must be exactly the reply the model writes in one
 * go: the same words, and no seam where the continuation's first token lost its leading
 * space (SentencePiece drops it at the start of a detokenized text). Real model, no Kafka.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../platform/logger.js";
import { ensureTestModel } from "../../scripts/models.js";
import { SequenceGenerator, type ChatMessage, type GenerateInput } from "../../worker/generator.js";
import { loadLlm, type LoadedLlm } from "../../worker/llm.js";

describe("generator: continuing a handed-over reply", { timeout: 120_000 }, () => {
  let llm: LoadedLlm;
  let generator: SequenceGenerator;
  const messages: ChatMessage[] = [{ role: "user", content: "Tell me a story about a cat." }];
  const run = (extra: Partial<GenerateInput>) => generator.generate({ messages, params: { temperature: 0 }, defaultMaxTokens: 40, onText: () => {}, ...extra });

  before(async () => {
    llm = await loadLlm(
      { source: await ensureTestModel(), directory: ".cache/models", gpu: false, threads: 1, contextSize: 2048 },
      createLogger("test", "silent"),
    );
    generator = new SequenceGenerator(llm.context.getSequence());
  });
  after(async () => {
    generator?.dispose();
    await llm?.dispose();
  });

  it("continues to the same reply the model writes in one go, seam included", async () => {
    const whole = await run({ params: { temperature: 0, max_tokens: 40 } });
    for (const cut of [5, 12, 23]) {
      const start = await run({ params: { temperature: 0, max_tokens: cut } });
      assert.ok(whole.reply.startsWith(start.reply), "greedy: the start is a prefix of the whole reply");
      let streamed = "";
      const continued = await run({ params: { temperature: 0, max_tokens: 40 - cut }, continueFrom: start.reply, onText: (t) => (streamed += t) });
      assert.equal(continued.reply, whole.reply, `cut after ${cut} tokens: the continued reply is the whole reply`);
      assert.equal(start.reply + streamed, whole.reply, "what is streamed after the start completes it exactly");
    }
  });
});
