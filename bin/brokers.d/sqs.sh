# shellcheck shell=bash disable=SC2154  # state, cache and here are bin/brokers's
# sqs: Amazon SQS, served by LocalStack (pinned in localstack-requirements.txt) in a venv of its own.

register sqs default
SQS_PORT=4566

localstack_venv() { echo "$cache/localstack-venv-$(sha256sum "$here/localstack-requirements.txt" | cut -c1-12)"; }

sqs::ports() { echo $SQS_PORT; }
sqs::where() { echo "http://127.0.0.1:$SQS_PORT (LocalStack SQS, region us-east-1)"; }

sqs::install() {
  local v; v=$(localstack_venv)
  [[ -x $v/bin/python && -f $v/.complete ]] && return
  log "sqs: installing LocalStack into $v (about a minute; log: $(install_log))"
  local py=python3.11
  command -v $py >/dev/null || py=python3
  rm -rf "$v"
  quietly sqs $py -m venv "$v"
  quietly sqs "$v/bin/pip" install --disable-pip-version-check --no-deps -r "$here/localstack-requirements.txt"
  touch "$v/.complete"
}

# Healthy is not enough: LocalStack loads its SQS provider on the first real request, which took
# over 10 s on a busy two-core machine and timed out a run's first CreateQueue. Ask it something.
sqs::ready() {
  curl -sf "http://127.0.0.1:$SQS_PORT/_localstack/health" | grep -Eq '"sqs": *"(available|running)"' &&
    curl -sf -m 60 -o /dev/null "http://127.0.0.1:$SQS_PORT/?Action=ListQueues&Version=2012-11-05"
}

sqs::start() {
  mkdir -p "$state/sqs/volume" "$state/sqs/tmp"
  GATEWAY_LISTEN="127.0.0.1:$SQS_PORT" SERVICES=sqs \
    LOCALSTACK_VOLUME_DIR="$state/sqs/volume" TMPDIR="$state/sqs/tmp" \
    SQS_ENDPOINT_STRATEGY=path DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    spawn sqs "$(localstack_venv)/bin/python" -m localstack.runtime.main
}
