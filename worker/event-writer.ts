/**
 * Writes one request's events to chat.events in order, numbering them 0, 1, 2, … without
 * gaps. Sends are chained so a slow send never lets a later event overtake it; the first
 * failure is kept and reported by `settle()`, which the turn awaits before it commits.
 */
import type { Producer } from "kafkajs";
import {
  SCHEMA_VERSION,
  encodeRecord,
  type ChatEvent,
  type ChatRequest,
} from "../contracts/records.js";

type EventBody<E = ChatEvent> = E extends ChatEvent
  ? Omit<E, "v" | "request_id" | "conversation_id" | "tenant" | "attempt" | "seq" | "at">
  : never;

export class EventWriter {
  #seq = 0;
  #tail: Promise<void> = Promise.resolve();
  #failure: unknown = null;
  readonly #producer: Producer;
  readonly #topic: string;
  readonly #request: Pick<ChatRequest, "request_id" | "conversation_id" | "tenant">;
  /** This run of the request; a re-run by another worker gets another. */
  readonly attempt: string;

  constructor(producer: Producer, topic: string, request: Pick<ChatRequest, "request_id" | "conversation_id" | "tenant">, attempt: string) {
    this.#producer = producer;
    this.#topic = topic;
    this.#request = request;
    this.attempt = attempt;
  }

  /** Queues an event; returns at once. */
  write(body: EventBody): void {
    const event = {
      v: SCHEMA_VERSION,
      request_id: this.#request.request_id,
      conversation_id: this.#request.conversation_id,
      tenant: this.#request.tenant,
      attempt: this.attempt,
      seq: this.#seq++,
      at: Date.now(),
      ...body,
    } as ChatEvent;
    const message = { key: this.#request.conversation_id, value: encodeRecord(event) };
    this.#tail = this.#tail.then(async () => {
      if (this.#failure !== null) return;
      try {
        await this.#producer.send({ topic: this.#topic, acks: -1, messages: [message] });
      } catch (err) {
        this.#failure = err;
      }
    });
  }

  /** Waits for every queued event; throws the first send failure. */
  async settle(): Promise<void> {
    await this.#tail;
    if (this.#failure !== null) throw this.#failure;
  }

  get eventsWritten(): number {
    return this.#seq;
  }
}
