#!/usr/bin/env bash
# Builds the Kubernetes control plane the deploy checks run (test/deploy/k8s-*.test.ts)
# from pinned module versions on the Go module proxy: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok, prometheus-adapter, and KEDA's
# operator and metrics server. No container runtime, no downloads of release binaries.
#
# The binaries, and Go's module and build caches, live OUTSIDE the clone, keyed by version:
#   ${KAFKA_LLM_CACHE:-$HOME/.cache/kafka-llm}/k8s/<part>-<version>/bin
# so a fresh clone on a machine that built them once pays seconds. A cold build on 2 cores
# takes ~16 min for the core (more when the machine is busy) and ~13 min more for KEDA; each part is built into a temporary
# folder and renamed into place when complete, so a half-built part never looks built.
#
#   bash scripts/deploy/k8s/build.sh           # builds what is missing, prints the bin folders
#   bash scripts/deploy/k8s/build.sh --print   # only prints them (exit 1 if a part is missing)
#   KAFKA_LLM_SKIP_KEDA=1 bash scripts/deploy/k8s/build.sh    # without KEDA's binaries
set -euo pipefail

ETCD_VERSION=v3.6.16
K8S_VERSION=v1.36.3
KWOK_VERSION=v0.8.0
ADAPTER_VERSION=v0.12.0
KEDA_VERSION=v2.21.0
# The CRDs of the Prometheus Operator kinds the chart renders (ServiceMonitor, PrometheusRule),
# from the operator's own module (example/prometheus-operator-crd).
PROM_OPERATOR_VERSION=v0.85.0

K8S_CACHE=${KAFKA_LLM_CACHE:-$HOME/.cache/kafka-llm}/k8s
export GOPATH="$K8S_CACHE/go"
export GOMODCACHE="$K8S_CACHE/go/pkg/mod"
export GOCACHE="$K8S_CACHE/go-build"
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0
export GOPROXY=${GOPROXY:-https://proxy.golang.org}

k8s_log() { printf '[k8s-build %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

part_dir() { echo "$K8S_CACHE/$1-$2"; }

# build_part NAME VERSION FUNCTION: runs FUNCTION TMPDIR to fill TMPDIR/bin, then renames.
build_part() {
  local name=$1 version=$2 fn=$3 dir tmp start
  dir=$(part_dir "$name" "$version")
  [ -f "$dir/bin/.complete" ] && return 0
  tmp="$dir.tmp.$$"
  # Under the lock, any other temporary folder is what an interrupted build left.
  rm -rf "$dir".tmp.*
  mkdir -p "$tmp/bin"
  start=$(date +%s)
  k8s_log "building $name $version (cold build, once per machine; the module and build caches are in $K8S_CACHE)"
  "$fn" "$tmp" "$version"
  date -u +%FT%TZ >"$tmp/bin/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  k8s_log "built $name $version in $(( $(date +%s) - start )) s"
}

# A wrapper module that requires MODULE@VERSION, so that `go build` of its packages works
# where `go install pkg@version` refuses the module (it has replace directives).
wrapper_module() { # wrapper_module DIR NAME
  mkdir -p "$1"
  rm -f "$1/go.mod" "$1/go.sum"
  (cd "$1" && go mod init "kafkallm.local/$2" >/dev/null 2>&1)
}

# The go.mod of MODULE@VERSION as JSON (go mod edit -json), from the module cache.
module_gomod_json() { # module_gomod_json MODULE VERSION
  local gomod
  gomod=$(go mod download -json "$1@$2" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.Error){console.error(j.Error);process.exit(1)}console.log(j.GoMod)})')
  go mod edit -json "$gomod"
}

build_etcd() { # the server package is etcd's main
  local w="$1/src"
  wrapper_module "$w" etcd
  (cd "$w" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go build -trimpath -ldflags "-s -w" -o "$1/bin/etcd" go.etcd.io/etcd/server/v3)
}

build_kubernetes() {
  local w="$1/src" v=$2 staging
  wrapper_module "$w" kubernetes
  # k8s.io/kubernetes replaces each staging module with ./staging/src/...: replace each
  # with its published v0.<minor>.<patch> instead (sample-cli-plugin is not needed, and
  # the proxy refuses it).
  staging=$(module_gomod_json k8s.io/kubernetes "$v" | node -e '
    let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
      for (const r of JSON.parse(s).Replace ?? [])
        if (r.New.Path.startsWith("./staging/") && r.Old.Path !== "k8s.io/sample-cli-plugin") console.log(r.Old.Path);
    })')
  local pub="v0.${v#v1.}"
  (
    cd "$w"
    go mod edit -require="k8s.io/kubernetes@$v"
    for m in $staging; do go mod edit -replace="$m=$m@$pub"; done
    local cmds=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
    # Resolve the packages' modules at the versions required here (go get without a
    # version would upgrade k8s.io/kubernetes to the newest).
    go list -mod=mod -deps "${cmds[@]}" >/dev/null
    local minor=${v#v1.}; minor=${minor%%.*}
    local ld="-s -w" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    go build -trimpath -ldflags "$ld" -o "$1/bin/" "${cmds[@]}"
  )
}

build_kwok() {
  GOBIN="$1/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$2"
  # The "fast" node and pod stages kwok refuses to run without, from its own module.
  local src
  src=$(go mod download -json "sigs.k8s.io/kwok@$2" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')
  mkdir -p "$1/stages"
  cp "$src/kustomize/stage/node/fast/"*.yaml "$src/kustomize/stage/pod/fast/"*.yaml "$1/stages/" 2>/dev/null || \
    find "$src/kustomize/stage" -path '*fast*' -name '*.yaml' -exec cp {} "$1/stages/" \;
  rm -f "$1/stages/kustomization.yaml"
}

build_adapter() {
  # Not `go install pkg@version`: that reads the module's version list (for deprecations),
  # which the proxy refuses for prometheus-adapter. A wrapper requiring the exact version
  # resolves the packages with -mod=mod instead.
  local w="$1/src"
  wrapper_module "$w" prometheus-adapter
  (
    cd "$w"
    go mod edit -require="sigs.k8s.io/prometheus-adapter@$2"
    go list -mod=mod -deps sigs.k8s.io/prometheus-adapter/cmd/adapter >/dev/null
    go build -trimpath -ldflags "-s -w" -o "$1/bin/prometheus-adapter" sigs.k8s.io/prometheus-adapter/cmd/adapter
  )
}

build_keda() {
  local w="$1/src" v=$2 edits
  wrapper_module "$w" keda
  # KEDA's own replace (nexus-rpc) and exclude (go-chi) lines, or its packages do not build.
  edits=$(module_gomod_json github.com/kedacore/keda/v2 "$v" | node -e '
    let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
      const j=JSON.parse(s);
      const at=(m)=>m.Version?`${m.Path}@${m.Version}`:m.Path;
      for (const r of j.Replace ?? []) if (!r.New.Path.startsWith(".")) console.log(`-replace=${at(r.Old)}=${at(r.New)}`);
      for (const e of j.Exclude ?? []) console.log(`-exclude=${e.Path}@${e.Version}`);
    })')
  (
    cd "$w"
    go mod edit -require="github.com/kedacore/keda/v2@$v"
    # shellcheck disable=SC2086
    [ -z "$edits" ] || go mod edit $edits
    go list -mod=mod -deps github.com/kedacore/keda/v2/cmd/operator github.com/kedacore/keda/v2/cmd/adapter >/dev/null
    local ld="-s -w -X github.com/kedacore/keda/v2/version.Version=$v"
    go build -trimpath -ldflags "$ld" -o "$1/bin/keda-operator" github.com/kedacore/keda/v2/cmd/operator
    go build -trimpath -ldflags "$ld" -o "$1/bin/keda-metrics-apiserver" github.com/kedacore/keda/v2/cmd/adapter
  )
  local src
  src=$(go mod download -json "github.com/kedacore/keda/v2@$v" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')
  mkdir -p "$1/crds"
  cp "$src/config/crd/bases/"*.yaml "$1/crds/"
}

# KEDA's CRDs alone (the chart's ScaledObject), from its module: no build needed.
build_keda_crds() {
  local src
  src=$(go mod download -json "github.com/kedacore/keda/v2@$2" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.Error){console.error(j.Error);process.exit(1)}console.log(j.Dir)})')
  mkdir -p "$1/crds"
  cp "$src/config/crd/bases/"*.yaml "$1/crds/"
}

build_prom_crds() {
  local src
  src=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$2" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.Error){console.error(j.Error);process.exit(1)}console.log(j.Dir)})')
  mkdir -p "$1/crds"
  cp "$src/example/prometheus-operator-crd/"*.yaml "$1/crds/"
}

print_dirs() {
  local missing=0 spec
  for spec in "etcd $ETCD_VERSION" "kubernetes $K8S_VERSION" "kwok $KWOK_VERSION" \
    "prometheus-adapter $ADAPTER_VERSION" "prometheus-operator-crds $PROM_OPERATOR_VERSION" \
    "keda-crds $KEDA_VERSION" "keda $KEDA_VERSION"; do
    # shellcheck disable=SC2086
    set -- $spec
    local d; d=$(part_dir "$1" "$2")
    if [ -f "$d/bin/.complete" ]; then
      echo "$1=$d"
    else
      echo "$1="
      # KEDA's binaries may be left out on purpose.
      [ "$1" = keda ] && [ "${KAFKA_LLM_SKIP_KEDA:-}" = 1 ] || missing=1
    fi
  done
  return $missing
}

main() {
  if [ "${1:-}" = "--print" ]; then print_dirs; return; fi
  command -v go >/dev/null 2>&1 || { k8s_log "Go >= 1.25 is needed (apt-get install golang, or go.dev/dl)"; return 1; }
  mkdir -p "$K8S_CACHE"
  # One build at a time on a machine: a second caller waits for the first.
  exec 9>"$K8S_CACHE/.build.lock"
  if ! flock -n 9; then
    k8s_log "another build of the control plane is running; waiting for it"
    flock 9
  fi
  build_part prometheus-operator-crds "$PROM_OPERATOR_VERSION" build_prom_crds
  build_part keda-crds "$KEDA_VERSION" build_keda_crds
  build_part etcd "$ETCD_VERSION" build_etcd
  build_part kwok "$KWOK_VERSION" build_kwok
  build_part prometheus-adapter "$ADAPTER_VERSION" build_adapter
  build_part kubernetes "$K8S_VERSION" build_kubernetes
  # KEDA's operator and metrics server (~13 min more on 2 cores; test/deploy/k8s-keda.test.ts).
  if [ "${KAFKA_LLM_SKIP_KEDA:-}" != 1 ]; then
    build_part keda "$KEDA_VERSION" build_keda
  fi
  print_dirs
}

main "$@"
