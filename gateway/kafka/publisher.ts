/**
 * What the gateway writes to Kafka: requests to chat.requests (key = the conversation key,
 * tenant and id: contracts/conversation-key.ts) and cancels to chat.control (key = request id).
 *
 * A client waiting on an HTTP call should hear "try again" quickly when Kafka is down, so
 * a send has a budget of its own (KAFKA_SEND_TIMEOUT_MS) instead of kafkajs's long default
 * retries; past it the caller gets 503 with Retry-After. kafkajs reconnects by itself, so
 * once the broker is back the next send succeeds without a restart.
 *
 * The producer is not idempotent: its retries are few by design, and a duplicate request
 * record is harmless (workers recognise a request id they already applied). A send that
 * timed out may still land afterwards; the 503 says "not accepted", the client's retry
 * gets a new request id, and at worst both are answered.
 */
import type { Kafka, Producer } from "kafkajs";
import { conversationKey } from "../../contracts/conversation-key.js";
import { encodeRecord, type ChatRequest, type ControlRecord } from "../../contracts/records.js";
import type { TopicNames } from "../../contracts/topics.js";
import { createProducer } from "../../platform/kafka.js";
import type { Logger } from "../../platform/logger.js";
import { ApiError } from "../errors.js";
import { withDeadline } from "./deadline.js";

export interface Publisher {
  /** Puts a request on chat.requests; throws ApiError kafka_unavailable when Kafka does not take it in time. */
  publishRequest(request: ChatRequest): Promise<void>;
  /** Puts a cancel on chat.control; same failure as publishRequest. */
  publishCancel(record: ControlRecord): Promise<void>;
}

export class KafkaPublisher implements Publisher {
  readonly #producer: Producer;
  readonly #topics: TopicNames;
  readonly #timeoutMs: number;
  readonly #logger: Logger;

  constructor(kafka: Kafka, topics: TopicNames, options: { timeoutMs: number; logger: Logger }) {
    this.#topics = topics;
    this.#timeoutMs = options.timeoutMs;
    this.#logger = options.logger;
    this.#producer = createProducer(kafka, {
      idempotent: false,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: Math.max(200, Math.floor(options.timeoutMs / 3)) },
    });
  }

  connect(): Promise<void> {
    return this.#producer.connect();
  }

  disconnect(): Promise<void> {
    return this.#producer.disconnect();
  }

  publishRequest(request: ChatRequest): Promise<void> {
    return this.#send(this.#topics.requests, conversationKey(request), encodeRecord(request), request.request_id);
  }

  publishCancel(record: ControlRecord): Promise<void> {
    return this.#send(this.#topics.control, record.request_id, encodeRecord(record), record.request_id);
  }

  async #send(topic: string, key: string, value: Buffer, requestId: string): Promise<void> {
    try {
      await withDeadline(
        this.#producer.send({ topic, acks: -1, timeout: this.#timeoutMs, messages: [{ key, value }] }),
        this.#timeoutMs,
        `produce to ${topic}`,
      );
    } catch (err) {
      this.#logger.warn({ topic, request_id: requestId, err }, "Kafka did not take a record");
      throw new ApiError("kafka_unavailable", "Kafka is not reachable right now; try again shortly", { cause: err });
    }
  }
}
