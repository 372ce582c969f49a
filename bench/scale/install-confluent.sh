#!/usr/bin/env bash
# Installs @confluentinc/kafka-javascript (librdkafka) for the scale benchmark into
# .cache/confluent-kafka-javascript, outside the project's dependencies.
#
# Its install script downloads a prebuilt binary from GitHub and, failing that, builds
# librdkafka from source; the default static build downloads zlib, OpenSSL, zstd and curl
# sources from their own sites. Where only package registries are reachable, this links
# librdkafka dynamically against Debian's libssl and zlib instead (CKJS_LINKING=dynamic):
# it needs g++, make, python3, zlib1g-dev and libssl-dev, and about 4 minutes on 2 cores.
set -euo pipefail
VERSION="${CONFLUENT_KAFKA_JAVASCRIPT_VERSION:-1.10.1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/.cache/confluent-kafka-javascript"
if node -e "require('$DIR/node_modules/@confluentinc/kafka-javascript')" 2>/dev/null; then
  echo "already installed in $DIR"; exit 0
fi
missing=()
for pkg in g++ make zlib1g-dev libssl-dev; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing build dependencies: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name":"kafka-llm-bench-confluent","private":true}' > package.json
CKJS_LINKING=dynamic npm install --no-audit --no-fund "@confluentinc/kafka-javascript@$VERSION"
node -e "const k=require('$DIR/node_modules/@confluentinc/kafka-javascript'); console.log('librdkafka', k.librdkafkaVersion)"
