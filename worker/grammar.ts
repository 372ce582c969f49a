/**
 * Grammars for structured outputs, made once per schema and kept: building a grammar from
 * a JSON schema costs milliseconds, and agents send the same schema turn after turn.
 * Schemas arrive normalized and checked (contracts/grammar-schema.ts), so building one only
 * fails on a bug, reported as generation_failed.
 */
import type { GbnfJsonSchema, Llama, LlamaGrammar, LlamaJsonSchemaGrammar } from "node-llama-cpp";
import type { ResponseFormat } from "../contracts/generation-params.js";

const MAX_CACHED = 64;

export type JsonGrammar = LlamaJsonSchemaGrammar<GbnfJsonSchema>;

export class GrammarCache {
  readonly #llama: Llama;
  readonly #bySchema = new Map<string, Promise<JsonGrammar>>();
  #json: Promise<LlamaGrammar> | null = null;

  constructor(llama: Llama) {
    this.#llama = llama;
  }

  /** Any JSON value (json_object), llama.cpp's JSON grammar. */
  json(): Promise<LlamaGrammar> {
    this.#json ??= this.#llama.getGrammarFor("json");
    return this.#json;
  }

  /** The grammar of one JSON schema; least recently used ones are dropped past 64. */
  forSchema(schema: Record<string, unknown>): Promise<JsonGrammar> {
    const key = JSON.stringify(schema);
    let grammar = this.#bySchema.get(key);
    if (grammar === undefined) {
      // The schema's type is only known at run time, so the generic overload is bypassed.
      const create = this.#llama.createGrammarForJsonSchema.bind(this.#llama) as (s: GbnfJsonSchema) => Promise<JsonGrammar>;
      grammar = create(schema as GbnfJsonSchema);
      grammar.catch(() => this.#bySchema.delete(key));
    } else {
      this.#bySchema.delete(key);
    }
    this.#bySchema.set(key, grammar);
    while (this.#bySchema.size > MAX_CACHED) this.#bySchema.delete(this.#bySchema.keys().next().value!);
    return grammar;
  }

  /** The grammar a response_format asks for; undefined for plain text. */
  async forResponseFormat(format: ResponseFormat | undefined): Promise<LlamaGrammar | undefined> {
    if (format === undefined || format.type === "text") return undefined;
    if (format.type === "json_object" || format.json_schema.schema === undefined) return this.json();
    return this.forSchema(format.json_schema.schema);
  }
}

const caches = new WeakMap<Llama, GrammarCache>();

/** The cache shared by every sequence of one llama.cpp instance. */
export function grammarCacheFor(llama: Llama): GrammarCache {
  let cache = caches.get(llama);
  if (cache === undefined) caches.set(llama, (cache = new GrammarCache(llama)));
  return cache;
}
