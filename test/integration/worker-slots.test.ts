/**
 * Slots never cross conversations: a real worker (stories260K, WORKER_SLOTS=2) serves many
 * conversations of two tenants, turns interleaved across six partitions, some cancelled
 * mid-reply, so slots are reclaimed all the time. For every reply the prompt evaluation
 * must be what that conversation's own prompt needs given what its slot held:
 *
 *   - the cached prompt tokens reported in the final event equal the longest common
 *     prefix of the new prompt and the prompt the slot evaluated last (its own previous
 *     turn, or another conversation's of the same tenant), never more: another
 *     conversation's tokens are reused only as far as they are the same tokens (the chat
 *     template's start);
 *   - a slot that held another tenant's tokens reuses none of them (it is cleared first;
 *     while both tenants are active each keeps a share of the slots, so the test also runs
 *     each tenant alone, when it may take the other's slot);
 *   - when the slot held this conversation's previous turn, the whole previous prompt is
 *     reused, and at most what was generated after it;
 *   - a conversation's turn goes back to the slot holding its previous turn whenever no
 *     other turn has taken that slot since.
 *
 * Which slot ran a turn comes from the worker's debug log ("slot taken"); the prompts are
 * rendered here with the worker's own prompt building and chat template (promptFor,
 * SequenceGenerator.promptTokens) on the same GGUF.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getLlama, type Llama, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import type { FinalEvent } from "../../contracts/records/events.js";
import type { MemoryMessage } from "../../contracts/records/memory.js";
import { topicNames } from "../../contracts/topics.js";
import { ensureTestModel } from "../../scripts/models.js";
import { newConversation, promptFor } from "../../worker/conversation.js";
import { SequenceGenerator } from "../../worker/generator.js";
import { FAIR_SHARE_WINDOW_MS } from "../../worker/turn-scheduler.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { stackEnv, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const PARTITIONS = 6;
const CONVERSATIONS = 8;
const ROUNDS = 5;
/** Rounds of the first two conversations alone before the others join. */
const ALONE_ROUNDS = 3;
/** Rounds of each tenant alone (all its conversations at once) after that. */
const TENANT_ROUNDS = 2;
const USER = ["Tell me a story.", "What happened next?", "Who was there?", "And then?", "Why did they go?"];
const ANIMALS = ["cat", "dog", "bird", "fish", "frog", "horse", "duck", "bear"];

interface Conversation {
  id: string;
  tenant: string;
  system: string;
  messages: MemoryMessage[];
}

interface Turn {
  requestId: string;
  conversation: Conversation;
  prompt: Token[];
  final: FinalEvent;
}

function commonPrefix(a: readonly Token[], b: readonly Token[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

describe("slots never cross conversations, nor tenants", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let worker: Service;
  let chat: ChatOverKafka;
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;
  let renderer: SequenceGenerator;
  const prefix = uniquePrefix("slots");
  const topics = topicNames(prefix);
  const defaultSystem = loadWorkerConfig({ MODEL: "x.gguf", WORKER_HTTP_HOST: "127.0.0.1" }).memory.systemPrompt;

  before(async () => {
    kafka = await useKafka();
    worker = await startWorker(
      stackEnv(kafka, prefix, PARTITIONS),
      // No trimming: a conversation's previous prompt is always the start of its next one.
      { WORKER_SLOTS: "2", MEMORY_MAX_TOKENS: "100000", DEFAULT_MAX_TOKENS: "12", DELTA_FLUSH_MS: "5", LOG_LEVEL: "debug" },
      "worker-slots",
    );
    chat = new ChatOverKafka(kafka, topics);
    await chat.start();
    llama = await getLlama({ gpu: false, build: "never" });
    model = await llama.loadModel({ modelPath: await ensureTestModel() });
    context = await model.createContext({ contextSize: 512 });
    renderer = new SequenceGenerator(context.getSequence());
  });

  after(async () => {
    renderer?.dispose();
    await context?.dispose();
    await model?.dispose();
    await chat?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("reuses a slot's tokens only as far as they are this conversation's prompt, and goes back to its own slot", async () => {
    const conversations: Conversation[] = Array.from({ length: CONVERSATIONS }, (_, i) => ({
      id: `slots-${i}`,
      tenant: i % 2 === 0 ? "t1" : "t2",
      system: `${ANIMALS[i]} stories: you tell short tales about a ${ANIMALS[i]} named ${String.fromCharCode(65 + i)}.`,
      messages: [],
    }));
    const turns = new Map<string, Turn>();
    let cancelled = 0;

    /** One turn of `c`, from its own history; `cancel`: a long reply, cancelled at its first delta. */
    const runTurn = async (c: Conversation, round: number, cancel: boolean) => {
      const content = USER[round % USER.length]!;
      const state = { ...newConversation(c.id, c.tenant, 0, c.system), messages: c.messages };
      const prompt = renderer.promptTokens(promptFor(state, content, defaultSystem));
      const requestId = await chat.turn(c.id, content, {
        tenant: c.tenant,
        system: c.system,
        ...(cancel ? { params: { max_tokens: 400 } } : {}),
      });
      if (cancel) {
        await chat.waitFor(requestId, (events) => events.some((e) => e.type === "delta" || e.type === "final"));
        await chat.cancel(requestId, c.tenant);
      }
      const final = await chat.terminal(requestId);
      assert.equal(final.type, "final", `turn ${requestId}: ${JSON.stringify(final)}`);
      const f = final as FinalEvent;
      if (f.stop_reason === "cancelled") cancelled++;
      // What the worker remembers: the user message, and the reply when there is one.
      c.messages = [...c.messages, { role: "user", content, at: 0 }, ...(f.reply ? [{ role: "assistant" as const, content: f.reply, at: 0 }] : [])];
      turns.set(requestId, { requestId, conversation: c, prompt, final: f });
    };

    // Rounds: first two conversations alone, one turn at a time (each keeps its slot: with
    // LRU picking, their 2nd and 3rd turns find their own, so at least 4 such turns whatever
    // happens later), then all of them at once (each conversation's turns in order,
    // conversations interleaved, every third a cancel).
    for (let round = 0; round < ALONE_ROUNDS; round++) for (const c of conversations.slice(0, 2)) await runTurn(c, round, false);
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(conversations.map((c, i) => runTurn(c, round, (i + round) % 3 === 0 && round > 0)));
    }
    // Then each tenant alone, all its conversations at once: once the other tenant has been
    // quiet past the fair-share window, one tenant has both slots (worker/turn-scheduler.ts),
    // so its turns take the slot the other tenant used last, which is cleared first.
    for (let round = 0; round < TENANT_ROUNDS; round++) {
      for (const tenant of ["t1", "t2"]) {
        await new Promise((r) => setTimeout(r, FAIR_SHARE_WINDOW_MS + 500));
        await Promise.all(conversations.filter((c) => c.tenant === tenant).map((c) => runTurn(c, ROUNDS + round, false)));
      }
    }
    for (const c of conversations.slice(0, 2)) await runTurn(c, ALONE_ROUNDS + ROUNDS + TENANT_ROUNDS, false);

    // Which slot ran which turn, in the order the worker took them.
    const taken = worker.logs
      .map((l) => l.record)
      .filter((r) => r.msg === "slot taken" && turns.has(r.request_id as string))
      .map((r) => ({ slot: r.slot as number, turn: turns.get(r.request_id as string)! }));
    assert.equal(taken.length, turns.size, "every turn took a slot once");

    const lastOnSlot = new Map<number, Turn>();
    const lastSlotOf = new Map<string, { slot: number; at: number }>();
    let ownSlot = 0;
    let reclaimed = 0;
    let tenantSwitches = 0;
    for (const [at, { slot, turn }] of taken.entries()) {
      const label = `${turn.conversation.id} turn ${turn.requestId} on slot ${slot}`;
      const cached = turn.final.usage.cached_prompt_tokens;
      assert.equal(turn.final.usage.prompt_tokens, turn.prompt.length, `${label}: the worker's prompt is the one built here`);
      const previous = lastOnSlot.get(slot);
      if (!previous) {
        assert.equal(cached, 0, `${label}: a fresh slot has nothing to reuse`);
      } else if (previous.conversation.tenant !== turn.conversation.tenant) {
        tenantSwitches++;
        assert.equal(cached, 0, `${label}: the slot held tenant ${previous.conversation.tenant}'s tokens, none of which is reused`);
      } else {
        const lcp = commonPrefix(previous.prompt, turn.prompt);
        if (previous.conversation !== turn.conversation) {
          reclaimed++;
          assert.ok(lcp < previous.prompt.length, `${label}: another conversation's prompt is never a prefix of this one`);
        }
        if (lcp < previous.prompt.length) {
          // The slot's tokens part from this prompt inside the previous prompt: exactly the common part is reused.
          assert.equal(cached, lcp, `${label}: reused ${cached} tokens of what ${previous.conversation.id} left, ${lcp} in common`);
        } else {
          ownSlot++;
          assert.ok(
            cached >= lcp && cached <= lcp + previous.final.usage.completion_tokens && cached < turn.prompt.length,
            `${label}: its own previous turn's ${lcp} prompt tokens are reused (and at most its ${previous.final.usage.completion_tokens} generated ones): ${cached}`,
          );
        }
      }
      // Back to its own slot when nobody took that slot since its previous turn.
      const mine = lastSlotOf.get(turn.conversation.id);
      if (mine && mine.slot !== slot) {
        const takenSince = taken.slice(mine.at + 1, at).some((t) => t.slot === mine.slot);
        assert.ok(takenSince, `${label}: its previous turn's slot ${mine.slot} was free and still held it`);
      }
      lastOnSlot.set(slot, turn);
      lastSlotOf.set(turn.conversation.id, { slot, at });
    }
    assert.ok(ownSlot >= 4, `turns that found their own previous turn in their slot: ${ownSlot}`);
    assert.ok(reclaimed >= 4, `turns on a slot reclaimed from another conversation of the tenant: ${reclaimed}`);
    assert.ok(tenantSwitches >= 4, `turns on a slot another tenant used last: ${tenantSwitches}`);
    assert.ok(cancelled >= 1, `cancelled mid-reply: ${cancelled}`);
  });
});
