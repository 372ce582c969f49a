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

ensure_node_modules() {
  # npm ci when node_modules is missing or older than the lock file.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

ensure_base() {
  ensure_command java openjdk-17-jre-headless
  ensure_command mvn maven
  ensure_command python3 python3 python3-pip
  ensure_command chromium chromium
  ensure_command openssl openssl
  ensure_command ps procps # the run-local test checks that nothing is left running
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  ensure_node_modules
}

# Starts a broker with the project's script unless KAFKA_BROKERS is set; exports
# KAFKA_BROKERS and BROKER_PID. Call stop_broker on exit.
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
    if grep -q '^KAFKA_BROKERS=' "$out" 2>/dev/null; then
      export KAFKA_BROKERS
      KAFKA_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' "$out" | head -1)
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
