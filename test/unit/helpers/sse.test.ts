/** The shared SSE client parser (test/helpers/sse.ts): whole messages, however the bytes are cut. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SseReader, parseSse } from "../../helpers/sse.js";

const STREAM = ': keepalive\n\nid: 0@a\nevent: start\ndata: {"x":"é"}\n\nid: 1@a\r\nevent: delta\r\ndata: line one\r\ndata: line two\r\n\r\ndata: [DONE]\n\n';
const EXPECTED = [
  { id: "0@a", event: "start", data: '{"x":"é"}' },
  { id: "1@a", event: "delta", data: "line one\nline two" },
  { id: undefined, event: undefined, data: "[DONE]" },
];

describe("SSE client parser", () => {
  it("parses a whole body: ids, event names, multi-line data, CRLF; comments skipped", () => {
    assert.deepEqual(parseSse(STREAM), EXPECTED);
  });

  it("gives the same messages whatever the chunking, even inside a UTF-8 character", () => {
    const bytes = new TextEncoder().encode(STREAM);
    for (const size of [1, 2, 3, 7, 64]) {
      const reader = new SseReader();
      const messages = [];
      for (let i = 0; i < bytes.length; i += size) messages.push(...reader.push(bytes.subarray(i, i + size)));
      assert.deepEqual(messages, EXPECTED, `chunks of ${size} bytes`);
    }
  });

  it("holds back a message until its blank line arrives", () => {
    const reader = new SseReader();
    assert.deepEqual(reader.push("event: final\ndata: {}\n"), []);
    assert.deepEqual(reader.push("\n"), [{ id: undefined, event: "final", data: "{}" }]);
  });
});
