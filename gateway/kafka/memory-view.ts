/**
 * The gateway's read-only view of chat.memory, for GET /v1/conversations/{id}/messages and
 * for telling which tenant a conversation belongs to. Each replica reads the whole
 * compacted topic (a consumer group of its own, from the beginning) and keeps the latest
 * value per conversation as raw bytes, parsed only when asked for.
 *
 * Bounded: at most MEMORY_VIEW_MAX_BYTES of values. Past that the conversations written
 * longest ago are dropped from the view (not from Kafka) and answer 404 here until their
 * next write; `kafka_llm_gateway_memory_view_evicted_total` counts them. Size the limit
 * for the compacted topic, or expect old conversations' history to be unreadable here.
 *
 * Read-your-writes: `sync()` waits (briefly) until the view has read every partition up
 * to the end offsets Kafka reports at the time of the call, so a memory write that
 * finished before the call (the worker writes memory before a turn's final event) is
 * visible to the read that follows it. When Kafka cannot be asked, the view answers with
 * what it has.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import type { Admin, Consumer, Kafka } from "kafkajs";
import { conversationStateSchema, decodeRecord, type ConversationState } from "../../contracts/records.js";
import { handleConsumerCrash } from "../../platform/kafka.js";
import type { Logger } from "../../platform/logger.js";
import { withDeadline } from "./deadline.js";
import { ReadProgress } from "./read-progress.js";

interface Entry {
  bytes: Buffer;
}

export interface MemoryView {
  /** The latest state of a conversation, or undefined when unknown or deleted. */
  get(conversationId: string): ConversationState | undefined;
  /** Waits until the view holds every memory write Kafka had when called; false on timeout. */
  sync(timeoutMs?: number): Promise<boolean>;
  /** True once the topic has been read up to where it ended at start (or that took over 60 s). */
  caughtUp(): boolean;
  /** Why the consumer stopped for good (kafkajs gave up restarting it), or null while it runs. */
  failure(): string | null;
  readonly size: number;
  readonly bytes: number;
  stop(): Promise<void>;
}

/** The bytes of each conversation's latest state, oldest-written dropped first past a byte budget. */
export class ConversationBytes {
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #evicted = 0;
  readonly #maxBytes: number;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Takes a record: a value replaces the conversation's state, null (a tombstone) deletes it. */
  put(conversationId: string, value: Buffer | null): void {
    const old = this.#entries.get(conversationId);
    if (old) {
      this.#bytes -= old.bytes.length;
      this.#entries.delete(conversationId); // re-inserted last: Map order = write order
    }
    if (value === null) return;
    this.#entries.set(conversationId, { bytes: value });
    this.#bytes += value.length;
    for (const [id, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(id);
      this.#bytes -= entry.bytes.length;
      this.#evicted++;
    }
  }

  get(conversationId: string): ConversationState | undefined {
    const entry = this.#entries.get(conversationId);
    if (!entry) return undefined;
    const decoded = decodeRecord(conversationStateSchema, entry.bytes);
    return decoded.ok ? decoded.value : undefined;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get evicted(): number {
    return this.#evicted;
  }
}

export async function startMemoryView(options: {
  kafka: Kafka;
  admin: Admin;
  topic: string;
  maxBytes: number;
  logger: Logger;
  onEvict?: (count: number) => void;
}): Promise<MemoryView> {
  const { kafka, admin, topic } = options;
  const log = options.logger.child({ component: "memory-view" });
  const store = new ConversationBytes(options.maxBytes);
  const progress = new ReadProgress();
  const consumer: Consumer = kafka.consumer({
    groupId: `kafka-llm-gateway-memory-${os.hostname()}-${randomUUID()}`,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 250,
  });
  progress.watch(consumer);
  // Empty (or fully expired) partitions have no batch to report: they start read.
  const offsets = await admin.fetchTopicOffsets(topic);
  for (const p of offsets) progress.advance(topic, p.partition, BigInt(p.low));
  let caughtUp = false;
  void progress
    .waitFor(
      offsets.map((p) => ({ topic, partition: p.partition, offset: p.high })),
      60_000,
    )
    .then((reached) => {
      caughtUp = true;
      if (reached) log.info({ conversations: store.size, bytes: store.bytes }, "read chat.memory");
      else log.warn({ conversations: store.size }, "chat.memory not read to its end within 60 s; serving what has been read");
    });

  let warnedAt = 0;
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    // Positions are committed only so that a restart inside the process resumes; the
    // view itself lives in memory and is rebuilt from the beginning by a new process.
    autoCommit: true,
    autoCommitInterval: 5000,
    eachMessage: async ({ message }) => {
      if (!message.key) return;
      const key = message.key.toString("utf8");
      // '#' keys are the workers' own (restore fences, handed-over replies), never conversations.
      if (key.startsWith("#")) return;
      const before = store.evicted;
      store.put(key, message.value);
      if (store.evicted > before) {
        options.onEvict?.(store.evicted - before);
        if (Date.now() - warnedAt > 60_000) {
          warnedAt = Date.now();
          log.warn(
            { max_bytes: options.maxBytes, evicted: store.evicted },
            "memory view is full: dropping the conversations written longest ago (raise MEMORY_VIEW_MAX_BYTES)",
          );
        }
      }
    },
  });
  // /healthz fails once this is set, so the gateway is restarted.
  const failure = handleConsumerCrash(consumer, { name: "chat.memory consumer", logger: log });

  return {
    get: (id) => store.get(id),
    caughtUp: () => caughtUp,
    failure,
    async sync(timeoutMs = 2000) {
      const started = Date.now();
      let ends;
      try {
        const offsets = await withDeadline(admin.fetchTopicOffsets(topic), timeoutMs, "chat.memory end offsets");
        ends = offsets.map((p) => ({ topic, partition: p.partition, offset: p.high }));
      } catch (err) {
        log.debug({ err }, "cannot fetch chat.memory end offsets; answering from the view");
        return false;
      }
      return progress.waitFor(ends, Math.max(0, timeoutMs - (Date.now() - started)));
    },
    get size() {
      return store.size;
    },
    get bytes() {
      return store.bytes;
    },
    stop: () => consumer.disconnect(),
  };
}
