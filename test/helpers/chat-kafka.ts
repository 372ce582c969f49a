/**
 * Talks to the workers the way the gateway does, straight over Kafka: produces requests
 * and cancels, follows chat.events, and reads chat.memory back. For worker tests that
 * should not depend on the gateway.
 */
import { randomUUID } from "node:crypto";
import kafkajs, { type Consumer, type Kafka as KafkaClient, type KafkaConfig, type Producer } from "kafkajs";
import {
  SCHEMA_VERSION,
  chatEventSchema,
  conversationStateSchema,
  isTerminalEvent,
  type ChatEvent,
  type ConversationState,
  type ErrorEvent,
  type FinalEvent,
  type GenerationParams,
} from "../../contracts/records.js";
import type { TopicNames } from "../../contracts/topics.js";
import { conversationKey, parseConversationKey } from "../../contracts/conversation-key.js";
import { kafkajsClient, type TestKafka } from "./kafka.js";

const { Kafka, Partitioners, logLevel } = kafkajs;

export class ChatOverKafka {
  readonly events = new Map<string, ChatEvent[]>();
  /** The chat.events partition of each event in `events`, by request id, in the same order. */
  readonly partitions = new Map<string, number[]>();
  readonly #waiters = new Map<string, Array<() => void>>();
  readonly #kafka: KafkaClient;
  readonly #topics: TopicNames;
  #producer: Producer | null = null;
  #consumer: Consumer | null = null;

  /** Logged in as the broker's administrator (tests observe everything); `ssl` for a TLS listener. */
  constructor(kafka: Pick<TestKafka, "brokers" | "credentials">, topics: TopicNames, options: Pick<KafkaConfig, "ssl"> = {}) {
    this.#kafka = new Kafka({ ...kafkajsClient(kafka), logLevel: logLevel.NOTHING, clientId: "test-client", ...options });
    this.#topics = topics;
  }

  get kafka(): KafkaClient {
    return this.#kafka;
  }

  async start(): Promise<void> {
    this.#producer = this.#kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await this.#producer.connect();
    this.#consumer = this.#kafka.consumer({ groupId: `test-events-${randomUUID()}`, maxWaitTimeInMs: 100 });
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.#topics.events, fromBeginning: true });
    await this.#consumer.run({
      autoCommit: false,
      eachMessage: async ({ message, partition }) => {
        const event = chatEventSchema.parse(JSON.parse(message.value!.toString()));
        const list = this.events.get(event.request_id) ?? [];
        list.push(event);
        this.events.set(event.request_id, list);
        this.partitions.set(event.request_id, [...(this.partitions.get(event.request_id) ?? []), partition]);
        for (const wake of this.#waiters.get(event.request_id) ?? []) wake();
      },
    });
  }

  async stop(): Promise<void> {
    await this.#consumer?.disconnect();
    await this.#producer?.disconnect();
  }

  /** Produces a request record, keyed as the gateway keys it: its conversation key (or `key`, to test a wrong one). */
  async produce(value: { tenant: string; conversation_id: string; [field: string]: unknown }, key = conversationKey(value)): Promise<void> {
    await this.produceRaw(Buffer.from(JSON.stringify(value)), key);
  }

  async produceRaw(value: Buffer, key: string): Promise<void> {
    await this.#producer!.send({ topic: this.#topics.requests, messages: [{ key, value }] });
  }

  /** Sends a user turn; returns its request id. */
  async turn(
    conversationId: string,
    content: string,
    extra: { params?: GenerationParams; system?: string; tenant?: string; context?: unknown[] } = {},
  ): Promise<string> {
    const requestId = randomUUID();
    await this.produce({
      v: SCHEMA_VERSION,
      type: "turn",
      request_id: requestId,
      conversation_id: conversationId,
      tenant: extra.tenant ?? "t1",
      content,
      ...(extra.system === undefined ? {} : { system: extra.system }),
      ...(extra.params === undefined ? {} : { params: extra.params }),
      ...(extra.context === undefined ? {} : { context: extra.context }),
      created_at: Date.now(),
    });
    return requestId;
  }

  async open(conversationId: string, greeting: boolean, tenant = "t1"): Promise<string> {
    const requestId = randomUUID();
    await this.produce({ v: SCHEMA_VERSION, type: "open", request_id: requestId, conversation_id: conversationId, tenant, greeting, created_at: Date.now() });
    return requestId;
  }

  async remove(conversationId: string, tenant = "t1"): Promise<string> {
    const requestId = randomUUID();
    await this.produce({ v: SCHEMA_VERSION, type: "delete", request_id: requestId, conversation_id: conversationId, tenant, created_at: Date.now() });
    return requestId;
  }

  async cancel(requestId: string, tenant = "t1"): Promise<void> {
    await this.#producer!.send({
      topic: this.#topics.control,
      messages: [
        { key: requestId, value: JSON.stringify({ v: SCHEMA_VERSION, type: "cancel", request_id: requestId, tenant, reason: "test", at: Date.now() }) },
      ],
    });
  }

  /** Resolves when `predicate` holds for the request's events (checked on each new event). */
  async waitFor(requestId: string, predicate: (events: ChatEvent[]) => boolean, timeoutMs = 60_000): Promise<ChatEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.events.get(requestId) ?? [])) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting on request ${requestId}: ${JSON.stringify(this.events.get(requestId) ?? [])}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        const list = this.#waiters.get(requestId) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.#waiters.set(requestId, list);
      });
      this.#waiters.delete(requestId);
    }
    return this.events.get(requestId)!;
  }

  /** The request's terminal event, once there is one. */
  async terminal(requestId: string, timeoutMs?: number): Promise<FinalEvent | ErrorEvent> {
    const events = await this.waitFor(requestId, (list) => list.some(isTerminalEvent), timeoutMs);
    return events.find(isTerminalEvent)!;
  }

  /** chat.memory read to its current end: the latest state of each of `tenant`'s conversations, by id (null = deleted). */
  async readMemory(tenant = "t1"): Promise<Map<string, ConversationState | null>> {
    const admin = this.#kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(this.#topics.memory);
    await admin.disconnect();
    const target = new Map(ends.map((o) => [o.partition, BigInt(o.high)]));
    const pending = new Set([...target].filter(([, high]) => high > 0n).map(([p]) => p));
    const states = new Map<string, ConversationState | null>();
    if (pending.size === 0) return states;
    const consumer = this.#kafka.consumer({ groupId: `test-memory-${randomUUID()}`, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: this.#topics.memory, fromBeginning: true });
    await new Promise<void>((resolve) => {
      void consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          const ref = parseConversationKey(message.key!.toString());
          if (ref?.tenant === tenant) {
            states.set(ref.conversation_id, message.value === null ? null : conversationStateSchema.parse(JSON.parse(message.value.toString())));
          }
          if (BigInt(message.offset) + 1n >= target.get(partition)!) {
            pending.delete(partition);
            if (pending.size === 0) resolve();
          }
        },
      });
    });
    await consumer.disconnect();
    return states;
  }
}

/** The text a request's events streamed, and its terminal events, for assertions. */
export function summary(events: ChatEvent[]): { finals: Array<FinalEvent | ErrorEvent>; attempts: Set<string> } {
  return { finals: events.filter(isTerminalEvent), attempts: new Set(events.map((e) => e.attempt)) };
}
