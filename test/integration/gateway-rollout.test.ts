/**
 * A gateway replica rolled out under a client's stream, on a real broker: on SIGTERM it stops
 * being ready and refuses new work (503, so the retry goes to another replica), lets the
 * stream go on within its grace period, then ends it with a `reconnect` message; the client
 * resumes at the other replica with Last-Event-ID and gets the whole reply once, and the
 * drained replica exits cleanly.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isTerminalEvent, type ChatEvent } from "../../contracts/records/events.js";
import { apiClient, eventually, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { followSse, type SseMessage } from "../helpers/sse.js";

const chatEventsOf = (messages: SseMessage[]): ChatEvent[] => messages.filter((m) => m.id !== undefined).map((m) => JSON.parse(m.data) as ChatEvent);

describe("a gateway rollout", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let leaving: Service;
  let staying: Service;
  let worker: Service | undefined;
  let common: Record<string, string>;
  const prefix = uniquePrefix("gw-rollout");

  before(async () => {
    kafka = await useKafka();
    common = stackEnv(kafka, prefix);
    const env = { GATEWAY_AUTH: "none", QUEUE_NOTICE_MS: "500" };
    leaving = await startGateway(common, { ...env, GATEWAY_SHUTDOWN_GRACE_MS: "3000" }, "gateway-leaving");
    staying = await startGateway(common, env, "gateway-staying");
    // The worker starts once the leaving replica is gone: the request waits meanwhile.
  });

  after(async () => {
    await worker?.stop();
    await staying?.stop();
    await leaving?.stop();
    await kafka?.stop();
  });

  it("drains on SIGTERM and the client resumes at another replica with Last-Event-ID, missing nothing", async () => {
    const submitted = await apiClient(leaving.baseUrl)("POST", "/v1/conversations/rollout-1/messages", { content: "Once upon a time" });
    assert.equal(submitted.status, 202, submitted.text);
    const requestId = submitted.body.request_id as string;
    const stream = followSse(`${leaving.baseUrl}/v1/requests/${requestId}/events`);
    await eventually(async () => (stream.messages.some((m) => m.event === "queued") ? true : undefined), 15_000, "a queued notice on the open stream");

    const exited = new Promise<number | null>((resolve) => leaving.proc.once("exit", (code) => resolve(code)));
    const signalled = Date.now();
    leaving.proc.kill("SIGTERM");

    // Draining: not ready, no new work; the stream is still open.
    await eventually(async () => ((await fetch(`${leaving.baseUrl}/readyz`)).status === 503 ? true : undefined), 2500, "readyz 503 while draining");
    const refused = await apiClient(leaving.baseUrl)("POST", "/v1/conversations/rollout-2/messages", { content: "hi" });
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.body.error.code, "overloaded");
    assert.match(refused.body.error.message, /shutting down and takes no new work/);

    // At the end of the grace period the stream is told where to resume, and ends.
    assert.equal(await stream.done, true, "the server ended the stream");
    const drainedAfter = Date.now() - signalled;
    assert.ok(drainedAfter >= 2500, `the stream stayed open through the grace period (${drainedAfter} ms)`);
    const reconnect = stream.messages.find((m) => m.event === "reconnect");
    assert.ok(reconnect, `a reconnect message: ${JSON.stringify(stream.messages.map((m) => m.event))}`);
    assert.equal(JSON.parse(reconnect.data).code, "gateway_shutting_down");
    assert.equal(await exited, 0, "the drained replica exits cleanly");

    // The client resumes at the other replica, from the last event it had.
    const had = chatEventsOf(stream.messages);
    const lastId = [...stream.messages].reverse().find((m) => m.id !== undefined)?.id;
    const resumed = followSse(`${staying.baseUrl}/v1/requests/${requestId}/events`, lastId === undefined ? {} : { "last-event-id": lastId });
    worker = await startWorker(common, { DEFAULT_MAX_TOKENS: "24" });
    await resumed.done;
    const events = [...had, ...chatEventsOf(resumed.messages)];
    const final = events.find(isTerminalEvent);
    assert.equal(final?.type, "final", JSON.stringify(events.map((e) => e.type)));
    // One attempt's events, each once and in order, from start to final.
    const attempt = final!.attempt;
    const seqs = events.filter((e) => e.attempt === attempt).map((e) => e.seq);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i),
      "every event once, in order",
    );
  });
});
