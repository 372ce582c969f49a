/**
 * Idempotency keys (gateway/intake.ts): the request id a key names is the same at every
 * replica and differs by tenant and scope; a request's fingerprint is what it asks, not its
 * id, time or events partition; a replica refuses a key used again for another request
 * while it remembers the first, within its bounds.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SCHEMA_VERSION } from "../../../contracts/records/fields.js";
import type { ChatRequest } from "../../../contracts/records/requests.js";
import { ApiError } from "../../../gateway/errors.js";
import { KEY_SCOPES, KeyedRequests, idempotencyKeyOf, keyedRequestId, requestFingerprint } from "../../../gateway/intake.js";

const turn = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest =>
  ({ v: SCHEMA_VERSION, type: "turn", request_id: "r-1", conversation_id: "c-1", tenant: "t", content, created_at: 1, ...extra }) as ChatRequest;

describe("idempotency keys", () => {
  it("derive one UUID-shaped request id per tenant, scope and key", () => {
    const id = keyedRequestId("t", "c-1", "k");
    assert.equal(id, keyedRequestId("t", "c-1", "k"), "stable: every replica derives it");
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const others = [
      keyedRequestId("u", "c-1", "k"),
      keyedRequestId("t", "c-2", "k"),
      keyedRequestId("t", "c-1", "k2"),
      keyedRequestId("t", KEY_SCOPES.open, "k"),
    ];
    assert.equal(new Set([id, ...others]).size, 5, "another tenant, conversation, key or scope is another request");
    assert.notEqual(keyedRequestId("t", KEY_SCOPES.open, "k"), keyedRequestId("t", KEY_SCOPES.completion, "k"));
  });

  it("reads the header, refusing a malformed key by name", () => {
    assert.equal(idempotencyKeyOf({}), undefined);
    assert.equal(
      idempotencyKeyOf({ "idempotency-key": "stainless-node-retry-6f1c2b8e-1f0a-4a57-9b1e-0d4c1b8f2a11" }),
      "stainless-node-retry-6f1c2b8e-1f0a-4a57-9b1e-0d4c1b8f2a11",
    );
    for (const bad of ["", "has space", "x".repeat(129), "é"]) {
      assert.throws(
        () => idempotencyKeyOf({ "idempotency-key": bad }),
        (err: unknown) => err instanceof ApiError && err.code === "invalid_request" && err.param === "Idempotency-Key",
      );
    }
  });

  it("fingerprints what a request asks, not its id, time or events partition", () => {
    const a = requestFingerprint(turn("Hello"));
    assert.equal(a, requestFingerprint(turn("Hello", { request_id: "r-2", created_at: 99, events_partition: 3 })));
    assert.notEqual(a, requestFingerprint(turn("Hello!")));
    assert.notEqual(a, requestFingerprint(turn("Hello", { params: { max_tokens: 5 } } as Partial<ChatRequest>)));
    assert.notEqual(a, requestFingerprint(turn("Hello", { conversation_id: "c-2" })));
  });

  it("refuses a key used again for another request while it remembers the first", () => {
    const keyed = new KeyedRequests(2, 1000);
    keyed.claim("r-1", "f1", 0);
    keyed.claim("r-1", "f1", 10); // a retry
    assert.throws(
      () => keyed.claim("r-1", "f2", 20),
      (err: unknown) => err instanceof ApiError && err.code === "idempotency_key_reused" && /different request/.test(err.message),
    );
    // Past its time the first is forgotten, as the hub forgets its request.
    keyed.claim("r-1", "f2", 2000);
    // Bounded: the oldest goes first.
    keyed.claim("r-2", "f", 2001);
    keyed.claim("r-3", "f", 2002);
    keyed.claim("r-1", "f3", 2003);
    assert.throws(() => keyed.claim("r-3", "g", 2004));
  });
});
