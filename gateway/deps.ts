/**
 * What the gateway's routes are given: config, logger, the Kafka-facing parts and the
 * health probes. Its own module so that routes and app.ts do not import each other.
 */
import type { GatewayConfig } from "../contracts/config/gateway.js";
import type { Logger } from "../platform/logger.js";
import type { Authenticator } from "./auth.js";
import type { EventHub } from "./event-hub.js";
import type { EventPartitions } from "./kafka/event-partitions.js";
import type { ConversationLookup } from "./kafka/owners.js";
import type { OffsetReader } from "../platform/kafka/offset-reader.js";
import type { ReaderPositions } from "./kafka/reader-positions.js";
import type { Publisher } from "./kafka/publisher.js";
import type { QueueWatch } from "./kafka/queue-watch.js";
import type { ConversationPools, PoolRouter } from "./pools.js";
import type { GatewayMetrics } from "./metrics.js";
import type { TenantQuotas } from "./quotas.js";
import type { RequestTraces } from "./tracing.js";

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  hub: EventHub;
  /** Which chat.events partitions this replica reads (its own, and those followers here need); absent: the hub is fed otherwise (unit tests). */
  events?: EventPartitions;
  metrics: GatewayMetrics;
  publisher: Publisher;
  /** Conversations, asked of the worker owning each one's partition; null while not running (reads then answer 503). */
  conversations: ConversationLookup | null;
  /** Reads of chat.history at exact offsets and the named readers' positions; null while not running (history reads then answer 503). */
  history: { reader: OffsetReader; positions: ReaderPositions } | null;
  authenticate: Authenticator;
  /** The tenants' quotas (gateway/admission.ts applies them); absent: none. */
  quotas?: TenantQuotas;
  /** Sends `queued` notices on the streams of requests no worker has started; absent: none. */
  queueWatch?: Pick<QueueWatch, "watch">;
  /** The pools behind this gateway and the models each serves (chat.models); absent: one pool, the default topics (unit tests). */
  pools?: PoolRouter;
  /** The pool each conversation was last sent to (bounded per tenant); absent with `pools`. */
  conversationPools?: ConversationPools;
  /** The spans of requests accepted here (gateway/tracing.ts); absent while tracing is off. */
  traces?: RequestTraces;
  /** True once the gateway is shutting down: it takes no new work (gateway/admission.ts) and is not ready. */
  draining?(): boolean;
  /** True once the gateway has read what it needs to answer for recent requests. */
  ready(): boolean;
  /** Why the gateway cannot work any more (a consumer stopped for good), or null. */
  failure(): string | null;
}
