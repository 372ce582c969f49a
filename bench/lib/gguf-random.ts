/**
 * A GGUF file of a real architecture (llama) with random weights, for throughput benches
 * on a machine that can download no model (bench/gpu.sh on a GPU machine that reaches
 * nothing outside): decode speed depends on the shapes and the quantization, not on what
 * the weights are, so a file with Llama 3.2 1B's or Llama 3.1 8B's shapes, in F16 or Q8_0,
 * runs at that model's speed and says nothing about quality.
 *
 * Written with Node's own fs (GGUF v3, as llama.cpp's gguf.cpp reads it): the metadata
 * llama.cpp's llama loader needs, a SentencePiece ("llama") vocabulary that tokenizes any
 * text (single characters, "▁" words, the 256 byte-fallback tokens, padded to the shape's
 * vocabulary size), and the tensors. Weights come from a seeded PRNG, so one shape and
 * seed always give the same bytes (a generation with temperature 0 is reproducible); a
 * pool of a few MiB is repeated through the tensors, which keeps an 8B file at disk speed.
 *
 * writeRandomLora writes a LoRA adapter GGUF for a shape, as llama.cpp's
 * convert_lora_to_gguf.py lays one out and src/llama-adapter.cpp loads it (node-llama-cpp's
 * `createContext({ lora })`): random A and B that change what the model generates.
 */
import { closeSync, openSync, renameSync, writeSync } from "node:fs";

export interface LlamaShape {
  /** Hidden size (llama.embedding_length). */
  embd: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** llama.feed_forward_length. */
  ff: number;
  vocab: number;
  context: number;
  ropeBase: number;
  /** No output.weight: the output layer is token_embd (Llama 3.2 1B). */
  tiedEmbeddings: boolean;
}

/** Shapes of published models (their config.json), and a tiny one for tests. */
export const SHAPES: Readonly<Record<string, LlamaShape>> = {
  tiny: { embd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 128, vocab: 512, context: 2048, ropeBase: 10_000, tiedEmbeddings: false },
  // meta-llama/Llama-3.2-1B
  "1b": { embd: 2048, layers: 16, heads: 32, kvHeads: 8, ff: 8192, vocab: 128_256, context: 131_072, ropeBase: 500_000, tiedEmbeddings: true },
  // meta-llama/Llama-3.1-8B
  "8b": { embd: 4096, layers: 32, heads: 32, kvHeads: 8, ff: 14_336, vocab: 128_256, context: 131_072, ropeBase: 500_000, tiedEmbeddings: false },
};

/** Weight types: ggml_type ids and general.file_type (llama_ftype) values. */
export const WEIGHT_TYPES = {
  f16: { ggmlType: 1, fileType: 1, blockValues: 1, blockBytes: 2 },
  q8_0: { ggmlType: 8, fileType: 7, blockValues: 32, blockBytes: 34 },
} as const;
export type WeightType = keyof typeof WEIGHT_TYPES;
const F32 = 0;

export interface RandomGgufOptions {
  shape: LlamaShape;
  type: WeightType;
  path: string;
  seed?: number;
  name?: string;
}

interface TensorInfo {
  name: string;
  /** ne[0] first, as GGUF lists them: [inputs, outputs] for a weight matrix. */
  dims: number[];
  ggmlType: number;
  bytes: number;
}

/** The tensors of a llama model, as llama.cpp's llama loader names and shapes them. */
export function llamaTensors(shape: LlamaShape, type: WeightType): TensorInfo[] {
  const headDim = shape.embd / shape.heads;
  const kv = headDim * shape.kvHeads;
  const w = WEIGHT_TYPES[type];
  const weight = (name: string, dims: number[]): TensorInfo => {
    if (dims[0]! % w.blockValues !== 0) throw new Error(`${name}: ${dims[0]} is not a multiple of ${type}'s block of ${w.blockValues}`);
    return { name, dims, ggmlType: w.ggmlType, bytes: (dims.reduce((a, b) => a * b, 1) / w.blockValues) * w.blockBytes };
  };
  const norm = (name: string): TensorInfo => ({ name, dims: [shape.embd], ggmlType: F32, bytes: shape.embd * 4 });
  const tensors = [weight("token_embd.weight", [shape.embd, shape.vocab]), norm("output_norm.weight")];
  if (!shape.tiedEmbeddings) tensors.push(weight("output.weight", [shape.embd, shape.vocab]));
  for (let i = 0; i < shape.layers; i++) {
    const b = `blk.${i}`;
    tensors.push(
      norm(`${b}.attn_norm.weight`),
      weight(`${b}.attn_q.weight`, [shape.embd, shape.embd]),
      weight(`${b}.attn_k.weight`, [shape.embd, kv]),
      weight(`${b}.attn_v.weight`, [shape.embd, kv]),
      weight(`${b}.attn_output.weight`, [shape.embd, shape.embd]),
      norm(`${b}.ffn_norm.weight`),
      weight(`${b}.ffn_gate.weight`, [shape.embd, shape.ff]),
      weight(`${b}.ffn_up.weight`, [shape.embd, shape.ff]),
      weight(`${b}.ffn_down.weight`, [shape.ff, shape.embd]),
    );
  }
  return tensors;
}

/** Parameters of a shape (all weights, norms included). */
export function parameterCount(shape: LlamaShape): number {
  return llamaTensors(shape, "f16").reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
}

/** Token types of llama.cpp's vocabulary (llama_token_type). */
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const BYTE = 6;

/**
 * A SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens (any text can be
 * tokenized), printable ASCII characters alone and after "▁" (a space), then filler
 * pieces up to `size`. Scores favour shorter pieces' merges the way SentencePiece does
 * (higher is merged first).
 */
export function spmVocabulary(size: number): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [UNKNOWN, CONTROL, CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(BYTE);
  }
  const pieces = ["▁"];
  for (let c = 33; c < 127; c++) pieces.push(String.fromCharCode(c));
  for (let c = 33; c < 127; c++) pieces.push(`▁${String.fromCharCode(c)}`);
  for (const p of pieces) {
    if (tokens.length >= size) break;
    tokens.push(p);
    types.push(NORMAL);
  }
  for (let i = 0; tokens.length < size; i++) {
    tokens.push(`▁w${i}`);
    types.push(NORMAL);
  }
  if (tokens.length > size) throw new Error(`a vocabulary needs at least ${tokens.length} tokens`);
  const scores = tokens.map((_, i) => (types[i] === NORMAL ? -i : 0));
  return { tokens, scores, types };
}

/** GGUF metadata value types (gguf_type). */
const GGUF = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;
type Kv =
  [key: string, type: "u32" | "f32" | "bool" | "string", value: number | boolean | string] | [key: string, "array", "string" | "f32" | "i32", unknown[]];

/** Serializes GGUF's header and metadata pieces into one growing buffer. */
class GgufBuffer {
  #chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer) {
    this.#chunks.push(b);
    this.length += b.length;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  string(s: string) {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  value(type: "u32" | "i32" | "f32" | "bool" | "string", v: unknown) {
    if (type === "u32") this.u32(v as number);
    else if (type === "i32") this.i32(v as number);
    else if (type === "f32") this.f32(v as number);
    else if (type === "bool") this.push(Buffer.from([v ? 1 : 0]));
    else this.string(v as string);
  }
  kv(entry: Kv) {
    this.string(entry[0]);
    if (entry[1] === "array") {
      this.u32(GGUF.array);
      this.u32(GGUF[entry[2]]);
      this.u64(entry[3].length);
      for (const v of entry[3]) this.value(entry[2], v);
    } else {
      this.u32(GGUF[entry[1]]);
      this.value(entry[1], entry[2]);
    }
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

const ALIGNMENT = 32;
const pad = (n: number) => (ALIGNMENT - (n % ALIGNMENT)) % ALIGNMENT;

/** xorshift32: a small seeded PRNG (the weights need no quality, only reproducibility). */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** IEEE half precision bits of a small float (normal range only, which is all we write). */
function f16Bits(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  if (v === 0 || exp <= 0) return sign;
  return sign | (exp << 10) | ((u >>> 13) & 0x3ff);
}

/** Weight amplitude: uniform in ±AMPLITUDE (std ≈ 0.02, as initialised models are). */
const AMPLITUDE = 0.035;
const POOL_BYTES = 4 << 20;

/** A pool of valid weight bytes of one type: whole blocks, every value finite and small. */
function weightPool(type: WeightType, next: () => number): Buffer {
  const w = WEIGHT_TYPES[type];
  const blocks = Math.floor(POOL_BYTES / w.blockBytes);
  const pool = Buffer.alloc(blocks * w.blockBytes);
  if (type === "f16") {
    const table = Array.from({ length: 256 }, (_, i) => f16Bits(((i - 127.5) / 127.5) * AMPLITUDE));
    for (let i = 0; i < blocks; i++) pool.writeUInt16LE(table[next() & 0xff]!, i * 2);
  } else {
    // Q8_0: an f16 scale d, then 32 int8 quants; value = d × q.
    const d = f16Bits(AMPLITUDE / 127);
    for (let i = 0; i < blocks; i++) {
      const o = i * w.blockBytes;
      pool.writeUInt16LE(d, o);
      for (let j = 0; j < 32; j++) pool.writeInt8(((next() & 0xff) % 255) - 127, o + 2 + j);
    }
  }
  return pool;
}

/** GGUF v3's header: magic, version, metadata, tensor infos (offsets in order), padded to the data's alignment. */
function ggufHeader(kvs: Kv[], tensors: TensorInfo[]): Buffer {
  const head = new GgufBuffer();
  head.push(Buffer.from("GGUF", "ascii"));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(kvs.length);
  for (const kv of kvs) head.kv(kv);
  let offset = 0;
  for (const t of tensors) {
    head.string(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(t.ggmlType);
    head.u64(offset);
    offset += t.bytes + pad(t.bytes);
  }
  head.push(Buffer.alloc(pad(head.length)));
  return head.toBuffer();
}

/** Runs `body` with a writer to `path`'s temporary name, renamed to `path` when it returns; returns the bytes written. */
function writeFileAtomically(path: string, body: (write: (b: Buffer) => void) => void): number {
  const tmp = `${path}.partial`;
  const fd = openSync(tmp, "w");
  let size = 0;
  try {
    body((b) => {
      for (let o = 0; o < b.length;) o += writeSync(fd, b, o, b.length - o);
      size += b.length;
    });
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return size;
}

/** Writes the model to `path` (through a temporary name, renamed when complete); returns its size in bytes. */
export function writeRandomGguf(options: RandomGgufOptions): number {
  const { shape, type } = options;
  if (shape.embd % shape.heads !== 0 || shape.heads % shape.kvHeads !== 0) throw new Error("embd must divide by heads, and heads by kvHeads");
  const headDim = shape.embd / shape.heads;
  const vocab = spmVocabulary(shape.vocab);
  const tensors = llamaTensors(shape, type);
  const name = options.name ?? `random-llama-${type}`;

  const kvs: Kv[] = [
    ["general.architecture", "string", "llama"],
    ["general.name", "string", name],
    ["general.description", "string", "Random weights for throughput benches (bench/gguf-random.ts): the shapes of a real model, no meaning."],
    ["general.file_type", "u32", WEIGHT_TYPES[type].fileType],
    ["general.alignment", "u32", ALIGNMENT],
    ["llama.context_length", "u32", shape.context],
    ["llama.embedding_length", "u32", shape.embd],
    ["llama.block_count", "u32", shape.layers],
    ["llama.feed_forward_length", "u32", shape.ff],
    ["llama.attention.head_count", "u32", shape.heads],
    ["llama.attention.head_count_kv", "u32", shape.kvHeads],
    ["llama.rope.dimension_count", "u32", headDim],
    ["llama.rope.freq_base", "f32", shape.ropeBase],
    ["llama.attention.layer_norm_rms_epsilon", "f32", 1e-5],
    ["llama.vocab_size", "u32", shape.vocab],
    ["tokenizer.ggml.model", "string", "llama"],
    ["tokenizer.ggml.tokens", "array", "string", vocab.tokens],
    ["tokenizer.ggml.scores", "array", "f32", vocab.scores],
    ["tokenizer.ggml.token_type", "array", "i32", vocab.types],
    ["tokenizer.ggml.unknown_token_id", "u32", 0],
    ["tokenizer.ggml.bos_token_id", "u32", 1],
    ["tokenizer.ggml.eos_token_id", "u32", 2],
    ["tokenizer.ggml.add_bos_token", "bool", true],
    ["tokenizer.ggml.add_eos_token", "bool", false],
  ];

  const next = prng(options.seed ?? 1);
  const pool = weightPool(type, next);
  const ones = Buffer.alloc(shape.embd * 4);
  for (let i = 0; i < shape.embd; i++) ones.writeFloatLE(1, i * 4);

  return writeFileAtomically(options.path, (write) => {
    write(ggufHeader(kvs, tensors));
    let start = 0;
    for (const t of tensors) {
      if (t.ggmlType === F32) write(ones);
      else {
        // From a moving place in the pool (whole blocks), so tensors differ.
        const blockBytes = t.ggmlType === WEIGHT_TYPES.q8_0.ggmlType ? WEIGHT_TYPES.q8_0.blockBytes : WEIGHT_TYPES.f16.blockBytes;
        let left = t.bytes;
        let at = start;
        while (left > 0) {
          const n = Math.min(left, pool.length - at);
          write(pool.subarray(at, at + n));
          left -= n;
          at = 0;
        }
        start = (start + 7919 * blockBytes) % (pool.length - (pool.length % blockBytes));
      }
      write(Buffer.alloc(pad(t.bytes)));
    }
  });
}

/**
 * The weight matrices a LoRA adapter can target, by their llama.cpp names without
 * `blk.N.` and `.weight`: every linear layer llama.cpp's llama graph multiplies through
 * its LoRA path (build_lora_mm), the output layer included (not where it is tied to
 * token_embd, which llama.cpp adapts another way).
 */
export const LORA_TARGETS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "output"] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];
/** What an adapter targets by default: each block's seven projections (PEFT's "all-linear", less the output layer). */
export const DEFAULT_LORA_TARGETS: readonly LoraTarget[] = LORA_TARGETS.filter((t) => t !== "output");

export interface RandomLoraOptions {
  /** The base model's shape: the adapter loads only on a model of this shape. */
  shape: LlamaShape;
  /** r: the inner size of each A·B pair. */
  rank: number;
  path: string;
  seed?: number;
  /** Default DEFAULT_LORA_TARGETS. */
  targets?: readonly LoraTarget[];
  /** adapter.lora.alpha: llama.cpp scales B·A by scale × alpha / rank. Default rank (so by the context's scale alone). */
  alpha?: number;
  name?: string;
}

/**
 * The adapter's tensors, as llama.cpp's LoRA loader pairs and checks them: for a base
 * weight W of ne [n_in, n_out], `W.lora_a` of ne [n_in, r] and `W.lora_b` of ne [r, n_out]
 * (so W·x + scale·B·(A·x)), in F32.
 */
export function loraTensors(shape: LlamaShape, rank: number, targets: readonly LoraTarget[] = DEFAULT_LORA_TARGETS): TensorInfo[] {
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`a LoRA rank is a whole number of at least 1 (got ${rank})`);
  for (const t of targets) if (!LORA_TARGETS.includes(t)) throw new Error(`${t} is not a LoRA target (${LORA_TARGETS.join(", ")})`);
  if (targets.includes("output") && shape.tiedEmbeddings) throw new Error("this shape has no output.weight (its output layer is token_embd)");
  const base = new Map(llamaTensors(shape, "f16").map((t) => [t.name, t.dims]));
  const names = [
    ...(targets.includes("output") ? ["output.weight"] : []),
    ...Array.from({ length: shape.layers }, (_, i) =>
      LORA_TARGETS.filter((t) => t !== "output" && targets.includes(t)).map((t) => `blk.${i}.${t}.weight`),
    ).flat(),
  ];
  const f32 = (name: string, dims: number[]): TensorInfo => ({ name, dims, ggmlType: F32, bytes: dims[0]! * dims[1]! * 4 });
  return names.flatMap((name) => {
    const [nIn, nOut] = base.get(name)!;
    return [f32(`${name}.lora_a`, [nIn!, rank]), f32(`${name}.lora_b`, [rank, nOut!])];
  });
}

/**
 * Writes a LoRA adapter for a model of `options.shape` to `path` (through a temporary
 * name); returns its size in bytes. A and B are uniform random, sized so that at scale 1
 * (alpha = rank) B·A is as large as the base weights themselves (the same standard
 * deviation): the adapter changes what the model generates, reproducibly for one seed.
 */
export function writeRandomLora(options: RandomLoraOptions): number {
  const { shape, rank } = options;
  const tensors = loraTensors(shape, rank, options.targets ?? DEFAULT_LORA_TARGETS);
  const alpha = options.alpha ?? rank;
  const kvs: Kv[] = [
    ["general.architecture", "string", "llama"],
    ["general.type", "string", "adapter"],
    ["general.name", "string", options.name ?? `random-llama-lora-r${rank}`],
    ["general.alignment", "u32", ALIGNMENT],
    ["adapter.type", "string", "lora"],
    ["adapter.lora.alpha", "f32", alpha],
  ];
  // Each entry of B·A sums `rank` products of one A and one B value: std √rank·σ², which
  // is the base weights' std (uniform ±AMPLITUDE) when σ² = σ_W/√rank.
  const sigma = Math.sqrt(AMPLITUDE / Math.sqrt(3) / Math.sqrt(rank));
  const bound = sigma * Math.sqrt(3);
  const next = prng((options.seed ?? 1) ^ 0x4c6f5241);
  return writeFileAtomically(options.path, (write) => {
    write(ggufHeader(kvs, tensors));
    for (const t of tensors) {
      const values = new Float32Array(t.bytes / 4);
      for (let i = 0; i < values.length; i++) values[i] = ((next() / 0xffffffff) * 2 - 1) * bound;
      write(Buffer.from(values.buffer));
      write(Buffer.alloc(pad(t.bytes)));
    }
  });
}
