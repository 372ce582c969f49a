/**
 * Writes a GGUF with a real model's shapes and random weights (bench/lib/gguf-random.ts),
 * for throughput benches where no model can be downloaded (bench/gpu.sh on a GPU machine
 * that reaches nothing outside). Prints the file's path last.
 *
 *   npx tsx bench/gguf-random.ts --shape 8b --type q8_0            # .cache/models/random-llama-8b-q8_0.gguf
 *   npx tsx bench/gguf-random.ts --shape 1b --type f16 --out /tmp/m.gguf
 *   npx tsx bench/gguf-random.ts --shape tiny                       # for tests
 *   npx tsx bench/gguf-random.ts --shape 8b --lora 16               # a LoRA adapter for it
 *
 * Shapes: tiny, 1b (Llama 3.2 1B), 8b (Llama 3.1 8B). Types: f16, q8_0. Throughput figures
 * from these files depend on the shapes and the quantization, not on the weights; the text
 * they generate means nothing. --lora RANK writes a LoRA adapter of that rank for the shape
 * instead (random A and B, as large as the weights they adapt; --targets attn_q,ffn_up,...
 * picks the matrices, default each block's seven projections).
 */
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { MODEL_CACHE } from "../scripts/models.js";
import {
  DEFAULT_LORA_TARGETS,
  LORA_TARGETS,
  parameterCount,
  SHAPES,
  WEIGHT_TYPES,
  writeRandomGguf,
  writeRandomLora,
  type LoraTarget,
  type WeightType,
} from "./lib/gguf-random.js";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "1b" },
    type: { type: "string", default: "q8_0" },
    out: { type: "string" },
    seed: { type: "string", default: "1" },
    force: { type: "boolean", default: false },
    lora: { type: "string" },
    targets: { type: "string" },
  },
});

const shape = SHAPES[values.shape];
if (!shape) {
  console.error(`--shape must be one of ${Object.keys(SHAPES).join(", ")} (got ${values.shape})`);
  process.exit(2);
}
if (!(values.type in WEIGHT_TYPES)) {
  console.error(`--type must be one of ${Object.keys(WEIGHT_TYPES).join(", ")} (got ${values.type})`);
  process.exit(2);
}
const seed = Number(values.seed);
if (!Number.isInteger(seed) || seed < 0) {
  console.error(`--seed must be a whole number (got ${values.seed})`);
  process.exit(2);
}
const rank = values.lora === undefined ? undefined : Number(values.lora);
if (rank !== undefined && (!Number.isInteger(rank) || rank < 1)) {
  console.error(`--lora must be a rank of at least 1 (got ${values.lora})`);
  process.exit(2);
}
const targets = values.targets?.split(",") ?? DEFAULT_LORA_TARGETS;
const unknown = targets.filter((t) => !(LORA_TARGETS as readonly string[]).includes(t));
if (unknown.length > 0) {
  console.error(`--targets takes ${LORA_TARGETS.join(", ")} (got ${unknown.join(", ")})`);
  process.exit(2);
}
const type = values.type as WeightType;
const file = rank === undefined ? `random-llama-${values.shape}-${type}.gguf` : `random-llama-${values.shape}-lora-r${rank}.gguf`;
const out = path.resolve(values.out ?? path.join(MODEL_CACHE, file));

if (existsSync(out) && !values.force) {
  console.error(`${out} exists (--force writes it again)`);
} else if (rank !== undefined) {
  mkdirSync(path.dirname(out), { recursive: true });
  const bytes = writeRandomLora({ shape, rank, path: out, seed, targets: targets as LoraTarget[], name: path.basename(file, ".gguf") });
  console.error(`a rank ${rank} LoRA adapter for ${values.shape} (${targets.join(", ")}): ${(bytes / 2 ** 20).toFixed(2)} MiB`);
} else {
  mkdirSync(path.dirname(out), { recursive: true });
  const t0 = Date.now();
  console.error(`writing ${values.shape} (${(parameterCount(shape) / 1e9).toFixed(2)} B parameters, ${type}) to ${out}`);
  const bytes = writeRandomGguf({ shape, type, path: out, seed, name: `random-llama-${values.shape}-${type}` });
  console.error(`${(bytes / 2 ** 30).toFixed(2)} GiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
console.log(out);
