/**
 * Every gateway replica reads all of chat.requests and feeds the hub, so any replica can
 * answer status for any request, whichever replica accepted it: chat.requests tells it a
 * request exists (status "queued") before a worker starts it, and which chat.events
 * partition its events use (its `events_partition`, else the conversation key's); only ids,
 * the tenant and that partition are kept, never the content. chat.events is read by
 * partition (event-partitions.ts): each replica reads its own share, and others while a
 * client here follows one of their requests.
 *
 * A reader by assignment (platform/kafka/assigned-reader.ts): every partition, from the
 * first record newer than now - REQUEST_STATE_TTL_MS (the look-back), so a new replica knows
 * the requests still within their TTL. It joins no group and commits nothing; it keeps its
 * place itself, also across a consumer its watchdog replaces after a broker restart.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { privateGroup } from "../../contracts/kafka-acls.js";
import { chatRequestSchema } from "../../contracts/records/requests.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import type { KafkaAdmin } from "../../platform/kafka/admin.js";
import { AssignedReader } from "../../platform/kafka/assigned-reader.js";
import type { Logger } from "../../platform/logger.js";
import type { EventHub } from "../event-hub.js";

/** The longest the look-back may take before the replica serves with what it has read. */
const LOOK_BACK_TIMEOUT_MS = 60_000;

export interface RequestsReader {
  /** True once the look-back of chat.requests has been read (or timed out): the replica then knows recent requests. */
  caughtUp(): boolean;
  stop(): Promise<void>;
}

export async function startRequestsReader(options: {
  kafka: KafkaConfig;
  admin: KafkaAdmin;
  topic: string;
  hub: EventHub;
  /** The gateways' group, under which this reader's (never joined) group id is named. */
  gatewayGroup: string;
  lookBackMs: number;
  logger: Logger;
  /** Called with where each request was read in chat.requests (for the queue position). */
  onRequestRead?: (requestId: string, partition: number, offset: string) => void;
  /**
   * A request of a conversation (not a stateless turn) was read: `moveTo` when it moves the
   * conversation to another pool, `deleted` when it deletes it.
   */
  onConversation?: (tenant: string, conversationId: string, change: { deleted: boolean; moveTo?: string }) => void;
  /** The reader's consumer was replaced because it stopped fetching. */
  onRestart?: () => void;
}): Promise<RequestsReader> {
  const { admin, topic, hub, logger } = options;
  const log = logger.child({ component: "requests-reader" });
  const reader = new AssignedReader({
    kafka: options.kafka,
    topic,
    name: "requests-reader",
    groupId: privateGroup(options.gatewayGroup, "offsets"),
    logger,
    ends: async () => new Map((await admin.offsets(topic, 3000)).map((o) => [o.partition, o.high])),
    ...(options.onRestart && { onRestart: options.onRestart }),
    fetchWaitMs: 250,
    onRecords(records) {
      for (const record of records) {
        const decoded = decodeRecord(chatRequestSchema, record.value);
        // A malformed request is the workers' to dead-letter; nothing to track.
        if (!decoded.ok) continue;
        const r = decoded.value;
        const traceparent = record.headers.traceparent;
        hub.observe(
          r.request_id,
          r.conversation_id,
          r.tenant,
          r.events_partition,
          r.type === "open",
          traceparent === undefined ? undefined : traceparent.toString(),
        );
        options.onRequestRead?.(r.request_id, record.partition, String(record.offset));
        if (r.type !== "turn" || r.context === undefined)
          options.onConversation?.(r.tenant, r.conversation_id, {
            deleted: r.type === "delete",
            ...(r.type === "turn" && r.move_to !== undefined && { moveTo: r.move_to }),
          });
      }
    },
  });
  // Where to start, and where "caught up" is: both fixed before the first fetch.
  const [starts, ends] = await Promise.all([admin.offsetsAt(topic, Date.now() - options.lookBackMs), admin.offsets(topic)]);
  await reader.start();
  for (const [partition, offset] of starts) reader.add(partition, offset);

  let caughtUp = false;
  void Promise.all(ends.map((e) => reader.waitFor(e.partition, e.high, LOOK_BACK_TIMEOUT_MS))).then((reached) => {
    caughtUp = true;
    const counts = { tracked: hub.size, look_back_ms: options.lookBackMs };
    if (reached.every(Boolean)) log.info(counts, "read the look-back of chat.requests");
    else log.warn(counts, `look-back not read within ${LOOK_BACK_TIMEOUT_MS / 1000} s; serving what has been read`);
  });

  return {
    caughtUp: () => caughtUp,
    stop: () => reader.stop(),
  };
}
