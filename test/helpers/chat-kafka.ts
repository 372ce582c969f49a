/**
 * Talks to the workers the way the gateway does, straight over Kafka: produces requests
 * and cancels, follows chat.events, and reads chat.memory back. For worker tests that
 * should not depend on the gateway.
 */
import { randomUUID } from "node:crypto";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { chatEventSchema, isTerminalEvent, type ChatEvent, type ErrorEvent, type FinalEvent } from "../../contracts/records/events.js";
import { conversationStateSchema, landedAsExpected, type ConversationState } from "../../contracts/records/memory.js";
import type { GenerationParams } from "../../contracts/generation-params.js";
import type { TopicNames } from "../../contracts/topics.js";
import { conversationKey, parseConversationKey } from "../../contracts/conversation-key.js";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { AssignedReader } from "../../platform/kafka/assigned-reader.js";
import { KafkaProducer, type Delivered, type OutgoingRecord } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { kafkaConfigFor, readTopic, type TestKafka } from "../../testkit/kafka.js";

export class ChatOverKafka {
  readonly events = new Map<string, ChatEvent[]>();
  /** The chat.events partition of each event in `events`, by request id, in the same order. */
  readonly partitions = new Map<string, number[]>();
  readonly #waiters = new Map<string, Array<() => void>>();
  readonly #config: KafkaConfig;
  readonly #topics: TopicNames;
  #producer: KafkaProducer | null = null;
  #reader: AssignedReader | null = null;
  readonly #unreadable: string[] = [];

  /** Logged in as the broker's administrator (tests observe everything); `tls` for a TLS listener. */
  constructor(kafka: Pick<TestKafka, "brokers" | "credentials">, topics: TopicNames, options: { tls?: KafkaConfig["tls"] } = {}) {
    this.#config = { ...kafkaConfigFor(kafka, "admin", options.tls ?? null), clientId: "test-client" };
    this.#topics = topics;
  }

  /** The administrator's KafkaConfig this client uses, for a test's own clients (platform/kafka/). */
  get config(): KafkaConfig {
    return this.#config;
  }

  /** Connects the producer and reads chat.events from its start (every partition, no group joined). */
  async start(): Promise<void> {
    const logger = createLogger("test-client", "fatal");
    this.#producer = await KafkaProducer.connect(this.#config, { logger });
    const partitions = await this.#eventPartitions();
    this.#reader = new AssignedReader({
      kafka: this.#config,
      topic: this.#topics.events,
      name: "test-events",
      // Never joined: the administrator may name any group.
      groupId: `test-events-${randomUUID()}`,
      logger,
      onRecords: (records) => {
        for (const r of records) {
          try {
            this.#onEvent(r.partition, r.value);
          } catch (err) {
            // Not a chat event: said when a wait times out.
            this.#unreadable.push(`${r.partition}@${r.offset}: ${(err as Error).message.slice(0, 200)}`);
          }
        }
      },
    });
    await this.#reader.start();
    for (const p of partitions) this.#reader.add(p, 0);
  }

  /** chat.events's partitions, once the topic exists (the services create it as they start). */
  async #eventPartitions(): Promise<number[]> {
    const admin = new KafkaAdmin(this.#config);
    const deadline = Date.now() + 30_000;
    try {
      for (;;) {
        try {
          const partitions = (await admin.partitions([this.#topics.events])).get(this.#topics.events) ?? [];
          if (partitions.length > 0) return partitions;
        } catch (err) {
          if (Date.now() > deadline) throw err;
        }
        if (Date.now() > deadline) throw new Error(`${this.#topics.events} has no partitions`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      admin.close();
    }
  }

  #onEvent(partition: number, value: Buffer | null): void {
    const event = chatEventSchema.parse(JSON.parse(value!.toString()));
    const list = this.events.get(event.request_id) ?? [];
    list.push(event);
    this.events.set(event.request_id, list);
    this.partitions.set(event.request_id, [...(this.partitions.get(event.request_id) ?? []), partition]);
    for (const wake of this.#waiters.get(event.request_id) ?? []) wake();
  }

  async stop(): Promise<void> {
    await this.#reader?.stop();
    await this.#producer?.disconnect();
  }

  /** Sends records to any topic with this client's producer (keyed records: the key's murmur2 partition); where each landed. */
  send(topic: string, messages: readonly OutgoingRecord[]): Promise<Delivered[]> {
    return this.#producer!.send({ topic, messages });
  }

  /** Produces a request record, keyed as the gateway keys it: its conversation key (or `key`, to test a wrong one). */
  async produce(value: { tenant: string; conversation_id: string; [field: string]: unknown }, key = conversationKey(value)): Promise<void> {
    await this.produceRaw(Buffer.from(JSON.stringify(value)), key);
  }

  async produceRaw(value: Buffer, key: string): Promise<void> {
    await this.send(this.#topics.requests, [{ key, value }]);
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
    await this.send(this.#topics.control, [
      {
        key: requestId,
        value: Buffer.from(JSON.stringify({ v: SCHEMA_VERSION, type: "cancel", request_id: requestId, tenant, reason: "test", at: Date.now() })),
      },
    ]);
  }

  /** Resolves when `predicate` holds for the request's events (checked on each new event). */
  async waitFor(requestId: string, predicate: (events: ChatEvent[]) => boolean, timeoutMs = 60_000): Promise<ChatEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.events.get(requestId) ?? [])) {
      const left = deadline - Date.now();
      if (left <= 0) {
        const unreadable = this.#unreadable.length ? `; records on chat.events that are no chat event: ${this.#unreadable.join("; ")}` : "";
        throw new Error(`timed out waiting on request ${requestId}: ${JSON.stringify(this.events.get(requestId) ?? [])}${unreadable}`);
      }
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
    const states = new Map<string, ConversationState | null>();
    // In offset order per partition, and a conversation's records are all in one: the last one wins.
    for (const record of await readTopic(this.#config, this.#topics.memory)) {
      // A replaced worker's record, which landed where it did not expect: no reader takes it.
      if (!landedAsExpected(record)) continue;
      const ref = parseConversationKey(record.key!.toString());
      if (ref?.tenant !== tenant) continue;
      states.set(ref.conversation_id, record.value === null ? null : conversationStateSchema.parse(JSON.parse(record.value.toString())));
    }
    return states;
  }
}

/** The text a request's events streamed, and its terminal events, for assertions. */
export function summary(events: ChatEvent[]): { finals: Array<FinalEvent | ErrorEvent>; attempts: Set<string> } {
  return { finals: events.filter(isTerminalEvent), attempts: new Set(events.map((e) => e.attempt)) };
}
