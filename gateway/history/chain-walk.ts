/**
 * One read's walk along a conversation's chain in chat.history: finds records by seq from
 * the head (the memory record's fingers) in O(log n) hops, searches by message index or
 * time (binary search, records remembered within the read), and collects a range of
 * messages walking back along links[0]. A read thus costs hops to what it returns, never
 * the partition's other conversations.
 */
import { conversationKey, type ConversationRef } from "../../contracts/conversation-key.js";
import { hopToward } from "../../contracts/history-chain.js";
import { decodeRecord } from "../../contracts/records/codec.js";
import { historyRecordSchema, type HistoryHead, type HistoryMessage, type HistoryRecord } from "../../contracts/records/history.js";
import type { OffsetFetcher } from "../../platform/kafka/offset-reader.js";

export interface IndexedMessage extends HistoryMessage {
  index: number;
  created_at: number;
  request_id: string;
}

/** A chain position: a record read, or the head (seq = records, links = fingers). */
interface Node {
  seq: number;
  links: readonly number[];
}

export class ChainWalk {
  readonly #fetcher: OffsetFetcher;
  readonly #head: HistoryHead;
  readonly #conversation: string;
  readonly #records = new Map<number, HistoryRecord | null>();
  /** Kafka fetches this walk made (what a read costs). */
  hops = 0;

  /** `conversation`: the conversation key (tenant and id) whose chain this is. */
  constructor(fetcher: OffsetFetcher, conversation: ConversationRef, head: HistoryHead) {
    this.#fetcher = fetcher;
    this.#conversation = conversationKey(conversation);
    this.#head = head;
  }

  /** Record `seq` of the chain; null when it aged out of the topic (retention). */
  async record(seq: number): Promise<HistoryRecord | null> {
    if (seq < 0 || seq >= this.#head.records) throw new RangeError(`record ${seq} is outside the chain of ${this.#head.records}`);
    if (this.#records.has(seq)) return this.#records.get(seq)!;
    let node: Node = { seq: this.#head.records, links: this.#head.fingers };
    // Start from the nearest record already read above the target.
    for (const [s, r] of this.#records) if (r && s > seq && s < node.seq) node = r;
    while (node.seq !== seq) {
      const hop = hopToward(node.seq, node.links.length, seq);
      const cached = this.#records.get(hop.seq);
      const next = cached !== undefined ? cached : await this.#fetch(node.links[hop.level]!, hop.seq);
      if (!next) {
        this.#records.set(seq, null);
        return null;
      }
      node = next;
    }
    return node as HistoryRecord;
  }

  async #fetch(offset: number, seq: number): Promise<HistoryRecord | null> {
    this.hops++;
    const fetched = await this.#fetcher.fetch(this.#head.partition, offset);
    const decoded = fetched ? decodeRecord(historyRecordSchema, fetched.value) : null;
    const record = decoded?.ok ? decoded.value : null;
    // A record of this chain, where its link said: anything else means the chain is broken there (aged out).
    const ok = record !== null && conversationKey(record) === this.#conversation && record.epoch === this.#head.epoch && record.seq === seq;
    this.#records.set(seq, ok ? record : null);
    return ok ? record : null;
  }

  /**
   * The largest seq whose record satisfies `pred` (true for a prefix of the chain), or -1.
   * Records that aged out count as satisfying it (they are the oldest).
   */
  async lastSeqWhere(pred: (r: HistoryRecord) => boolean): Promise<number> {
    let lo = -1;
    let hi = this.#head.records - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi + 1) / 2);
      const r = await this.record(mid);
      if (!r || pred(r)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The seq of the record holding message `index` (< head.messages). */
  seqOfIndex(index: number): Promise<number> {
    return this.lastSeqWhere((r) => r.index <= index);
  }

  /** Messages lo..hi (inclusive), oldest first; stops early at a record that aged out. */
  async messages(lo: number, hi: number): Promise<IndexedMessage[]> {
    if (lo > hi) return [];
    const out: IndexedMessage[] = [];
    let seq = await this.seqOfIndex(hi);
    while (seq >= 0) {
      const r = await this.record(seq);
      if (!r) break;
      for (let i = r.messages.length - 1; i >= 0; i--) {
        const index = r.index + i;
        if (index >= lo && index <= hi) out.push({ ...r.messages[i]!, index, created_at: r.at, request_id: r.request_id });
      }
      if (r.index <= lo) break;
      seq--;
    }
    return out.reverse();
  }

  /** The first message index created at or after `since` (head.messages when none). */
  async firstIndexSince(since: number): Promise<number> {
    const seq = (await this.lastSeqWhere((r) => r.at < since)) + 1;
    if (seq >= this.#head.records) return this.#head.messages;
    const r = await this.record(seq);
    return r ? r.index : this.#head.messages;
  }

  /** The last message index created at or before `until` (-1 when none). */
  async lastIndexUntil(until: number): Promise<number> {
    const seq = await this.lastSeqWhere((r) => r.at <= until);
    if (seq < 0) return -1;
    const r = await this.record(seq);
    return r ? r.index + r.messages.length - 1 : -1;
  }
}
