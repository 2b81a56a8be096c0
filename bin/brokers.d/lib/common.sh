# shellcheck shell=bash disable=SC2154  # state, cache and here are bin/brokers's
# Helpers every broker script and the cluster library use; sourced by bin/brokers.

log() { printf '%s\n' "$*" >&2; }
die() { log "bin/brokers: $*"; exit 1; }

pidfile() { echo "$state/$1/pid"; }
logfile() { echo "$state/$1/$1.log"; }

is_running() {
  local pf; pf=$(pidfile "$1")
  [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every half second; fail after SECONDS.
wait_until() {
  local limit=$1; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# Signal a process and its children, from the top down (a server often forks its real process,
# an Erlang VM or a Python runtime, which must get the signal too).
signal_tree() { # SIGNAL PID
  local sig=$1 pid=$2 kids
  kids=$(pgrep -P "$pid" || true)
  kill "-$sig" "$pid" 2>/dev/null || true
  for k in $kids; do signal_tree "$sig" "$k"; done
}

# spawn NAME COMMAND...: start a server in the background, its output in NAME's log, its pid in
# NAME's pid file (what kill, pause and resume signal, and what a run samples for its cost).
spawn() {
  local name=$1; shift
  mkdir -p "$state/$name"
  nohup "$@" >>"$(logfile "$name")" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

# Installers are noisy: their output goes to one log, whose path is printed when they fail.
install_log() { mkdir -p "$state"; echo "$state/install.log"; }

# apt_install WHAT PACKAGE...: Debian packages, quietly; the package lists are refreshed once if
# the first attempt fails (a fresh machine may have none).
apt_install() {
  local what=$1 out; shift
  out=$(install_log)
  command -v apt-get >/dev/null || die "$what: apt-get not found; install $* yourself"
  {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; }
  } >>"$out" 2>&1 || die "$what: apt-get install $* failed; log: $out"
}

# quietly WHAT COMMAND...: run an installer step with its output in the install log.
quietly() {
  local what=$1 out; shift
  out=$(install_log)
  "$@" >>"$out" 2>&1 || die "$what: '$*' failed; log: $out"
}
