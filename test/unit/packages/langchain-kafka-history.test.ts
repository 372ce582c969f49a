/**
 * The LangChain package's pure parts: which messages map to which history roles (and
 * which are refused, with a message that says what to do), and the options a
 * KafkaChatMessageHistory refuses before it sends anything.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AIMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage } from "@langchain/core/messages";
import { KafkaChatMessageHistory, fromHistoryRecord, toHistoryInput } from "../../../packages/langchain-kafka-history/src/index.js";

const record = (role: string, content: string, index = 0) => ({ index, role, content, created_at: 0, request_id: null });

describe("message mapping", () => {
  it("maps human, ai and system messages to user, assistant and system, and back", () => {
    assert.deepEqual(toHistoryInput(new HumanMessage("hi")), { role: "user", content: "hi" });
    assert.deepEqual(toHistoryInput(new AIMessage("hello")), { role: "assistant", content: "hello" });
    assert.deepEqual(toHistoryInput(new SystemMessage("be brief")), { role: "system", content: "be brief" });
    const back = ["user", "assistant", "system"].map((role) => fromHistoryRecord(record(role, `as ${role}`)));
    assert.ok(back[0] instanceof HumanMessage);
    assert.ok(back[1] instanceof AIMessage);
    assert.ok(back[2] instanceof SystemMessage);
    assert.deepEqual(
      back.map((m) => m.content),
      ["as user", "as assistant", "as system"],
    );
  });

  it("joins text content parts, refuses other parts", () => {
    assert.deepEqual(
      toHistoryInput(
        new HumanMessage({
          content: [
            { type: "text", text: "one " },
            { type: "text", text: "two" },
          ],
        }),
      ),
      { role: "user", content: "one two" },
    );
    assert.throws(
      () => toHistoryInput(new HumanMessage({ content: [{ type: "image_url", image_url: "http://x/y.png" }] })),
      /stores text only; a "human" message has a "image_url" content part/,
    );
  });

  it("refuses tool, function and custom-role messages and AI tool calls, naming what to do", () => {
    assert.throws(() => toHistoryInput(new ToolMessage({ content: "42", tool_call_id: "c1" })), /human, ai and system messages only; got a "tool" message/);
    assert.throws(() => toHistoryInput(new FunctionMessage({ content: "42", name: "f" })), /got a "function" message/);
    assert.throws(() => toHistoryInput(new ChatMessage("hm", "critic")), /got a "generic" message/);
    assert.throws(
      () => toHistoryInput(new AIMessage({ content: "", tool_calls: [{ id: "c1", name: "weather", args: {} }] })),
      /an AI message with tool_calls cannot be stored/,
    );
    assert.throws(() => fromHistoryRecord(record("tool", "x", 7)), /role "tool" \(index 7\)/);
  });
});

describe("KafkaChatMessageHistory options", () => {
  const base = { baseUrl: "http://127.0.0.1:1", sessionId: "c1" };

  it("lists every bad option at once", () => {
    assert.throws(
      () => new KafkaChatMessageHistory({ baseUrl: "gateway:8080/x", sessionId: "", reader: "no spaces", maxMessageCount: 0, maxTimeMs: -1, timeoutMs: 0 }),
      (err: Error) => {
        assert.ok(err instanceof TypeError);
        for (const text of ["baseUrl must be", "sessionId must be", "reader must match", "maxMessageCount must be", "maxTimeMs must be", "timeoutMs must be"]) {
          assert.match(err.message, new RegExp(text));
        }
        return true;
      },
    );
  });

  it("refuses bad read bounds and a last-consumed read without a reader, before any request", async () => {
    let calls = 0;
    const history = new KafkaChatMessageHistory({
      ...base,
      fetch: async () => {
        calls++;
        return new Response("{}");
      },
    });
    await assert.rejects(history.messagesFromBeginning({ maxMessageCount: 1.5 }), /maxMessageCount must be an integer >= 1, not 1.5/);
    await assert.rejects(history.messagesFromLatest({ maxTimeMs: 0 }), /maxTimeMs must be a positive number/);
    await assert.rejects(history.messagesFromLastConsumed(), /needs a reader: construct the KafkaChatMessageHistory with \{ reader: 'name' \}/);
    await assert.rejects(history.addMessages([new HumanMessage("ok"), new ToolMessage({ content: "no", tool_call_id: "c" })]), /got a "tool" message/);
    assert.equal(calls, 0, "nothing was sent");
  });

  it("keeps the API key out of its serialized form", () => {
    const history = new KafkaChatMessageHistory({ ...base, apiKey: "sk-secret-1" });
    assert.doesNotMatch(JSON.stringify(history), /sk-secret-1/);
    assert.deepEqual(history.lc_namespace, ["langchain", "stores", "message", "kafka_llm"]);
  });
});
