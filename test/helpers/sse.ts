/** The SSE client helpers for tests: the testkit's (shared with bench/ and chaos/). */
export * from "../../testkit/sse.js";
