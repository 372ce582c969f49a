/**
 * Writes one request's events to chat.events in order, numbering them 0, 1, 2, … without
 * gaps. One send is in flight at a time, so a slow send never lets a later event overtake
 * it; events queued meanwhile go together in the next send (one record batch, one
 * acks=all round trip), so a reply's deltas cost round trips at the pace Kafka acks them,
 * not one each. An event nothing waits for (the start, a reply's last delta) may be held
 * for the next send, so it costs no round trip of its own: the start goes with the first
 * delta, the last delta with the final. The first failure is kept and reported by
 * `settle()`, which the turn awaits before it commits.
 *
 * Every event goes to the request's `events_partition` when it names a partition of
 * chat.events (the gateway replica that reads it), else to the conversation key's partition. Kafka's
 * answer to each send gives the offset of every event in it (one delivery report each): the
 * turn stores where its events start, and learns where its final landed.
 */
import { conversationKey } from "../contracts/conversation-key.js";
import { SCHEMA_VERSION } from "../contracts/records/fields.js";
import { encodeRecord } from "../contracts/records/codec.js";
import type { ChatEvent } from "../contracts/records/events.js";
import type { ChatRequest } from "../contracts/records/requests.js";
import type { RecordSink } from "../platform/kafka/producer.js";
import type { Logger } from "../platform/logger.js";

/** The one producer call the worker's writers make (platform/kafka/producer.ts; a stand-in in unit tests). */
export type { Delivered, RecordSink } from "../platform/kafka/producer.js";

export type EventBody<E = ChatEvent> = E extends ChatEvent ? Omit<E, "v" | "request_id" | "conversation_id" | "tenant" | "attempt" | "seq" | "at"> : never;

type RequestKeys = Pick<ChatRequest, "request_id" | "conversation_id" | "tenant">;

/** Where an event is on chat.events. */
export interface EventPosition {
  readonly partition: number;
  readonly offset: number;
}

/** The partition the producers' partitioner gives `key` among `partitions` (platform/kafka/partitioner.ts). */
export { keyPartition } from "../platform/kafka/partitioner.js";

/**
 * The chat.events partition a request's events go to: its `events_partition` when that is
 * a partition of the topic (0 ≤ p < `eventPartitions`); undefined (the key's partition)
 * when absent or out of range, which is logged once, here.
 */
export function eventsPartitionOf(request: Pick<ChatRequest, "request_id" | "events_partition">, eventPartitions: number, logger: Logger): number | undefined {
  const p = request.events_partition;
  if (p === undefined) return undefined;
  if (p < eventPartitions) return p;
  logger.warn(
    { request_id: request.request_id, events_partition: p, event_partitions: eventPartitions },
    "events_partition is not a partition of chat.events; its events go to the conversation's partition",
  );
  return undefined;
}

export class EventWriter {
  #seq = 0;
  /** Events queued behind the send in flight. */
  #queued: Array<{ key: string; value: Buffer; seq: number; terminal: boolean }> = [];
  /** Where the first event this writer sent landed; null until its send is acked. */
  #first: EventPosition | null = null;
  /** Where the last terminal event (final or error) this writer sent landed. */
  #terminal: EventPosition | undefined;
  readonly #terminalSeqs = new Set<number>();
  readonly #partition: number | undefined;
  /** The send loop while it runs; null when everything queued is written. */
  #sending: Promise<void> | null = null;
  /** Sends what is held, if no other send took it first. */
  #holdTimer: NodeJS.Timeout | null = null;
  #failure: unknown = null;
  #sends = 0;
  readonly #producer: RecordSink;
  readonly #topic: string;
  readonly #request: RequestKeys;
  /** This run of the request; a re-run by another worker gets another. */
  readonly attempt: string;
  /** The turn's trace context (traceparent), sent with the terminal event so the gateway's read links to this run; none while tracing is off. */
  traceHeaders: Readonly<Record<string, string>> | undefined;

  /**
   * `firstSeq`: where numbering starts (a reply continued from a handover goes on from there).
   * `partition`: the chat.events partition (eventsPartitionOf); undefined: the key's.
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

  /**
   * Queues an event made by next() (or stored earlier); returns at once. It is sent now if
   * no send is in flight, else with the next send. `holdMs`: it waits up to that long for
   * a later event to go with (the next send() without it, settle() or firstPosition()).
   */
  send(event: ChatEvent, options: { holdMs?: number } = {}): void {
    // After a failure nothing more is sent: a later event must not land without those before it.
    if (this.#failure !== null) return;
    const terminal = event.type === "final" || event.type === "error";
    if (terminal) this.#terminalSeqs.add(event.seq);
    this.#queued.push({ key: conversationKey(event), value: encodeRecord(event), seq: event.seq, terminal });
    if (options.holdMs && !this.#sending) this.#holdTimer ??= setTimeout(() => this.#sendHeld(), options.holdMs);
    else this.#sendHeld();
  }

  /**
   * Sends a terminal event through `transaction` (an open Kafka transaction, with the
   * turn's memory record and its request's offset) once every event queued before it is
   * acked, so it lands after them; it is seen when the transaction commits. Throws the
   * send's failure, or an earlier one.
   */
  async sendThrough(transaction: RecordSink, event: ChatEvent): Promise<void> {
    await this.settle();
    this.#terminalSeqs.add(event.seq);
    this.#sends++;
    const partition = this.#partition;
    const [at] = await transaction.send({
      topic: this.#topic,
      messages: [{ key: conversationKey(event), value: encodeRecord(event), ...(partition === undefined ? {} : { partition }), ...this.#headers() }],
    });
    if (at === undefined || at.offset < 0) return;
    const position = { partition: at.partition, offset: at.offset };
    this.#first ??= position;
    this.#terminal = position;
  }

  /** next() then send(). */
  write(body: EventBody, options: { holdMs?: number } = {}): void {
    this.send(this.next(body), options);
  }

  /** Waits for every queued event (sending what is held); throws the first send failure. */
  async settle(): Promise<void> {
    this.#sendHeld();
    while (this.#sending) await this.#sending;
    if (this.#failure !== null) throw this.#failure;
  }

  /** The partition given at construction (undefined: the key's). */
  get partition(): number | undefined {
    return this.#partition;
  }

  /**
   * Where the first event this writer sent landed, once Kafka acked it (waits for a send in
   * flight); null when nothing was sent. Throws the send's failure.
   */
  async firstPosition(): Promise<EventPosition | null> {
    if (this.#first === null) this.#sendHeld();
    while (this.#first === null && this.#sending) await this.#sending;
    if (this.#failure !== null) throw this.#failure;
    return this.#first;
  }

  /** Where the terminal event this writer sent landed, once its send was acked (see settle). */
  get terminalPosition(): EventPosition | undefined {
    return this.#terminal;
  }

  /** The seq the next event takes (events numbered so far, including any before a handover). */
  get eventsWritten(): number {
    return this.#seq;
  }

  /** Producer calls made so far (each carries every event queued when it began). */
  get sends(): number {
    return this.#sends;
  }

  #headers(): { headers?: Readonly<Record<string, string>> } {
    return this.traceHeaders === undefined ? {} : { headers: this.traceHeaders };
  }

  /** Starts the send loop for what is queued, unless it runs (it takes everything queued). */
  #sendHeld(): void {
    if (this.#holdTimer) clearTimeout(this.#holdTimer);
    this.#holdTimer = null;
    // The loop awaits a send before it ends, so it never finishes inside this call.
    if (this.#queued.length > 0) this.#sending ??= this.#sendQueued();
  }

  async #sendQueued(): Promise<void> {
    // Starts in the caller's tick: the first event of a quiet writer goes out at once.
    while (this.#queued.length > 0 && this.#failure === null) {
      const messages = this.#queued;
      this.#queued = [];
      this.#sends++;
      try {
        const partition = this.#partition;
        const delivered = await this.#producer.send({
          topic: this.#topic,
          messages: messages.map((m) => ({
            key: m.key,
            value: m.value,
            ...(partition === undefined ? {} : { partition }),
            ...(m.terminal && this.#headers()),
          })),
        });
        // Where each event landed, in the order sent.
        messages.forEach((q, i) => {
          const at = delivered[i];
          if (at === undefined || at.offset < 0) return;
          const position = { partition: at.partition, offset: at.offset };
          this.#first ??= position;
          if (this.#terminalSeqs.has(q.seq)) this.#terminal = position;
        });
      } catch (err) {
        this.#failure = err;
      }
    }
    this.#queued = [];
    this.#sending = null;
  }
}
