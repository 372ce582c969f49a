/** Jaeger for tests: the testkit's (bench and scripts use it too). */
export * from "../../testkit/jaeger.js";
