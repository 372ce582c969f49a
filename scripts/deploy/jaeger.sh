#!/usr/bin/env bash
# Builds the Jaeger v2 binary the tracing tests run (testkit/jaeger.ts) from the Go module
# proxy: the module in scripts/deploy/jaeger/ names it as a tool, and its committed go.sum
# pins every dependency. No release download, no container. Built once per machine into
# ${KAFKA_LLM_CACHE:-~/.cache/kafka-llm}/jaeger-<version> and linked into the clone's
# .cache/bin. Idempotent and quiet once built. A cold build takes 8 to 11 min on 2 cores and
# ~2 GB of memory.
#
#   bash scripts/deploy/jaeger.sh          # or: . scripts/deploy/jaeger.sh; ensure_jaeger
set -euo pipefail

# Jaeger tags each release twice, v1.x for the Go module and v2.x for its binaries: this
# is the module's. Keep it in step with scripts/deploy/jaeger/go.mod.
JAEGER_VERSION=v1.75.0

ensure_jaeger() {
  local root bin cache
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  bin="$root/.cache/bin"
  # Built once per machine, outside the clone, keyed by version (as the control plane is:
  # scripts/deploy/k8s/build.sh), and linked into the clone's .cache/bin where the tests look.
  cache="${KAFKA_LLM_CACHE:-$HOME/.cache/kafka-llm}/jaeger-$JAEGER_VERSION"
  mkdir -p "$bin"
  if [ ! -x "$cache/jaeger" ]; then
    command -v go >/dev/null 2>&1 || {
      printf '[%s] %s\n' "${LOG_TAG:-jaeger}" "Go is needed to build Jaeger (apt-get install golang, or Go >= 1.21, which fetches the 1.24 toolchain itself)" >&2
      return 1
    }
    printf '[%s] %s\n' "${LOG_TAG:-jaeger}" "building jaeger $JAEGER_VERSION into $cache (go build from the module proxy, once per machine; 8 to 11 min cold on 2 cores)" >&2
    mkdir -p "$cache"
    # Built beside the target and renamed, so an interrupted build never looks built.
    local tmp="$cache/.jaeger.tmp.$$"
    (
      cd "$root/scripts/deploy/jaeger" &&
        GOFLAGS=-buildvcs=false go build -trimpath \
          -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" \
          -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger
    ) || { rm -f "$tmp"; return 1; }
    mv -f "$tmp" "$cache/jaeger"
  fi
  if [ "$(readlink "$bin/jaeger" 2>/dev/null)" != "$cache/jaeger" ]; then
    ln -sfn "$cache/jaeger" "$bin/jaeger"
  fi
  rm -f "$bin/.jaeger-version"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_jaeger
fi
