/**
 * What both fuzzing tests (the property-based one and schemathesis) check once the requests
 * are sent: how the answers spread over status codes, and that nothing the gateway queued
 * was dead-lettered by the worker (every record it wrote is one the worker can read).
 */
import assert from "node:assert/strict";
import { topicNames } from "../../contracts/topics.js";
import { kafkaConfigFor, topicEnds, type TestKafka } from "../../testkit/kafka.js";

/** Counts of each status code, e.g. "200×3 400×12". */
export function statusSummary(statuses: ReadonlyMap<number, number>): string {
  return [...statuses]
    .sort(([a], [b]) => a - b)
    .map(([s, n]) => `${s}×${n}`)
    .join(" ");
}

/** Asserts that the dead-letter topic of the install with this topic prefix is empty. */
export async function assertNothingDeadLettered(kafka: TestKafka, prefix: string, message: string): Promise<void> {
  const dlq = await topicEnds(kafkaConfigFor(kafka), topicNames(prefix).deadLetter);
  assert.deepEqual(
    [...dlq.values()].map((p) => p.high),
    [...dlq.values()].map(() => 0),
    message,
  );
}
