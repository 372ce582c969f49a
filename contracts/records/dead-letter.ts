/**
 * chat.requests.dlq: a record of chat.requests that no worker can apply (not JSON, not the
 * schema, keyed or partitioned wrong) is copied here, key and bytes as they were, so that
 * it leaves the partition it would otherwise block and an operator can see why. Its value
 * has no schema (it is the original bytes); its contract is these headers. Key: the
 * original record's.
 */

/** Headers on a dead-lettered record: why it failed and where it came from. */
export const DLQ_HEADERS = {
  reason: "x-dlq-reason",
  topic: "x-dlq-topic",
  partition: "x-dlq-partition",
  offset: "x-dlq-offset",
  workerId: "x-dlq-worker-id",
  /** Set when the value was cut to fit the broker's size limit. */
  truncated: "x-dlq-truncated",
  originalBytes: "x-dlq-original-bytes",
  originalSha256: "x-dlq-original-sha256",
} as const;
