#!/usr/bin/env bash
# The deployment checks: installs Helm, hadolint and Prometheus (scripts/deploy/tools.sh),
# starts one local Kafka broker (unless KAFKA_BROKERS is set; stopped at the end), and runs test/deploy one
# file at a time: the chart (lint, render, offline schemas), the images, the HPA model,
# the topics Job against the broker, and Prometheus scraping a local run under load.
#
#   bash scripts/deploy/checks.sh                      # everything
#   bash scripts/deploy/checks.sh test/deploy/chart.test.ts
set -euo pipefail
cd "$(dirname "$0")/../.."
LOG_TAG=deploy-checks
. scripts/setup.sh
. scripts/deploy/tools.sh

ensure_base
ensure_deploy_tools
log "test model: $(npx tsx scripts/models.ts test)"
npx tsx scripts/kafka-broker.ts fetch >/dev/null

# One broker for every file (each would start its own otherwise). Started with node
# itself, not npx: SIGTERM must reach the script that stops the JVM (npm exec does not
# pass it on, and the broker would outlive the run).
BROKER_PID=""
stop_deploy_broker() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  rm -f "${broker_out:-}" "${broker_out:-}.err"
}
if [ -z "${KAFKA_BROKERS:-}" ]; then
  broker_out=$(mktemp)
  trap stop_deploy_broker EXIT
  node --import tsx scripts/kafka-broker.ts start >"$broker_out" 2>"$broker_out.err" &
  BROKER_PID=$!
  for _ in $(seq 1 240); do
    grep -q '^KAFKA_CREDENTIALS_FILE=' "$broker_out" && break
    kill -0 "$BROKER_PID" 2>/dev/null || { log "the Kafka broker did not start:"; cat "$broker_out.err" >&2; exit 1; }
    sleep 0.5
  done
  KAFKA_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' "$broker_out" | head -1)
  # The broker is secured (SCRAM, ACLs): its principals' passwords, for the checks' services.
  KAFKA_CREDENTIALS_FILE=$(sed -n 's/^KAFKA_CREDENTIALS_FILE=//p' "$broker_out" | head -1)
  [ -n "$KAFKA_BROKERS" ] || { log "the Kafka broker did not answer in 120 s"; exit 1; }
  export KAFKA_BROKERS KAFKA_CREDENTIALS_FILE
  log "Kafka broker up at $KAFKA_BROKERS"
fi

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test/deploy -name '*.test.ts' | sort)
fi
# One file at a time: the metrics check runs a broker, a gateway and two workers on 2 cores.
node --import tsx --test --test-concurrency=1 "${files[@]}"
