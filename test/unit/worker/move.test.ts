import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConversationState } from "../../../contracts/records/memory.js";
import type { ChatRequest, TurnRequest } from "../../../contracts/records/requests.js";
import { placeRequest } from "../../../worker/move.js";

const state = (extra: Partial<ConversationState> = {}): ConversationState => ({
  v: 1,
  type: "conversation",
  conversation_id: "c",
  tenant: "t",
  messages: [{ role: "user", content: "hi", at: 1 }],
  applied: [],
  turns: 1,
  created_at: 1,
  updated_at: 2,
  ...extra,
});
const turn = (extra: Partial<TurnRequest> = {}): TurnRequest => ({
  v: 1,
  type: "turn",
  request_id: "r1",
  conversation_id: "c",
  tenant: "t",
  content: "next",
  created_at: 3,
  ...extra,
});

describe("placeRequest: where a request runs when pools serve different models", () => {
  it("runs a request here with the state here when the conversation has not moved", () => {
    const here = state();
    assert.deepEqual(placeRequest(turn(), here, "default"), { kind: "here", state: here });
    assert.deepEqual(placeRequest(turn(), undefined, "default"), { kind: "here", state: undefined });
  });

  it("moves the conversation with a turn naming another pool: the turn goes there with the state, a marker stays", () => {
    const here = state();
    const placed = placeRequest(turn({ move_to: "fast" }), here, "default");
    assert.equal(placed.kind, "pass");
    if (placed.kind !== "pass") return;
    assert.equal(placed.pool, "fast");
    assert.deepEqual(placed.request, { ...turn(), carry: here }, "without move_to, with the state");
    assert.deepEqual(placed.marker, { ...here, moved_to: "fast" });
  });

  it("passes on, without a state, a request for a conversation that moved away (a gateway that missed the move)", () => {
    const left = state({ moved_to: "fast" });
    const append: ChatRequest = {
      v: 1,
      type: "append",
      request_id: "r2",
      conversation_id: "c",
      tenant: "t",
      messages: [{ role: "user", content: "x" }],
      created_at: 4,
    };
    assert.deepEqual(placeRequest(append, left, "default"), { kind: "pass", pool: "fast", request: append });
    // A move sent again after it was done goes on to where the conversation is, carrying nothing.
    assert.deepEqual(placeRequest(turn({ move_to: "big" }), left, "default"), { kind: "pass", pool: "fast", request: turn() });
  });

  it("takes a carried state as its own, unless it already applied this turn (a move sent twice)", () => {
    const carried = state({ turns: 5 });
    assert.deepEqual(placeRequest(turn({ carry: carried }), undefined, "fast"), { kind: "here", state: carried });
    assert.deepEqual(
      placeRequest(turn({ carry: carried }), state({ moved_to: "default" }), "fast"),
      { kind: "here", state: carried },
      "a marker from an earlier stay is replaced",
    );
    const applied = state({ applied: [{ request_id: "r1", events: { partition: 0, offset: 7 } }] });
    assert.deepEqual(placeRequest(turn({ carry: carried }), applied, "fast"), { kind: "here", state: applied }, "its own state answers the replay");
  });

  it("runs a turn moved to the pool it is already in here", () => {
    const here = state();
    assert.deepEqual(placeRequest(turn({ move_to: "default" }), here, "default"), { kind: "here", state: here });
  });
});
