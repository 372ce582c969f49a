/**
 * The AsyncAPI 3.0 document of the bus: each topic (./topics.ts), its key, its headers,
 * how records are partitioned, and the JSON Schema of its values (./json-schema.ts, by
 * reference to the committed files under contracts/schema/).
 * For services on the same Kafka that produce requests or read events without this code.
 * Committed as docs/asyncapi.yaml by scripts/interfaces.ts; a unit test compares.
 */
import { RECORD_SCHEMAS, draft07Schema } from "./json-schema.js";
import { requestIdSchema } from "./records/fields.js";
import { DLQ_HEADERS } from "./records/dead-letter.js";
import { TOPIC_BASE_NAMES, type TopicRole } from "./topics.js";

const SCHEMA_FORMAT = "application/schema+json;version=draft-07";
const KAFKA_BINDING = "0.5.0";

const PARTITIONING =
  "Records are partitioned by their key with the Java client's default partitioner: " +
  "toPositive(murmur2(utf8(key))) % partitions (librdkafka: partitioner=murmur2_random). " +
  "chat.requests and chat.memory have the same partition count (KAFKA_REQUEST_PARTITIONS): partition p of one goes with partition p of the other.";

function keySchema(role: "conversation" | "request") {
  if (role === "conversation") {
    return {
      type: "string",
      // A tenant (1-64 of [A-Za-z0-9._-]), '/', a conversation id (1-128 of [A-Za-z0-9._:-]): contracts/conversation-key.ts.
      pattern: "^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._:-]{1,128}$",
      description:
        "The conversation key (UTF-8): the record's tenant, '/', its conversation_id. A conversation is named by its tenant and id together, so one id used by two tenants is two conversations on their own partitions.",
    };
  }
  const { $schema: _, ...schema } = draft07Schema(requestIdSchema);
  return { ...schema, description: "The request id (UTF-8)" };
}

function schemaOf(topic: TopicRole) {
  const spec = RECORD_SCHEMAS.find((s) => s.topic === topic);
  if (spec === undefined) throw new Error(`no record schema for ${topic}`);
  return spec;
}

function message(topic: TopicRole, key: "conversation" | "request", extra: Record<string, unknown> = {}, spec = schemaOf(topic)) {
  return {
    name: spec.title,
    title: spec.title,
    summary: spec.description,
    contentType: "application/json",
    // The committed JSON Schema file, relative to docs/asyncapi.yaml: one copy of each schema.
    payload: { schemaFormat: SCHEMA_FORMAT, schema: { $ref: `../contracts/schema/${spec.file}` } },
    bindings: { kafka: { key: keySchema(key), bindingVersion: KAFKA_BINDING } },
    ...extra,
  };
}

const channelRef = (name: string) => ({ $ref: `#/channels/${name}` });
const messageRef = (channel: string, name: string) => ({ $ref: `#/channels/${channel}/messages/${name}` });

function channel(
  role: TopicRole,
  description: string,
  messageName: string,
  msg: unknown,
  binding: Record<string, unknown> = {},
  more: Record<string, unknown> = {},
) {
  return {
    address: `{prefix}${TOPIC_BASE_NAMES[role]}`,
    title: TOPIC_BASE_NAMES[role],
    description,
    parameters: { prefix: { $ref: "#/components/parameters/prefix" } },
    messages: { [messageName]: msg, ...more },
    bindings: { kafka: { topic: TOPIC_BASE_NAMES[role], ...binding, bindingVersion: KAFKA_BINDING } },
  };
}

/** The AsyncAPI document as a plain object (written as YAML). */
export function asyncApiDocument(): Record<string, unknown> {
  const dlqHeaders = {
    type: "object",
    description: "The original record's headers are kept; these are added.",
    properties: {
      [DLQ_HEADERS.reason]: { type: "string", description: "Why the record could not be processed" },
      [DLQ_HEADERS.topic]: { type: "string", description: "The topic it was read from" },
      [DLQ_HEADERS.partition]: { type: "string", description: "Its partition (decimal)" },
      [DLQ_HEADERS.offset]: { type: "string", description: "Its offset (decimal)" },
      [DLQ_HEADERS.workerId]: { type: "string", description: "The worker that dead-lettered it" },
      [DLQ_HEADERS.truncated]: { type: "string", description: "Set when the value was cut to fit the broker's size limit" },
      [DLQ_HEADERS.originalBytes]: { type: "string", description: "The original value's size in bytes, when truncated" },
      [DLQ_HEADERS.originalSha256]: { type: "string", description: "The original value's sha256 (hex), when truncated" },
    },
    required: [DLQ_HEADERS.reason, DLQ_HEADERS.topic, DLQ_HEADERS.partition, DLQ_HEADERS.offset],
  };

  return {
    asyncapi: "3.0.0",
    info: {
      title: "kafka-llm event bus",
      version: "1",
      description:
        "The Kafka topics of kafka-llm. Values are UTF-8 JSON; `v` is the schema version (readers reject versions they do not know). " +
        "To ask for a reply without the gateway, produce a ChatRequest to chat.requests keyed by its conversation key (`<tenant>/<conversation_id>`), then read chat.events " +
        "for records with its request_id: a start, deltas, and a final (or an error) event.\n\n" +
        PARTITIONING,
      license: { name: "Apache-2.0" },
    },
    defaultContentType: "application/json",
    channels: {
      requests: channel(
        "requests",
        "Everything that changes a conversation (turn, open, append, delete), applied in order by the worker that owns the partition (consumer group WORKER_GROUP_ID). A record that fails the schema, or whose key is not its conversation key, or which is not in that key's partition, goes to chat.requests.dlq. " +
          PARTITIONING,
        "chatRequest",
        message("requests", "conversation"),
      ),
      events: channel(
        "events",
        "What a worker says about a request: start (seq 0 of an attempt), delta, then final or error. A new start with another attempt means the request is being run again: drop the partial reply.",
        "chatEvent",
        message("events", "conversation"),
      ),
      memory: channel(
        "memory",
        "Each conversation's whole state, written by the worker that owns it; the latest record per key is the state, a tombstone (null value) deletes it. Compacted, and retention.ms is CONVERSATION_TTL_MS: a conversation untouched that long is forgotten. Keys that start with '#' are the workers' own and never conversations: '#fence:<uuid>' tombstones mark where a restore reads to, '#handover:<request_id>' holds a reply handed over at a partition move (schema handover.schema.json), and '#attempts:<offset>' counts the workers that started the chat.requests record at that offset of the same partition ({\"v\":1,\"type\":\"attempts\",\"attempts\":n}; a tombstone once it is done). Readers of conversations skip them.",
        "conversationState",
        message("memory", "conversation"),
        { topicConfiguration: { "cleanup.policy": ["compact", "delete"] } },
        {
          handover: message(
            "memory",
            "request",
            {
              bindings: {
                kafka: {
                  key: { type: "string", pattern: "^#handover:", description: "'#handover:' then the request id (UTF-8)" },
                  bindingVersion: KAFKA_BINDING,
                },
              },
            },
            RECORD_SCHEMAS.find((r) => r.title === "Handover")!,
          ),
        },
      ),
      history: channel(
        "history",
        "Every message of every conversation, once: one record per applied request, written by the owning worker before the memory record that points at it. Not compacted; retention.ms is HISTORY_RETENTION_MS. Records link to earlier records of their conversation by offset (a skip list), so gateways read a conversation at exact offsets from the head in its memory record; a record that no head reaches (its worker died before writing memory) is never read.",
        "historyRecord",
        message("history", "conversation"),
        { topicConfiguration: { "cleanup.policy": ["delete"] } },
      ),
      control: channel("control", "Cancels, read by every worker.", "controlRecord", message("control", "request"), { partitions: 1 }),
      deadLetter: {
        address: `{prefix}${TOPIC_BASE_NAMES.deadLetter}`,
        title: TOPIC_BASE_NAMES.deadLetter,
        description: "Records of chat.requests that cannot be processed: the original key and bytes, with headers saying why and where from.",
        parameters: { prefix: { $ref: "#/components/parameters/prefix" } },
        messages: {
          deadLetter: {
            name: "DeadLetter",
            title: "DeadLetter",
            summary: "The original record of chat.requests, as it was read",
            contentType: "application/octet-stream",
            headers: dlqHeaders,
            payload: { type: "string", description: "The original value's bytes (cut when too large; see the headers)" },
            bindings: { kafka: { key: { type: "string", description: "The original key" }, bindingVersion: KAFKA_BINDING } },
          },
        },
        bindings: { kafka: { topic: TOPIC_BASE_NAMES.deadLetter, partitions: 1, bindingVersion: KAFKA_BINDING } },
      },
    },
    operations: {
      sendRequest: {
        action: "send",
        title: "Ask for a turn (the gateway; any producer)",
        channel: channelRef("requests"),
        messages: [messageRef("requests", "chatRequest")],
      },
      processRequest: {
        action: "receive",
        title: "Run requests (the workers, one consumer group)",
        channel: channelRef("requests"),
        messages: [messageRef("requests", "chatRequest")],
      },
      sendEvent: {
        action: "send",
        title: "Stream a request's events (the workers)",
        channel: channelRef("events"),
        messages: [messageRef("events", "chatEvent")],
      },
      receiveEvents: {
        action: "receive",
        title: "Follow replies (the gateways' group, each replica its share; any consumer)",
        channel: channelRef("events"),
        messages: [messageRef("events", "chatEvent")],
      },
      writeMemory: {
        action: "send",
        title: "Store a conversation (the owning worker)",
        channel: channelRef("memory"),
        messages: [messageRef("memory", "conversationState")],
      },
      readMemory: {
        action: "receive",
        title: "Restore conversations and answer the gateways' reads of them (workers)",
        channel: channelRef("memory"),
        messages: [messageRef("memory", "conversationState")],
      },
      appendHistory: {
        action: "send",
        title: "Append a request's messages (the owning worker)",
        channel: channelRef("history"),
        messages: [messageRef("history", "historyRecord")],
      },
      readHistory: {
        action: "receive",
        title: "Read a conversation at exact offsets (gateways)",
        channel: channelRef("history"),
        messages: [messageRef("history", "historyRecord")],
      },
      sendCancel: {
        action: "send",
        title: "Cancel a request (the gateway)",
        channel: channelRef("control"),
        messages: [messageRef("control", "controlRecord")],
      },
      receiveCancel: {
        action: "receive",
        title: "Stop cancelled requests (every worker)",
        channel: channelRef("control"),
        messages: [messageRef("control", "controlRecord")],
      },
      deadLetter: {
        action: "send",
        title: "Set aside a record that cannot be processed (the workers)",
        channel: channelRef("deadLetter"),
        messages: [messageRef("deadLetter", "deadLetter")],
      },
    },
    components: {
      parameters: {
        prefix: { description: "KAFKA_TOPIC_PREFIX: a prefix of every topic name (empty by default)", default: "" },
      },
    },
  };
}
