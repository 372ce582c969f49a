/**
 * A LangChain.js chat message history kept in Kafka by a kafka-llm gateway: every
 * message of the conversation `sessionId`, appended in order and exactly once by the
 * worker that owns the conversation, read back whole or from the beginning, from the
 * latest, or from where a named reader stopped (a position the gateway keeps in Kafka,
 * so it holds across history objects, processes and gateway replicas).
 */
import { BaseListChatMessageHistory } from "@langchain/core/chat_history";
import type { BaseMessage } from "@langchain/core/messages";
import { KafkaChatHistoryError } from "./errors.js";
import { GatewayClient, type HistoryPage, type HistoryQuery } from "./gateway-client.js";
import { fromHistoryRecord, toHistoryInput } from "./message-mapping.js";

/** Bounds of one read; both unset reads everything there is. */
export interface ReadOptions {
  /** At most this many messages (a positive integer). */
  maxMessageCount?: number;
  /** Only messages created in the last `maxTimeMs` milliseconds (a time window ending now). */
  maxTimeMs?: number;
}

export interface KafkaChatMessageHistoryInput extends ReadOptions {
  /** The gateway's base URL, e.g. `http://kafka-llm-gateway:8080`. */
  baseUrl: string;
  /** The conversation id (letters, digits, `.`, `_`, `:`, `-`; at most 128). Created on the first append. */
  sessionId: string;
  /** The gateway API key, sent as a Bearer token; it names the tenant. Omit when the gateway runs without keys. */
  apiKey?: string;
  /**
   * A reader name (`^[A-Za-z0-9._-]{1,64}$`). With it, `messagesFromBeginning`,
   * `messagesFromLatest` and `messagesFromLastConsumed` record where they stopped, and
   * `messagesFromLastConsumed` continues from there.
   */
  reader?: string;
  /** Per HTTP request, milliseconds (default 30,000). */
  timeoutMs?: number;
  /** How long `addMessages` and `clear` wait for a queued change to be applied, milliseconds (default 60,000). */
  applyTimeoutMs?: number;
  /** Retries of a request the gateway says may succeed later, e.g. while Kafka is unreachable (default 2). */
  maxRetries?: number;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
}

/** The most a gateway returns in one page, and takes in one append. */
const PAGE_LIMIT = 500;
const APPEND_LIMIT = 100;
const READER_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export class KafkaChatMessageHistory extends BaseListChatMessageHistory {
  lc_namespace = ["langchain", "stores", "message", "kafka_llm"];

  override get lc_secrets(): { [key: string]: string } | undefined {
    return { apiKey: "KAFKA_LLM_API_KEY" };
  }

  readonly sessionId: string;
  readonly reader: string | undefined;
  private readonly defaults: ReadOptions;
  private readonly client: GatewayClient;

  constructor(fields: KafkaChatMessageHistoryInput) {
    super(fields);
    const problems: string[] = [];
    let baseUrl = "";
    try {
      const url = new URL(fields.baseUrl);
      if (url.protocol !== "http:" && url.protocol !== "https:") problems.push(`baseUrl must be http or https, not ${url.protocol}`);
      baseUrl = url.toString();
    } catch {
      problems.push(`baseUrl must be an absolute URL such as http://gateway:8080, not ${JSON.stringify(fields.baseUrl)}`);
    }
    if (typeof fields.sessionId !== "string" || fields.sessionId === "") problems.push("sessionId must be a non-empty conversation id");
    if (fields.reader !== undefined && !READER_NAME.test(fields.reader)) {
      problems.push(`reader must match ${READER_NAME.source} (letters, digits, '.', '_', '-'; 1 to 64), not ${JSON.stringify(fields.reader)}`);
    }
    problems.push(...readOptionProblems(fields));
    for (const name of ["timeoutMs", "applyTimeoutMs"] as const) {
      const v = fields[name];
      if (v !== undefined && !(Number.isFinite(v) && v > 0)) problems.push(`${name} must be a positive number of milliseconds, not ${String(v)}`);
    }
    if (fields.maxRetries !== undefined && !(Number.isInteger(fields.maxRetries) && fields.maxRetries >= 0)) {
      problems.push(`maxRetries must be an integer >= 0, not ${String(fields.maxRetries)}`);
    }
    if (problems.length > 0) throw new TypeError(`KafkaChatMessageHistory: ${problems.join("; ")}`);

    this.sessionId = fields.sessionId;
    this.reader = fields.reader;
    this.defaults = { maxMessageCount: fields.maxMessageCount, maxTimeMs: fields.maxTimeMs };
    this.client = new GatewayClient({
      baseUrl,
      apiKey: fields.apiKey,
      timeoutMs: fields.timeoutMs ?? 30_000,
      applyTimeoutMs: fields.applyTimeoutMs ?? 60_000,
      maxRetries: fields.maxRetries ?? 2,
      fetch: fields.fetch ?? globalThis.fetch.bind(globalThis),
    });
  }

  /** Every message of the conversation, oldest first ([] for a conversation that does not exist yet). Moves no reader. */
  async getMessages(): Promise<BaseMessage[]> {
    const records = [];
    let page = await this.client.readPage(this.sessionId, { from: "beginning", limit: PAGE_LIMIT });
    while (page !== null) {
      records.push(...page.messages);
      if (!page.has_more_after || page.last_cursor === null) break;
      page = await this.client.readPage(this.sessionId, { after: page.last_cursor, limit: PAGE_LIMIT });
    }
    return records.map(fromHistoryRecord);
  }

  async addMessage(message: BaseMessage): Promise<void> {
    await this.addMessages([message]);
  }

  /** Appends the messages in order without generating a reply: one request per 100 messages; resolves once they are applied. */
  override async addMessages(messages: BaseMessage[]): Promise<void> {
    const inputs = messages.map(toHistoryInput); // all or nothing: refuse before sending any
    for (let i = 0; i < inputs.length; i += APPEND_LIMIT) await this.client.append(this.sessionId, inputs.slice(i, i + APPEND_LIMIT));
  }

  /** Deletes the conversation (history, memory and readers' positions); nothing to do when it does not exist. */
  override async clear(): Promise<void> {
    await this.client.delete(this.sessionId);
  }

  /**
   * The oldest messages (within `maxTimeMs` when given), oldest first, at most
   * `maxMessageCount`. With a reader, its position becomes the last message returned.
   */
  async messagesFromBeginning(options: ReadOptions = {}): Promise<BaseMessage[]> {
    const { max, since } = this.bounds(options);
    const records = [];
    let page = await this.client.readPage(this.sessionId, { from: "beginning", limit: Math.min(max, PAGE_LIMIT), since, reader: this.reader });
    while (page !== null) {
      records.push(...page.messages);
      if (records.length >= max || !page.has_more_after || page.last_cursor === null || page.messages.length === 0) break;
      const limit = Math.min(max - records.length, PAGE_LIMIT);
      // The reader's position is the last message of the previous page: continuing from it also moves it on.
      const next: HistoryQuery = this.reader === undefined ? { after: page.last_cursor } : { from: "last_consumed", reader: this.reader };
      page = await this.client.readPage(this.sessionId, { ...next, limit, since });
    }
    return records.map(fromHistoryRecord);
  }

  /**
   * The newest messages (within `maxTimeMs` when given), oldest first, at most
   * `maxMessageCount`. With a reader, its position becomes the newest message.
   */
  async messagesFromLatest(options: ReadOptions = {}): Promise<BaseMessage[]> {
    const { max, since } = this.bounds(options);
    const pages: HistoryPage[] = [];
    let count = 0;
    let page = await this.client.readPage(this.sessionId, { from: "latest", limit: Math.min(max, PAGE_LIMIT), since, reader: this.reader });
    while (page !== null) {
      pages.unshift(page);
      count += page.messages.length;
      if (count >= max || !page.has_more_before || page.first_cursor === null || page.messages.length === 0) break;
      // Older pages name no reader: its position stays at the newest message.
      page = await this.client.readPage(this.sessionId, { before: page.first_cursor, limit: Math.min(max - count, PAGE_LIMIT), since });
    }
    return pages.flatMap((p) => p.messages).map(fromHistoryRecord);
  }

  /**
   * The messages after the reader's position (within `maxTimeMs` when given), oldest
   * first, at most `maxMessageCount`; the position moves to the last one returned. Needs
   * `reader`; a reader that has never read gets the gateway's "unknown reader" error
   * (make a first read with messagesFromBeginning or messagesFromLatest).
   */
  async messagesFromLastConsumed(options: ReadOptions = {}): Promise<BaseMessage[]> {
    if (this.reader === undefined) {
      throw new TypeError("messagesFromLastConsumed needs a reader: construct the KafkaChatMessageHistory with { reader: 'name' }");
    }
    const { max, since } = this.bounds(options);
    const records = [];
    while (records.length < max) {
      const reader = this.reader;
      const page: HistoryPage | null = await this.client
        .readPage(this.sessionId, { from: "last_consumed", reader, limit: Math.min(max - records.length, PAGE_LIMIT), since })
        .catch((err: unknown) => {
          throw withReaderHint(err, reader);
        });
      if (page === null) break;
      records.push(...page.messages);
      if (!page.has_more_after || page.messages.length === 0) break;
    }
    return records.map(fromHistoryRecord);
  }

  private bounds(options: ReadOptions): { max: number; since: number | undefined } {
    const problems = readOptionProblems(options);
    if (problems.length > 0) throw new TypeError(`KafkaChatMessageHistory: ${problems.join("; ")}`);
    const maxMessageCount = options.maxMessageCount ?? this.defaults.maxMessageCount;
    const maxTimeMs = options.maxTimeMs ?? this.defaults.maxTimeMs;
    return { max: maxMessageCount ?? Infinity, since: maxTimeMs === undefined ? undefined : Math.floor(Date.now() - maxTimeMs) };
  }
}

/** The gateway's "unknown reader" 400, with the calls that start a reader in this package's terms. */
function withReaderHint(err: unknown, reader: string): unknown {
  if (!(err instanceof KafkaChatHistoryError) || err.status !== 400 || !/unknown reader/i.test(err.message)) return err;
  return new KafkaChatHistoryError(
    `${err.message}; with KafkaChatMessageHistory, start reader "${reader}" with messagesFromBeginning() or messagesFromLatest()`,
    {
      status: err.status,
      code: err.code,
      retryable: err.retryable,
      cause: err,
    },
  );
}

function readOptionProblems(options: ReadOptions): string[] {
  const problems: string[] = [];
  const { maxMessageCount, maxTimeMs } = options;
  if (maxMessageCount !== undefined && !(Number.isInteger(maxMessageCount) && maxMessageCount >= 1)) {
    problems.push(`maxMessageCount must be an integer >= 1, not ${String(maxMessageCount)}`);
  }
  if (maxTimeMs !== undefined && !(Number.isFinite(maxTimeMs) && maxTimeMs > 0))
    problems.push(`maxTimeMs must be a positive number of milliseconds, not ${String(maxTimeMs)}`);
  return problems;
}
