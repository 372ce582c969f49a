#!/usr/bin/env bash
# Builds the Jaeger v2 binary the tracing tests run (testkit/jaeger.ts) into the
# project's .cache/bin, from the Go module proxy: the module in scripts/deploy/jaeger/
# names it as a tool, and its committed go.sum pins every dependency. No release
# download, no container. Idempotent and quiet once built. A cold build (empty Go caches)
# takes 8 to 11 min on 2 cores and ~2 GB of memory; the Go caches are the user's, so a
# rebuild on the same machine is quicker.
#
#   bash scripts/deploy/jaeger.sh          # or: . scripts/deploy/jaeger.sh; ensure_jaeger
set -euo pipefail

# Jaeger tags each release twice, v1.x for the Go module and v2.x for its binaries: this
# is the module's. Keep it in step with scripts/deploy/jaeger/go.mod.
JAEGER_VERSION=v1.75.0

ensure_jaeger() {
  local root bin
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  bin="$root/.cache/bin"
  if [ -x "$bin/jaeger" ] && [ "$(cat "$bin/.jaeger-version" 2>/dev/null)" = "$JAEGER_VERSION" ]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || {
    printf '[%s] %s\n' "${LOG_TAG:-jaeger}" "Go is needed to build Jaeger (apt-get install golang, or Go >= 1.21, which fetches the 1.24 toolchain itself)" >&2
    return 1
  }
  printf '[%s] %s\n' "${LOG_TAG:-jaeger}" "building jaeger $JAEGER_VERSION (go build from the module proxy, once; 8 to 11 min cold on 2 cores)" >&2
  mkdir -p "$bin"
  # Built beside the target and renamed, so an interrupted build never looks built.
  local tmp="$bin/.jaeger.tmp.$$"
  (
    cd "$root/scripts/deploy/jaeger" &&
      GOFLAGS=-buildvcs=false go build -trimpath \
        -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" \
        -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger
  ) || { rm -f "$tmp"; return 1; }
  mv -f "$tmp" "$bin/jaeger"
  echo "$JAEGER_VERSION" >"$bin/.jaeger-version"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_jaeger
fi
