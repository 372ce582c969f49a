#!/usr/bin/env bash
# The deployment checks: installs Helm, hadolint and Prometheus (scripts/deploy/tools.sh),
# starts one local Kafka broker (unless KAFKA_BROKERS is set), and runs test/deploy one
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

trap stop_broker EXIT
start_broker

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test/deploy -name '*.test.ts' | sort)
fi
# One file at a time: the metrics check runs a broker, a gateway and two workers on 2 cores.
node --import tsx --test --test-concurrency=1 "${files[@]}"
