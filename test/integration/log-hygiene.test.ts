/**
 * Logs at info level (the default) never carry prompt text, system prompts, replies or
 * API keys: a gateway and a worker as real processes serve turns with distinctive texts
 * on every route (native with SSE, OpenAI whole and streamed, with server-side memory),
 * a cancel, a 400 that names a field holding the prompt, a 401 with a wrong key, and a
 * malformed record on chat.requests that starts with prompt text; then their captured
 * output is scanned for every secret (and for the 10-character excerpt JSON.parse quotes).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { topicNames } from "../../contracts/topics.js";
import { ChatOverKafka } from "../helpers/chat-kafka.js";
import { apiClient, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const API_KEY = "apikey-narwhal-5d7b0c";
const WRONG_KEY = "wrongkey-axolotl-2e6f";
const PROMPT = "zebra-quokka-prompt-4f2e9";
const SYSTEM = "walrus-system-secret-81c3";
const OPENAI_PROMPT = "ibex-openai-prompt-77aa1";
const RAW_PROMPT = "lynx-raw-record-prompt-90bd";

describe("log hygiene", { timeout: 240_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let chat: ChatOverKafka;
  const replies: string[] = [];
  const requestIds: string[] = [];

  before(async () => {
    kafka = await useKafka();
    const prefix = uniquePrefix("log-hygiene");
    const common = stackEnv(kafka, prefix, 1);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `acme:${API_KEY}` });
    worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "24", DELTA_FLUSH_MS: "10" });
    chat = new ChatOverKafka(kafka, topicNames(prefix));
    await chat.start();
  });

  after(async () => {
    await chat?.stop();
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  it("serves turns on every route with distinctive texts", async () => {
    const api = apiClient(gateway.baseUrl, API_KEY);

    // Native: a turn with a system prompt, streamed, then its history.
    const posted = await api("POST", "/v1/conversations/logs-1/messages", { content: PROMPT, system: SYSTEM });
    assert.equal(posted.status, 202, posted.text);
    requestIds.push(posted.body.request_id);
    const events = chatEvents(await readEvents(gateway.baseUrl + posted.body.events_url, API_KEY));
    const final = events.at(-1)!;
    assert.equal(final.type, "final");
    if (final.type === "final") replies.push(final.reply);
    const history = await api("GET", "/v1/conversations/logs-1/messages");
    assert.deepEqual(
      history.body.messages.slice(0, 2).map((m: { role: string; content: string }) => [m.role, m.content]),
      [
        ["system", SYSTEM],
        ["user", PROMPT],
      ],
    );

    // OpenAI: whole, streamed, and with server-side memory.
    const messages = [
      { role: "system", content: SYSTEM },
      { role: "user", content: OPENAI_PROMPT },
    ];
    const whole = await api("POST", "/v1/chat/completions", { model: "kafka-llm", messages, max_tokens: 16 });
    assert.equal(whole.status, 200, whole.text);
    replies.push(whole.body.choices[0].message.content);
    const streamed = await api("POST", "/v1/chat/completions", { model: "kafka-llm", messages, max_tokens: 16, stream: true });
    assert.equal(streamed.status, 200);
    const remembered = await api("POST", "/v1/chat/completions", { model: "kafka-llm", messages, max_tokens: 16 }, { "x-conversation-id": "logs-2" });
    assert.equal(remembered.status, 200, remembered.text);

    // A cancel, a 400 naming a field that holds the prompt, a 401 with a key that is not one.
    const long = await api("POST", "/v1/conversations/logs-3/messages", { content: PROMPT, max_tokens: 500 });
    assert.equal((await api("POST", `/v1/requests/${long.body.request_id}/cancel`, { reason: PROMPT })).status, 202);
    assert.equal((await api("POST", "/v1/conversations/logs-1/messages", { content: PROMPT, colour: PROMPT })).status, 400);
    assert.equal((await apiClient(gateway.baseUrl, WRONG_KEY)("POST", "/v1/conversations/logs-1/messages", { content: PROMPT })).status, 401);

    // Straight to Kafka: a malformed record that starts with prompt text (dead-lettered),
    // then a good turn on the same partition, whose final means the bad one was handled.
    await chat.produceRaw(Buffer.from(`${RAW_PROMPT} and more text, not JSON`), "logs-1");
    const after = await api("POST", "/v1/conversations/logs-1/messages", { content: PROMPT });
    requestIds.push(after.body.request_id);
    assert.equal(chatEvents(await readEvents(gateway.baseUrl + after.body.events_url, API_KEY)).at(-1)!.type, "final");
  });

  for (const [name, service] of [
    ["gateway", () => gateway],
    ["worker", () => worker],
  ] as const) {
    it(`keeps prompts, system prompts, replies and keys out of the ${name}'s log`, () => {
      const log = service().output();
      assert.ok(log.includes(requestIds[0]!), `the ${name} logged the turn by its request id (this is the log of that run)`);
      assert.ok(!/"level":20/.test(log), "info level: no debug lines");
      const secrets: Array<[string, string]> = [
        ["prompt", PROMPT],
        ["system prompt", SYSTEM],
        ["OpenAI prompt", OPENAI_PROMPT],
        ["raw record's prompt", RAW_PROMPT],
        ["API key", API_KEY],
        ["wrong API key", WRONG_KEY],
        ...replies.filter((r) => r.trim().length >= 16).map((r): [string, string] => ["reply", r.trim()]),
      ];
      for (const [what, secret] of secrets) {
        assert.ok(!log.includes(secret), `the ${what} appears in the ${name}'s log`);
        // JSON.parse quotes the first 10 characters of what it could not parse.
        assert.ok(!log.includes(secret.slice(0, 10)), `the start of the ${what} ("${secret.slice(0, 10)}") appears in the ${name}'s log`);
      }
    });
  }
});
