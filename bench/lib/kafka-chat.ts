/**
 * A benchmark client that talks to workers the way the gateway does, straight over Kafka:
 * it puts turns on chat.requests and follows chat.events, stamping every event with the
 * time it arrived here (performance.now), so times to first token are measured on one
 * clock, the client's.
 */
import { randomUUID } from "node:crypto";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { SCHEMA_VERSION } from "../../contracts/records/fields.js";
import { chatEventSchema, type ChatEvent, type FinalEvent } from "../../contracts/records/events.js";
import { decodeRecord, encodeRecord } from "../../contracts/records/codec.js";
import type { ContextMessage } from "../../contracts/records/requests.js";
import type { GenerationParams } from "../../contracts/generation-params.js";
import { conversationKey } from "../../contracts/conversation-key.js";
import type { TopicNames } from "../../contracts/topics.js";
import { AssignedReader } from "../../platform/kafka/assigned-reader.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { topicEnds } from "../../testkit/kafka.js";
import { benchKafkaConfig, type StackSpec } from "./stack.js";

export interface Timeline {
  requestId: string;
  conversationId: string;
  /** performance.now() just before the produce call. */
  sentAt: number;
  startAt?: number;
  firstDeltaAt?: number;
  finalAt?: number;
  workerId?: string;
  /** Attempts seen (a takeover runs a request again under a new attempt). */
  attempts: Set<string>;
  final?: FinalEvent;
  error?: string;
  deltas: number;
}

/** The tenant of every conversation BenchChat makes. */
export const BENCH_TENANT = "bench";

export class BenchChat {
  readonly timelines = new Map<string, Timeline>();
  readonly #kafka: KafkaConfig;
  readonly #topics: TopicNames;
  readonly #waiters = new Map<string, Array<() => void>>();
  #producer: KafkaProducer | null = null;
  #reader: AssignedReader | null = null;

  /** `spec`: the scenario's install, when its broker is not the run's (its principals, its TLS). */
  constructor(brokers: string, topics: TopicNames, spec?: Pick<StackSpec, "common" | "credentialsFile">) {
    this.#kafka = spec ? benchKafkaConfig(brokers, "bench", spec.common, spec.credentialsFile) : benchKafkaConfig(brokers, "bench");
    this.#topics = topics;
  }

  /** Connects the producer and follows chat.events from its ends now (every partition, no group joined). */
  async start(): Promise<void> {
    const logger = createLogger("bench", "fatal");
    // As the gateway's publisher: not idempotent, acks from all replicas.
    this.#producer = await KafkaProducer.connect(this.#kafka, { logger, idempotent: false });
    const ends = await topicEnds(this.#kafka, this.#topics.events);
    this.#reader = new AssignedReader({
      kafka: this.#kafka,
      topic: this.#topics.events,
      name: "bench-events",
      // Never joined (the bench logs in as the administrator).
      groupId: `bench-events-${randomUUID()}`,
      logger,
      readCommitted: true,
      onRecords: (records) => {
        for (const r of records) this.#onEvent(r.value);
      },
    });
    await this.#reader.start();
    for (const [partition, { high }] of ends) this.#reader.add(partition, high);
  }

  async stop(): Promise<void> {
    await this.#reader?.stop();
    await this.#producer?.disconnect();
  }

  #onEvent(value: Buffer | null): void {
    const at = performance.now();
    const decoded = decodeRecord(chatEventSchema, value);
    if (!decoded.ok) return;
    const event: ChatEvent = decoded.value;
    const t = this.timelines.get(event.request_id);
    if (!t) return;
    t.attempts.add(event.attempt);
    switch (event.type) {
      case "start":
        t.startAt ??= at;
        t.workerId = event.worker_id;
        break;
      case "delta":
        t.firstDeltaAt ??= at;
        t.deltas++;
        break;
      case "final":
        if (t.finalAt === undefined) {
          t.finalAt = at;
          t.final = event;
        }
        break;
      case "error":
        if (t.finalAt === undefined) {
          t.finalAt = at;
          t.error = `${event.code}: ${event.message}`;
        }
        break;
    }
    for (const wake of this.#waiters.get(event.request_id) ?? []) wake();
  }

  /**
   * Puts a user turn on chat.requests; returns its timeline (sentAt is stamped before the
   * send). `context`: a stateless turn's whole context (the OpenAI route's); `tenant`: whose
   * conversation it is (default BENCH_TENANT).
   */
  async turn(
    conversationId: string,
    content: string,
    options: { params?: GenerationParams; system?: string; context?: ContextMessage[]; tenant?: string } = {},
  ): Promise<Timeline> {
    const requestId = randomUUID();
    const timeline: Timeline = { requestId, conversationId, sentAt: performance.now(), attempts: new Set(), deltas: 0 };
    this.timelines.set(requestId, timeline);
    const record = {
      v: SCHEMA_VERSION,
      type: "turn",
      request_id: requestId,
      conversation_id: conversationId,
      tenant: options.tenant ?? BENCH_TENANT,
      content,
      ...(options.system === undefined ? {} : { system: options.system }),
      ...(options.params === undefined ? {} : { params: options.params }),
      ...(options.context === undefined ? {} : { context: options.context }),
      created_at: Date.now(),
    };
    await this.#producer!.send({ topic: this.#topics.requests, messages: [{ key: conversationKey(record), value: encodeRecord(record) }] });
    return timeline;
  }

  /** Resolves when the timeline matches `done`; throws after `timeoutMs` (a scenario that breaks must fail). */
  async until(timeline: Timeline, done: (t: Timeline) => boolean, timeoutMs = 60_000): Promise<Timeline> {
    const deadline = Date.now() + timeoutMs;
    while (!done(timeline)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`request ${timeline.requestId} (${timeline.conversationId}) not answered within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        const list = this.#waiters.get(timeline.requestId) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.#waiters.set(timeline.requestId, list);
      });
      this.#waiters.delete(timeline.requestId);
    }
    return timeline;
  }

  /** Waits for the final event; throws on an error event or a timeout. */
  async finished(timeline: Timeline, timeoutMs = 60_000): Promise<Timeline & { final: FinalEvent; finalAt: number }> {
    await this.until(timeline, (t) => t.finalAt !== undefined, timeoutMs);
    if (timeline.error) throw new Error(`request ${timeline.requestId} failed: ${timeline.error}`);
    this.timelines.delete(timeline.requestId);
    return timeline as Timeline & { final: FinalEvent; finalAt: number };
  }
}
