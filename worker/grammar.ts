/**
 * Grammars for structured outputs, made once per schema and kept: building a grammar from
 * a JSON schema costs milliseconds, and agents send the same schema turn after turn.
 * Schemas arrive normalized (contracts/grammar-schema.ts); a grammar holds what
 * grammarSchemaOf keeps of one (the rest is checked after generation, worker/schema-check.ts),
 * and a request's schemas are held to the grammar bounds (contracts/grammar-bounds.ts) before any is built:
 * the gateway refuses what passes them, and a record from an older gateway ends with an
 * invalid_request error here. Building one then only fails on a bug, reported as
 * generation_failed without the schema: neither a grammar nor a schema's values are logged.
 */
import type { GbnfJsonSchema, Llama, LlamaGrammar, LlamaJsonSchemaGrammar } from "node-llama-cpp";
import { KafkaLlmError } from "../contracts/errors.js";
import type { GenerationParams, ResponseFormat } from "../contracts/generation-params.js";
import { checkGrammarBounds, requestSchemas } from "../contracts/grammar-bounds.js";
import { grammarSchemaOf } from "../contracts/grammar-schema.js";

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

  /**
   * The grammar of one normalized JSON schema (what grammarSchemaOf keeps of it); least
   * recently used ones are dropped past 64. A schema over the grammar bounds is refused
   * (invalid_request) before anything is built.
   */
  forSchema(normalized: Record<string, unknown>): Promise<JsonGrammar> {
    const schema = grammarSchemaOf(normalized);
    const key = JSON.stringify(schema);
    let grammar = this.#bySchema.get(key);
    if (grammar === undefined) {
      assertWithinGrammarBounds([{ path: ["schema"], schema }]);
      // The schema's type is only known at run time, so the generic overload is bypassed.
      const create = this.#llama.createGrammarForJsonSchema.bind(this.#llama) as (s: GbnfJsonSchema) => Promise<JsonGrammar>;
      grammar = create(schema as GbnfJsonSchema).catch((err: unknown) => {
        // node-llama-cpp's errors may quote the grammar; the cause is not kept.
        throw new KafkaLlmError("generation_failed", `the grammar of the schema could not be built (${errorName(err)})`);
      });
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

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

/**
 * Refuses (KafkaLlmError invalid_request) the schemas of a request that pass a grammar bound,
 * before any grammar is built: the gateway refuses them with a 400, so such a request comes
 * from a gateway older than the bound. The message names the parameter and the bound, but
 * not the path inside the schema (property names are the tenant's), since it is logged.
 */
export function assertWithinGrammarBounds(schemas: Parameters<typeof checkGrammarBounds>[0]): void {
  const { problem } = checkGrammarBounds(schemas);
  if (problem === null) return;
  const param = problem.path.slice(0, problem.path[0] === "tools" ? 2 : 1).join(".");
  throw new KafkaLlmError("invalid_request", `${param}: ${problem.message}`);
}

/** The grammar bounds over all the schemas of a request's params (response_format and tools). */
export function assertParamsWithinGrammarBounds(params: GenerationParams): void {
  assertWithinGrammarBounds(requestSchemas(params));
}

const caches = new WeakMap<Llama, GrammarCache>();

/** The cache shared by every sequence of one llama.cpp instance. */
export function grammarCacheFor(llama: Llama): GrammarCache {
  let cache = caches.get(llama);
  if (cache === undefined) caches.set(llama, (cache = new GrammarCache(llama)));
  return cache;
}
