/**
 * platform/logger.ts: what the services' logs leave out. pino 10.1 replaced the redaction
 * engine (fast-redact by @pinojs/redact), so the paths are checked here, not assumed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../../platform/logger.js";

function logged(write: (logger: ReturnType<typeof createLogger>) => void): Array<Record<string, unknown>> {
  const lines: string[] = [];
  write(createLogger("test", "info", { write: (line: string) => void lines.push(line) }));
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("logger", () => {
  it("writes JSON lines with the service, an ISO time and the level's number", () => {
    const [line] = logged((log) => log.info({ request_id: "r-1" }, "hello"));
    assert.equal(line!.service, "test");
    assert.equal(line!.level, 30);
    assert.equal(line!.msg, "hello");
    assert.equal(line!.request_id, "r-1");
    assert.match(String(line!.time), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it("removes passwords, SASL settings, API keys and authorization headers, in child loggers too", () => {
    const lines = logged((log) => {
      log.info(
        {
          kafka: { brokers: ["a:9092"], sasl: { mechanism: "plain", username: "u", password: "s3cret" } },
          file: { password: "p-1", path: "/run/secret" },
          key: { apiKey: "k-1", tenant: "acme" },
          headers: { authorization: "Bearer t-1", host: "h" },
          req: { authorization: "Bearer t-2" },
        },
        "config",
      );
      log.child({ component: "c" }).warn({ auth: { apiKey: "k-2" } }, "child");
    });
    const text = lines.map((l) => JSON.stringify(l)).join("\n");
    for (const secret of ["s3cret", "p-1", "k-1", "k-2", "t-1", "t-2"]) assert.ok(!text.includes(secret), `${secret} is not logged: ${text}`);
    assert.deepEqual(lines[0]!.kafka, { brokers: ["a:9092"] });
    assert.deepEqual(lines[0]!.file, { path: "/run/secret" });
    assert.deepEqual(lines[0]!.key, { tenant: "acme" });
    assert.deepEqual(lines[0]!.headers, { host: "h" });
    assert.equal(lines[1]!.component, "c");
  });

  it("logs nothing below its level", () => {
    assert.deepEqual(
      logged((log) => log.debug("quiet")),
      [],
    );
  });
});
