import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChatMLChatWrapper, GemmaChatWrapper, Llama2ChatWrapper, Llama3_1ChatWrapper, LlamaText, SpecialTokensText } from "node-llama-cpp";
import { turnHeaders, turnStopTriggers } from "../../../worker/turn-stop-triggers.js";

describe("turn stop triggers from the chat template", () => {
  it("finds the headers that open a user and a model turn, without the end of the previous turn", () => {
    assert.deepEqual(turnHeaders(new GemmaChatWrapper()), ["<start_of_turn>user", "<start_of_turn>model"]);
    assert.deepEqual(turnHeaders(new ChatMLChatWrapper()), ["<|im_start|>user", "<|im_start|>assistant"]);
    assert.deepEqual(turnHeaders(new Llama3_1ChatWrapper()), ["<|start_header_id|>user<|end_header_id|>", "<|start_header_id|>assistant<|end_header_id|>"]);
  });

  it("leaves out builtin tokens (BOS), which have no text a model could write", () => {
    assert.deepEqual(turnHeaders(new Llama2ChatWrapper()), ["[INST]", "[/INST]"]);
  });

  it("finds none, rather than failing, for a template that cannot render the probe history", () => {
    const broken = Object.assign(Object.create(GemmaChatWrapper.prototype) as GemmaChatWrapper, {
      generateContextState() {
        throw new Error("template error");
      },
    });
    assert.deepEqual(turnHeaders(broken), []);
  });

  it("gives each header as special tokens and as plain text, then the configured texts", () => {
    const triggers = turnStopTriggers(new GemmaChatWrapper(), ["\nUser:", ""]);
    assert.equal(triggers.length, 5);
    assert.ok(triggers[0] instanceof LlamaText);
    assert.deepEqual((triggers[0] as LlamaText).values, LlamaText(new SpecialTokensText("<start_of_turn>user")).values);
    assert.equal(triggers[1], "<start_of_turn>user");
    assert.equal(triggers[3], "<start_of_turn>model");
    assert.equal(triggers[4], "\nUser:");
  });
});
