/** The services' process helpers for tests: the testkit's (shared with bench/ and chaos/). */
export * from "../../testkit/services.js";
