#!/usr/bin/env bash
# Runs the whole system on this machine: a local Kafka broker, the topics, the gateway
# on :8080 and two workers with a small model, supervised like their Deployments
# (scripts/run-local.ts): a worker that dies is restarted, the gateway or the broker
# dying ends the run. Ctrl-C stops everything.
#
#   MODEL=...        a GGUF path or hf: URI (default: Gemma 3 270M from PyPI, else stories260K)
#   WORKERS=2        how many workers
#   GATEWAY_PORT=8080, WORKER_PORT_BASE=9100, KAFKA_PORT=9092, KAFKA_BROKERS (use that cluster, start no broker)
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=local
. scripts/setup.sh

ensure_base
if [ -z "${MODEL:-}" ]; then
  MODEL=$(npx tsx scripts/models.ts demo)
  case "$MODEL" in
    *gemma-3-270m*)
      # Demo defaults for a base model that continues text rather than answering
      # (docs/development.md, "The models", has the comparison); each can be overridden
      # from the environment.
      # It spells the template's turn markers as stray tokens, then the role ("user\n",
      # "model\n"), or starts the next message with the template's "\n\n---".
      export SYSTEM_PROMPT=${SYSTEM_PROMPT:-"The assistant, Kafka, answers briefly and helpfully."}
      export DEFAULT_MAX_TOKENS=${DEFAULT_MAX_TOKENS:-96}
      export DEFAULT_REPEAT_PENALTY=${DEFAULT_REPEAT_PENALTY:-1.1}
      export STOP_TRIGGERS=${STOP_TRIGGERS:-'["user\n","model\n","\n\n---"]'}
      ;;
  esac
fi
log "model: $MODEL"
npx tsx scripts/kafka-broker.ts fetch >/dev/null

export MODEL LOG_DIR=.cache/local-logs
# node itself, so that Ctrl-C and SIGTERM reach the supervisor.
exec node --import tsx scripts/run-local.ts
