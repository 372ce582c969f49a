/**
 * What the gateway writes to Kafka: requests to chat.requests (key = the conversation key,
 * tenant and id: contracts/conversation-key.ts) and cancels to chat.control (key = request id).
 *
 * A client waiting on an HTTP call should hear "try again" quickly when Kafka is down, so
 * a record has a delivery budget of its own (KAFKA_SEND_TIMEOUT_MS: librdkafka's
 * message.timeout.ms, and a deadline on the wait) instead of long retries; past it the
 * caller gets 503 with Retry-After. librdkafka reconnects by itself, so once the broker is
 * back the next send succeeds without a restart.
 *
 * The producer is not idempotent: its retries are few by design, and a duplicate request
 * record is harmless (workers recognise a request id they already applied). A send that
 * timed out may still land afterwards; the 503 says "not accepted". A retry with the same
 * Idempotency-Key gets the same request id (gateway/intake.ts), so the request is applied
 * once; a retry without one is a new request, and then both may be answered.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { conversationKey } from "../../contracts/conversation-key.js";
import { encodeRecord } from "../../contracts/records/codec.js";
import type { ChatRequest } from "../../contracts/records/requests.js";
import type { ControlRecord } from "../../contracts/records/control.js";
import type { TopicNames } from "../../contracts/topics.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import type { Logger } from "../../platform/logger.js";
import { traceHeaders } from "../../platform/tracing.js";
import { ApiError } from "../errors.js";
import { withDeadline } from "./deadline.js";

export interface Publisher {
  /** Puts a request on chat.requests; throws ApiError kafka_unavailable when Kafka does not take it in time. */
  /** `headers`: the record's trace context (traceparent), when tracing is on. */
  /** `topic`: the request topic of the pool it goes to; absent: the default pool's. */
  publishRequest(request: ChatRequest, headers?: Readonly<Record<string, string>>, topic?: string): Promise<void>;
  /** Puts a cancel on chat.control; same failure as publishRequest. */
  publishCancel(record: ControlRecord): Promise<void>;
}

export class KafkaPublisher implements Publisher {
  readonly #producer: KafkaProducer;
  readonly #topics: TopicNames;
  readonly #timeoutMs: number;
  readonly #logger: Logger;

  private constructor(producer: KafkaProducer, topics: TopicNames, options: { timeoutMs: number; logger: Logger }) {
    this.#producer = producer;
    this.#topics = topics;
    this.#timeoutMs = options.timeoutMs;
    this.#logger = options.logger;
  }

  static async connect(kafka: KafkaConfig, topics: TopicNames, options: { timeoutMs: number; logger: Logger }): Promise<KafkaPublisher> {
    const producer = await KafkaProducer.connect(kafka, { logger: options.logger, idempotent: false, deliveryTimeoutMs: options.timeoutMs });
    return new KafkaPublisher(producer, topics, options);
  }

  /** Why the producer cannot go on, or null. */
  failure(): string | null {
    return this.#producer.failure();
  }

  disconnect(): Promise<void> {
    return this.#producer.disconnect();
  }

  publishRequest(request: ChatRequest, headers?: Readonly<Record<string, string>>, topic?: string): Promise<void> {
    return this.#send(topic ?? this.#topics.requests, conversationKey(request), encodeRecord(request), request.request_id, headers);
  }

  publishCancel(record: ControlRecord): Promise<void> {
    return this.#send(this.#topics.control, record.request_id, encodeRecord(record), record.request_id, traceHeaders());
  }

  async #send(topic: string, key: string, value: Buffer, requestId: string, headers?: Readonly<Record<string, string>>): Promise<void> {
    try {
      await withDeadline(this.#producer.send({ topic, messages: [{ key, value, ...(headers && { headers }) }] }), this.#timeoutMs, `produce to ${topic}`);
    } catch (err) {
      this.#logger.warn({ topic, request_id: requestId, err }, "Kafka did not take a record");
      throw new ApiError("kafka_unavailable", "Kafka is not reachable right now; try again shortly", { cause: err });
    }
  }
}
