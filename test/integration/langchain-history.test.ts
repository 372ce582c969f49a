/**
 * The LangChain.js package (packages/langchain-kafka-history) with the real
 * @langchain/core against a real gateway (two replicas), broker and worker on
 * stories260K: add, get and clear; reads from the beginning, the latest and a named
 * reader's last consumed position, bounded by count and by time, paging past the
 * gateway's 500 a page; a reader's position held in Kafka across history objects and
 * replicas; the gateway's errors; and RunnableWithMessageHistory holding a conversation
 * over several turns, its model the gateway's OpenAI route through ChatOpenAI.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { AIMessage, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from "@langchain/core/messages";
import { ChatPromptTemplate, MessagesPlaceholder } from "@langchain/core/prompts";
import { RunnableLambda, RunnableWithMessageHistory } from "@langchain/core/runnables";
import { ChatOpenAI } from "@langchain/openai";
import { KafkaChatHistoryError, KafkaChatMessageHistory, type KafkaChatMessageHistoryInput } from "../../packages/langchain-kafka-history/src/index.js";
import { apiClient, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "langchain-history-key-3";
const OTHER_KEY = "langchain-history-other-9";
const MODEL = "stories-260k";
const MAX_CONTENT_CHARS = 4_000;

/** What a list of messages says, as "type:content" strings, for one assert that shows both sides. */
const said = (messages: BaseMessage[]) => messages.map((m) => `${m._getType()}:${String(m.content)}`);
const convo = (name: string) => `lc-${name}-${randomBytes(3).toString("hex")}`;

describe("KafkaChatMessageHistory (LangChain.js) against a real gateway, broker and worker", { timeout: 600_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let replica: Service;
  let worker: Service;
  const prefix = uniquePrefix("langchain-history");

  const history = (sessionId: string, extra: Partial<KafkaChatMessageHistoryInput> = {}) =>
    new KafkaChatMessageHistory({ baseUrl: gateway.baseUrl, sessionId, apiKey: KEY, ...extra });

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix, 2);
    const env = { GATEWAY_API_KEYS: `team:${KEY},other:${OTHER_KEY}`, MODEL_NAME: MODEL, GATEWAY_MAX_CONTENT_CHARS: String(MAX_CONTENT_CHARS) };
    gateway = await startGateway(common, env, "gateway-a");
    // The replica answers every change with 202 at once (it waits 0 ms for the worker), so the package's wait on status_url is what holds.
    replica = await startGateway(common, { ...env, GATEWAY_APPLY_WAIT_MS: "0" }, "gateway-b");
    worker = await startWorker(common, { DELTA_FLUSH_MS: "10" });
  });

  after(async () => {
    await gateway?.stop();
    await replica?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("adds messages (one at a time and many in one request), gets them all in order and clears them", async () => {
    const id = convo("basic");
    const h = history(id);
    assert.deepEqual(await h.getMessages(), [], "a conversation that does not exist yet is empty");

    await h.addMessages([new SystemMessage("You tell stories."), new HumanMessage("Tell me about a cat."), new AIMessage("Once there was a cat.")]);
    await h.addMessage(new HumanMessage("And then?"));
    await h.addUserMessage("Go on.");
    await h.addAIMessage("The cat slept.");
    const expected = [
      "system:You tell stories.",
      "human:Tell me about a cat.",
      "ai:Once there was a cat.",
      "human:And then?",
      "human:Go on.",
      "ai:The cat slept.",
    ];
    assert.deepEqual(said(await h.getMessages()), expected);
    const again = await history(id).getMessages(); // another object, same conversation
    assert.deepEqual(said(again), expected);
    assert.ok(again[0] instanceof SystemMessage && again[1] instanceof HumanMessage && again[2] instanceof AIMessage);

    // What the package sent is what the gateway's own API holds: roles, order, indexes.
    const raw = await apiClient(gateway.baseUrl, KEY)("GET", `/v1/conversations/${id}/messages?from=beginning`);
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(
      raw.body.messages.map((m: { index: number; role: string }) => `${m.index}:${m.role}`),
      ["0:system", "1:user", "2:assistant", "3:user", "4:user", "5:assistant"],
    );

    // Another tenant with the same session id has a conversation of its own: empty, then its own messages only.
    const foreign = new KafkaChatMessageHistory({ baseUrl: gateway.baseUrl, sessionId: id, apiKey: OTHER_KEY });
    assert.deepEqual(await foreign.getMessages(), []);
    await foreign.addMessage(new HumanMessage("mine now"));
    assert.deepEqual(said(await foreign.getMessages()), ["human:mine now"]);
    assert.deepEqual(said(await h.getMessages()), expected, "the other tenant's append changed nothing of this one");
    await foreign.clear();
    assert.deepEqual(said(await h.getMessages()), expected, "nor did its clear");

    await h.clear();
    assert.deepEqual(await h.getMessages(), [], "cleared at once");
    await h.clear(); // nothing left to clear: no error
    await h.addMessage(new HumanMessage("A new start."));
    assert.deepEqual(said(await h.getMessages()), ["human:A new start."], "a cleared conversation starts empty");
  });

  it("waits for a change the gateway only queued (202) until a worker applied it: the next read sees it", async () => {
    const id = convo("queued");
    const onReplica = new KafkaChatMessageHistory({ baseUrl: replica.baseUrl, sessionId: id, apiKey: KEY });
    const api = apiClient(replica.baseUrl, KEY);
    const queued = await api("POST", `/v1/conversations/${id}/history`, { messages: [{ role: "user", content: "first, by hand" }] });
    assert.equal(queued.status, 202, `the replica does not wait for the worker: ${queued.text}`);
    for (let i = 0; i < 3; i++) {
      await onReplica.addMessages([new HumanMessage(`q${i}`), new AIMessage(`a${i}`)]);
      assert.equal((await history(id).getMessages()).length, 3 + 2 * i, `append ${i} was applied when addMessages resolved`);
    }
    await onReplica.clear();
    assert.deepEqual(await history(id).getMessages(), [], "cleared when clear resolved");
  });

  it("refuses what the history cannot hold, and surfaces the gateway's own 400", async () => {
    const id = convo("refuse");
    const h = history(id);
    await h.addMessage(new HumanMessage("kept"));
    await assert.rejects(h.addMessages([new HumanMessage("not kept"), new ToolMessage({ content: "42", tool_call_id: "call-1" })]), /got a "tool" message/);
    assert.deepEqual(said(await h.getMessages()), ["human:kept"], "all or nothing: the human message before the tool message was not sent");

    // The gateway's content limit (GATEWAY_MAX_CONTENT_CHARS): its message and status come through.
    await assert.rejects(h.addMessage(new HumanMessage("x".repeat(MAX_CONTENT_CHARS + 1))), (err: unknown) => {
      assert.ok(err instanceof KafkaChatHistoryError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.code, "invalid_request");
      assert.match(err.message, /content/);
      assert.match(err.message, /4000/);
      return true;
    });
    assert.deepEqual(said(await h.getMessages()), ["human:kept"]);
    const bad = new KafkaChatMessageHistory({ baseUrl: gateway.baseUrl, sessionId: "no spaces allowed", apiKey: KEY });
    await assert.rejects(
      bad.addMessage(new HumanMessage("hi")),
      (err: unknown) => err instanceof KafkaChatHistoryError && err.status === 400 && /conversation id/.test(err.message),
    );
    const unauthorized = new KafkaChatMessageHistory({ baseUrl: gateway.baseUrl, sessionId: id, apiKey: "wrong-key" });
    await assert.rejects(unauthorized.getMessages(), (err: unknown) => err instanceof KafkaChatHistoryError && err.status === 401);
  });

  it("reads from the beginning and from the latest, bounded by a count and by a time window ending now", async () => {
    const id = convo("bounds");
    const h = history(id);
    const early = Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? new HumanMessage(`early question ${i}`) : new AIMessage(`early answer ${i}`)));
    await h.addMessages(early);
    await new Promise((r) => setTimeout(r, 1_500)); // a gap in created_at between the two batches
    await h.addMessages([new HumanMessage("late question 6"), new AIMessage("late answer 7")]);

    // The window starts halfway through the gap the gateway recorded, wherever the clock was.
    const raw = await apiClient(gateway.baseUrl, KEY)("GET", `/v1/conversations/${id}/messages?from=beginning`);
    const at = raw.body.messages.map((m: { created_at: number | string }) => (typeof m.created_at === "number" ? m.created_at : Date.parse(m.created_at)));
    assert.ok(at[6] - at[5] >= 1_000, `a gap between the batches: ${JSON.stringify(at)}`);
    const maxTimeMs = Date.now() - (at[5] + at[6]) / 2;

    const texts = (ms: BaseMessage[]) => ms.map((m) => String(m.content));
    assert.deepEqual(texts(await h.messagesFromBeginning({ maxMessageCount: 3 })), ["early question 0", "early answer 1", "early question 2"]);
    assert.deepEqual(texts(await h.messagesFromLatest({ maxMessageCount: 3 })), ["early answer 5", "late question 6", "late answer 7"]);
    assert.deepEqual(texts(await h.messagesFromBeginning({ maxTimeMs })), ["late question 6", "late answer 7"]);
    assert.deepEqual(texts(await h.messagesFromLatest({ maxTimeMs, maxMessageCount: 1 })), ["late answer 7"]);
    assert.equal((await h.messagesFromBeginning()).length, 8, "unbounded: everything");
    assert.equal((await h.messagesFromLatest()).length, 8);
    // Defaults from the constructor, overridden per read.
    const bounded = history(id, { maxMessageCount: 2 });
    assert.deepEqual(texts(await bounded.messagesFromBeginning()), ["early question 0", "early answer 1"]);
    assert.deepEqual(texts(await bounded.messagesFromLatest({ maxMessageCount: 4 })), [
      "early question 4",
      "early answer 5",
      "late question 6",
      "late answer 7",
    ]);
  });

  it("pages past the gateway's 500 messages a read: getMessages, and bounded reads either way", async () => {
    const id = convo("paging");
    const h = history(id, { reader: "pager" });
    const n = 620;
    await h.addMessages(Array.from({ length: n }, (_, i) => new HumanMessage(`m${i}`))); // 7 requests of at most 100
    const all = await h.getMessages();
    assert.equal(all.length, n);
    assert.ok(
      all.every((m, i) => m.content === `m${i}`),
      "every message once, in order",
    );
    const first = await h.messagesFromBeginning({ maxMessageCount: 550 });
    assert.deepEqual([first.length, first[0]!.content, first[549]!.content], [550, "m0", "m549"]);
    // The reader stopped at m549 (its pages went on from its own position): the rest follows.
    const rest = await h.messagesFromLastConsumed();
    assert.deepEqual([rest.length, rest[0]!.content, rest.at(-1)!.content], [n - 550, "m550", `m${n - 1}`]);
    const last = await history(id).messagesFromLatest({ maxMessageCount: 600 });
    assert.deepEqual([last.length, last[0]!.content, last[599]!.content], [600, `m${n - 600}`, `m${n - 1}`]);
  });

  it("a named reader continues where it stopped, across history objects and gateway replicas, without disturbing another reader", async () => {
    const id = convo("readers");
    await history(id).addMessages([new HumanMessage("q0"), new AIMessage("a1"), new HumanMessage("q2"), new AIMessage("a3")]);
    const texts = (ms: BaseMessage[]) => ms.map((m) => String(m.content));

    const summarizer = history(id, { reader: "summarizer" });
    assert.deepEqual(texts(await summarizer.messagesFromBeginning({ maxMessageCount: 2 })), ["q0", "a1"]);
    // A new object on the other replica: the position is in Kafka, not in either.
    const onReplica = new KafkaChatMessageHistory({ baseUrl: replica.baseUrl, sessionId: id, apiKey: KEY, reader: "summarizer" });
    assert.deepEqual(texts(await onReplica.messagesFromLastConsumed({ maxMessageCount: 1 })), ["q2"]);

    // A second reader starts at the latest; it moves only its own position.
    const indexer = history(id, { reader: "indexer" });
    assert.deepEqual(texts(await indexer.messagesFromLatest({ maxMessageCount: 1 })), ["a3"]);
    assert.deepEqual(await indexer.messagesFromLastConsumed(), [], "nothing after the latest");
    assert.deepEqual(texts(await history(id, { reader: "summarizer" }).messagesFromLastConsumed()), ["a3"], "the summarizer was not moved by the indexer");

    await history(id).addMessages([new HumanMessage("q4"), new AIMessage("a5")]);
    assert.deepEqual(texts(await indexer.messagesFromLastConsumed()), ["q4", "a5"]);
    assert.deepEqual(texts(await onReplica.messagesFromLastConsumed()), ["q4", "a5"]);
    assert.deepEqual(await summarizer.messagesFromLastConsumed(), []);
    assert.equal((await summarizer.getMessages()).length, 6, "getMessages reads everything and moves no reader");
    assert.deepEqual(await summarizer.messagesFromLastConsumed(), []);
  });

  it("a reader that has never read gets the gateway's 400 saying how to start one", async () => {
    const id = convo("unknown-reader");
    await history(id).addMessage(new HumanMessage("hello"));
    await assert.rejects(history(id, { reader: "never-read" }).messagesFromLastConsumed(), (err: unknown) => {
      assert.ok(err instanceof KafkaChatHistoryError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.code, "invalid_request");
      assert.match(err.message, /unknown reader/);
      assert.match(err.message, /from=beginning/);
      assert.match(err.message, /start reader "never-read" with messagesFromBeginning\(\) or messagesFromLatest\(\)/);
      return true;
    });
  });

  it("RunnableWithMessageHistory holds a conversation over several turns, the model seeing every earlier turn", async () => {
    const id = convo("runnable");
    const chat = new ChatOpenAI({
      model: MODEL,
      apiKey: KEY,
      temperature: 0,
      maxTokens: 16,
      maxRetries: 0,
      configuration: { baseURL: `${gateway.baseUrl}/v1` },
    });
    // What the chain hands the model, and what the gateway counted as the prompt.
    const seen: string[][] = [];
    const promptTokens: number[] = [];
    const model = RunnableLambda.from(async (input: { toChatMessages(): BaseMessage[] }) => {
      const messages = input.toChatMessages();
      seen.push(said(messages));
      const reply = await chat.invoke(messages);
      promptTokens.push(reply.usage_metadata?.input_tokens ?? Number.NaN);
      return reply;
    });
    const prompt = ChatPromptTemplate.fromMessages([["system", "You tell short stories."], new MessagesPlaceholder("history"), ["human", "{question}"]]);
    const withHistory = new RunnableWithMessageHistory({
      runnable: prompt.pipe(model),
      getMessageHistory: (sessionId: string) => history(sessionId),
      inputMessagesKey: "question",
      historyMessagesKey: "history",
    });

    const questions = ["Tell me about a dog.", "What did the dog eat?", "Where did the dog sleep?"];
    const replies: string[] = [];
    for (const question of questions) {
      const reply = (await withHistory.invoke({ question }, { configurable: { sessionId: id } })) as AIMessage;
      assert.equal(typeof reply.content, "string");
      assert.ok((reply.content as string).length > 0, "the model replied");
      replies.push(reply.content as string);
    }

    const turns = questions.flatMap((q, i) => [`human:${q}`, `ai:${replies[i]}`]);
    assert.deepEqual(said(await history(id).getMessages()), turns, "the history holds every turn's human and AI message, in order");
    for (let t = 0; t < questions.length; t++) {
      assert.deepEqual(seen[t], ["system:You tell short stories.", ...turns.slice(0, 2 * t), `human:${questions[t]}`], `turn ${t + 1}'s input`);
    }
    // The worker's prompt grew with the history: the earlier turns reached the model itself.
    assert.ok(promptTokens[0]! < promptTokens[1]! && promptTokens[1]! < promptTokens[2]!, `prompt tokens per turn: ${promptTokens.join(", ")}`);
  });
});
