#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (Java and Maven for
# the broker, Chromium, Helm, hadolint, Prometheus, npm packages, the Python tools, the test model), builds, starts one local Kafka broker for
# the run (unless KAFKA_BROKERS is set), and runs unit then integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=test
. scripts/setup.sh

ensure_base
ensure_python_tools
. scripts/deploy/tools.sh
ensure_deploy_tools
log "lint (tsc, typescript-eslint, prettier) and build"
npm run --silent lint
npm run --silent build
log "test model: $(npx tsx scripts/models.ts test)"
npx tsx scripts/kafka-broker.ts fetch >/dev/null

trap stop_broker EXIT
start_broker

mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
mapfile -t integration < <(find test/integration -name '*.test.ts' | sort)
mapfile -t deploy < <(find test/deploy -name '*.test.ts' | sort)
# One file at a time: integration tests run real processes on a 2-core machine.
node --import tsx --test --test-concurrency=1 "${unit[@]}" "${integration[@]}" "${deploy[@]}"
