/**
 * chat.memory at scale for a benchmark, through Kafka only: a generator that writes many
 * conversation states fast (batches, several sends in flight, no compression), and a
 * reader that walks a topic from its start to its end offsets handing each record to a
 * callback (nothing kept), so a scenario can measure what any version of the code wrote.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { KafkaProducer, type OutgoingRecord } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { forEachRecord } from "../../testkit/kafka.js";

/** A conversation state of three short turns as the base code writes it, tenant "local" (GATEWAY_AUTH=none). */
export function generatedState(id: string, at: number): string {
  const messages = [
    ["user", "Tell me a story about a cat."],
    ["assistant", "A cat named Tom found a ball."],
    ["user", "What did Tom do?"],
    ["assistant", "He rolled it to Sue."],
    ["user", "Thanks!"],
    ["assistant", "The end."],
  ].map(([role, content], i) => ({ role, content, ...(i % 2 === 0 ? { request_id: `r-${id}-${i / 2}` } : {}), at }));
  return JSON.stringify({
    v: 1,
    type: "conversation",
    conversation_id: id,
    tenant: "local",
    messages,
    applied: [],
    turns: 3,
    created_at: at,
    updated_at: at,
  });
}

export function generatedId(i: number): string {
  return `state-${i.toString().padStart(7, "0")}`;
}

/**
 * Writes states generatedId(from) … generatedId(to - 1) to `topic`, keyed by id (the key's
 * murmur2 partition spreads them), `batch` records a send with `inFlight` sends at once. The
 * producer (librdkafka) batches per partition as it goes, within the broker's 1 MB a batch.
 */
export async function writeStates(
  kafka: KafkaConfig,
  topic: string,
  from: number,
  to: number,
  options: { batch?: number; inFlight?: number; at?: number } = {},
): Promise<void> {
  const batch = options.batch ?? 1000;
  const inFlight = options.inFlight ?? 4;
  const producer = await KafkaProducer.connect(kafka, { logger: createLogger("bench", "fatal"), idempotent: false });
  try {
    const at = options.at ?? Date.now();
    let next = from;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < to) {
          const start = next;
          next = Math.min(to, next + batch);
          const messages: OutgoingRecord[] = [];
          for (let i = start; i < next; i++) {
            const id = generatedId(i);
            messages.push({ key: id, value: Buffer.from(generatedState(id, at)) });
          }
          await producer.send({ topic, messages });
        }
      }),
    );
  } finally {
    await producer.disconnect();
  }
}

export interface ReadRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: Buffer | null;
}

/** Reads `topic` (or the given partitions) from the start to the end offsets of when it was called. */
export async function readTopic(kafka: KafkaConfig, topic: string, each: (r: ReadRecord) => void, partitions?: readonly number[]): Promise<void> {
  await forEachRecord(kafka, topic, (r) => each({ partition: r.partition, offset: r.offset, key: r.key?.toString() ?? null, value: r.value }), {
    fetchBytes: 16 * 1024 * 1024,
    timeoutMs: 600_000,
    ...(partitions && { partitions }),
  });
}

/**
 * Bytes of one conversation's records per turn (1-based). A record names its turn by a
 * numeric field: a memory state's `turns` (requests applied so far), a history record's
 * `seq` (0-based, so + 1); one without it (not JSON, or another shape) counts as the turn
 * after the previous record's.
 */
export class TurnTally {
  readonly #turns = new Map<number, { bytes: number; records: number }>();
  #last = 0;
  constructor(private readonly field: "turns" | "seq") {}

  add(value: Buffer): void {
    let turn = this.#last + 1;
    try {
      const n = (JSON.parse(value.toString()) as Record<string, unknown>)[this.field];
      if (typeof n === "number") turn = this.field === "seq" ? n + 1 : n;
    } catch {
      // not JSON: counted by order
    }
    this.#last = turn;
    const t = this.#turns.get(turn) ?? { bytes: 0, records: 0 };
    t.bytes += value.length;
    t.records++;
    this.#turns.set(turn, t);
  }

  at(turn: number): { bytes: number; records: number } {
    return this.#turns.get(turn) ?? { bytes: 0, records: 0 };
  }
}
