/**
 * Writes one request's events to chat.events in order, numbering them 0, 1, 2, … without
 * gaps. One send is in flight at a time, so a slow send never lets a later event overtake
 * it; events queued meanwhile go together in the next send (one record batch, one
 * acks=all round trip), so a reply's deltas cost round trips at the pace Kafka acks them,
 * not one each. The first failure is kept and reported by `settle()`, which the turn
 * awaits before it commits.
 */
import type { Producer } from "kafkajs";

/** The one producer call the worker's writers make (a kafkajs producer; a stand-in in unit tests). */
export type RecordSink = Pick<Producer, "send">;
import { SCHEMA_VERSION, encodeRecord, type ChatEvent, type ChatRequest } from "../contracts/records.js";

export type EventBody<E = ChatEvent> = E extends ChatEvent ? Omit<E, "v" | "request_id" | "conversation_id" | "tenant" | "attempt" | "seq" | "at"> : never;

type RequestKeys = Pick<ChatRequest, "request_id" | "conversation_id" | "tenant">;

/**
 * The chat.events partition a request's events go to: the one its gateway asked for
 * (a partition that replica reads), or undefined (Kafka's default partitioner by key) when
 * it asked for none or for one the topic does not have.
 */
export function eventsPartitionOf(request: Pick<ChatRequest, "events_partition">, eventPartitions: number): number | undefined {
  const p = request.events_partition;
  return p !== undefined && p < eventPartitions ? p : undefined;
}

export class EventWriter {
  #seq = 0;
  /** Events queued behind the send in flight. */
  #queued: Array<{ key: string; value: Buffer; partition?: number }> = [];
  /** The send loop while it runs; null when everything queued is written. */
  #sending: Promise<void> | null = null;
  #failure: unknown = null;
  #sends = 0;
  readonly #producer: RecordSink;
  readonly #topic: string;
  readonly #request: RequestKeys;
  readonly #partition: number | undefined;
  /** This run of the request; a re-run by another worker gets another. */
  readonly attempt: string;

  /**
   * `firstSeq`: where numbering starts (a reply continued from a handover goes on from there);
   * `partition`: the chat.events partition to write to (see eventsPartitionOf), undefined: by key.
   */
  constructor(producer: RecordSink, topic: string, request: RequestKeys, attempt: string, firstSeq = 0, partition?: number) {
    this.#seq = firstSeq;
    this.#partition = partition;
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

  /** Queues an event made by next() (or stored earlier); returns at once. It is sent now if no send is in flight. */
  send(event: ChatEvent): void {
    // After a failure nothing more is sent: a later event must not land without those before it.
    if (this.#failure !== null) return;
    this.#queued.push({ key: event.conversation_id, value: encodeRecord(event), ...(this.#partition !== undefined && { partition: this.#partition }) });
    // The loop awaits a send before it ends, so it never finishes inside this call.
    this.#sending ??= this.#sendQueued();
  }

  /** next() then send(). */
  write(body: EventBody): void {
    this.send(this.next(body));
  }

  /** Waits for every queued event; throws the first send failure. */
  async settle(): Promise<void> {
    while (this.#sending) await this.#sending;
    if (this.#failure !== null) throw this.#failure;
  }

  /** The seq the next event takes (events numbered so far, including any before a handover). */
  get eventsWritten(): number {
    return this.#seq;
  }

  /** Producer calls made so far (each carries every event queued when it began). */
  get sends(): number {
    return this.#sends;
  }

  async #sendQueued(): Promise<void> {
    // Starts in the caller's tick: the first event of a quiet writer goes out at once.
    while (this.#queued.length > 0 && this.#failure === null) {
      const messages = this.#queued;
      this.#queued = [];
      this.#sends++;
      try {
        await this.#producer.send({ topic: this.#topic, acks: -1, messages });
      } catch (err) {
        this.#failure = err;
      }
    }
    this.#queued = [];
    this.#sending = null;
  }
}
