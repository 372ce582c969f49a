/**
 * Writes one request's events to chat.events in order, numbering them 0, 1, 2, … without
 * gaps. Sends are chained so a slow send never lets a later event overtake it; the first
 * failure is kept and reported by `settle()`, which the turn awaits before it commits.
 */
import type { Producer } from "kafkajs";

/** The one producer call the worker's writers make (a kafkajs producer; a stand-in in unit tests). */
export type RecordSink = Pick<Producer, "send">;
import { SCHEMA_VERSION, encodeRecord, type ChatEvent, type ChatRequest } from "../contracts/records.js";

export type EventBody<E = ChatEvent> = E extends ChatEvent ? Omit<E, "v" | "request_id" | "conversation_id" | "tenant" | "attempt" | "seq" | "at"> : never;

type RequestKeys = Pick<ChatRequest, "request_id" | "conversation_id" | "tenant">;

export class EventWriter {
  #seq = 0;
  #tail: Promise<void> = Promise.resolve();
  #failure: unknown = null;
  readonly #producer: RecordSink;
  readonly #topic: string;
  readonly #request: RequestKeys;
  /** This run of the request; a re-run by another worker gets another. */
  readonly attempt: string;

  /** `firstSeq`: where numbering starts (a reply continued from a handover goes on from there). */
  constructor(producer: RecordSink, topic: string, request: RequestKeys, attempt: string, firstSeq = 0) {
    this.#seq = firstSeq;
    this.#producer = producer;
    this.#topic = topic;
    this.#request = request;
    this.attempt = attempt;
  }

  /** Numbers an event without sending it (so it can be stored before it is sent). */
  next<B extends EventBody>(body: B): Extract<ChatEvent, { type: B["type"] }> {
    return {
      v: SCHEMA_VERSION,
      request_id: this.#request.request_id,
      conversation_id: this.#request.conversation_id,
      tenant: this.#request.tenant,
      attempt: this.attempt,
      seq: this.#seq++,
      at: Date.now(),
      ...body,
    } as unknown as Extract<ChatEvent, { type: B["type"] }>;
  }

  /** Queues an event made by next() (or stored earlier); returns at once. */
  send(event: ChatEvent): void {
    const message = { key: event.conversation_id, value: encodeRecord(event) };
    this.#tail = this.#tail.then(async () => {
      if (this.#failure !== null) return;
      try {
        await this.#producer.send({ topic: this.#topic, acks: -1, messages: [message] });
      } catch (err) {
        this.#failure = err;
      }
    });
  }

  /** next() then send(). */
  write(body: EventBody): void {
    this.send(this.next(body));
  }

  /** Waits for every queued event; throws the first send failure. */
  async settle(): Promise<void> {
    await this.#tail;
    if (this.#failure !== null) throw this.#failure;
  }

  /** The seq the next event takes (events numbered so far, including any before a handover). */
  get eventsWritten(): number {
    return this.#seq;
  }
}
