# shellcheck shell=bash disable=SC2154  # state, cache and here are bin/brokers's
# A three-node cluster of one broker on this machine, for the broker scripts' node hooks; sourced
# by bin/brokers. It knows nothing of any broker: it runs the network and the faults, and asks the
# cluster's broker (named at `up --cluster NAME`, kept in the cluster's state) to run its nodes.
#
# Each node runs in its own network namespace (brokerbench-n1..n3) with its own address
# (10.77.0.11..13), on a veth pair whose host end hangs off a bridge (brokerbench0, 10.77.0.1).
# All traffic stays on this machine. The harness's clients reach the nodes from the host, through
# the bridge, at 10.77.0.1; "clients" below means that address.
#
# Faults act in the kernel, inside the nodes' namespaces, with one nftables table per namespace
# (inet brokerbench): a cut drops every packet between two members, in both directions, so TCP
# sees real loss and retransmits; a loss rule drops that share of a node's packets at random.
# A second table (ip brokerbench, nftables' `dup` needs the ip family) sends a share twice.
# This kernel has no sch_netem: delay, corruption and bursty (correlated) loss send a link's
# packets through a netfilter queue to `brokerbench packet-faults` instead (see queue_end),
# which decides packet by packet.
#
# A broker that clusters defines these hooks in its script (NAME::hook):
#   node_install            install what a node needs
#   node_start N            start node N in its namespace (spawn_in_node), with node_addr N
#   node_ready N            exit 0 once node N serves
#   node_stop N             ask node N to stop (it is signalled afterwards)
#   node_log N              node N's log, shown when it does not start
#   node_port               the port clients use (the default for `probe`)
#   form                    make the running nodes one cluster (idempotent)
#   where_cluster           how clients reach it, for `up`
#   members                 the running members, one per line
#   node_status N           one line on node N; fails unless it serves
#   cluster_status          more lines for `status`
#   leader PREFIX           the node (n1..n3) leading the first queue or partition named PREFIX...
#   view PREFIX             the cluster as the nodes see it (see cluster_view)

CLUSTER_NODES=(n1 n2 n3)
CLUSTER_BRIDGE=brokerbench0
CLUSTER_HOST_ADDR=10.77.0.1
CLUSTER_PREFIX=24
cluster_state() { echo "$state/cluster"; }
node_ns() { echo "brokerbench-$1"; }
node_addr() { echo "10.77.0.1${1#n}"; }
member_addr() { if [[ $1 == clients ]]; then echo "$CLUSTER_HOST_ADDR"; else node_addr "$1"; fi; }
in_ns() { local n=$1; shift; ip netns exec "$(node_ns "$n")" "$@"; }
known_node() { [[ " ${CLUSTER_NODES[*]} " == *" $1 "* ]] || die "cluster: unknown node '$1' (expected ${CLUSTER_NODES[*]})"; }
known_member() { [[ $1 == clients ]] || known_node "$1"; }
node_pidfile() { echo "$(cluster_state)/$1/pid"; }
node_running() { local pf; pf=$(node_pidfile "$1"); [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null; }

# The broker the cluster runs, as `up --cluster NAME` recorded it; empty when none is up.
cluster_broker() { cat "$(cluster_state)/broker" 2>/dev/null || true; }
# cluster_hook HOOK ARGS...: the cluster's broker's hook.
cluster_hook() {
  local b; b=$(cluster_broker)
  [[ -n $b ]] || die "cluster: none is up (bin/brokers up --cluster NAME)"
  "$b::$1" "${@:2}"
}
clusters() { # the registered brokers that define node hooks
  local b
  for b in "${BROKERS[@]}"; do declare -F "$b::node_start" >/dev/null && echo "$b"; done
  return 0
}

# spawn_in_node N COMMAND...: start node N's server inside its namespace, its output in the
# node's stdout.log, its pid in the node's pid file (what node kill, pause and resume signal).
spawn_in_node() {
  local n=$1 dir; shift
  dir="$(cluster_state)/$n"
  mkdir -p "$dir"
  nohup ip netns exec "$(node_ns "$n")" "$@" >>"$dir/stdout.log" 2>&1 &
  echo $! >"$(node_pidfile "$n")"
}

install_cluster_tools() {
  command -v nft >/dev/null && command -v iptables >/dev/null && return
  log "cluster: installing Debian's nftables and iptables (kernel packet filtering for partitions, netfilter queues for delays)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iptables >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iptables >&2; }
}

# The bridge, one namespace per node and the veth pairs between them; and each namespace's
# nftables table, empty (no fault).
network_up() {
  if ! ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; then
    ! ip route show | grep -q '^10\.77\.0\.' ||
      die "cluster: 10.77.0.0/24 is already routed on this machine; the cluster needs it"
    ip link add "$CLUSTER_BRIDGE" type bridge || die "cluster: cannot create a bridge (needs root and CAP_NET_ADMIN)"
    ip addr add "$CLUSTER_HOST_ADDR/$CLUSTER_PREFIX" dev "$CLUSTER_BRIDGE"
    ip link set "$CLUSTER_BRIDGE" up
  fi
  local n ns
  for n in "${CLUSTER_NODES[@]}"; do
    ns=$(node_ns "$n")
    if ! ip netns list | grep -qw "$ns"; then
      ip netns add "$ns" || die "cluster: cannot create network namespace $ns (needs root)"
      ip link add "bb$n" type veth peer name eth0 netns "$ns"
      ip link set "bb$n" master "$CLUSTER_BRIDGE" up
      in_ns "$n" ip link set lo up
      in_ns "$n" ip addr add "$(node_addr "$n")/$CLUSTER_PREFIX" dev eth0
      in_ns "$n" ip link set eth0 up
    fi
    in_ns "$n" nft delete table inet brokerbench 2>/dev/null || true
    in_ns "$n" nft delete table ip brokerbench 2>/dev/null || true
    in_ns "$n" nft -f - <<EOF
table inet brokerbench {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
table ip brokerbench {
  chain prerouting { type filter hook prerouting priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
EOF
  done
}

network_down() {
  local n
  for n in "${CLUSTER_NODES[@]}"; do
    ip netns list | grep -qw "$(node_ns "$n")" && ip netns del "$(node_ns "$n")"
    ip link show "bb$n" >/dev/null 2>&1 && ip link del "bb$n"
  done
  ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1 && ip link del "$CLUSTER_BRIDGE"
  return 0
}

start_node() { cluster_hook node_start "$1"; }

wait_node() {
  local n=$1
  wait_until 120 "$n" cluster_hook node_ready "$n" ||
    { tail -n 20 "$(cluster_hook node_log "$n")" >&2 || true; die "cluster: node $n did not answer within 120 s; log: $(cluster_hook node_log "$n")"; }
}

cluster_up() { # BROKER
  local b=$1 n running
  running=$(cluster_broker)
  [[ -z $running || $running == "$b" ]] || die "cluster: a $running cluster is up; bin/brokers down --cluster $running first"
  "$b::node_install"
  install_cluster_tools
  network_up
  mkdir -p "$(cluster_state)"
  echo "$b" >"$(cluster_state)/broker"
  for n in "${CLUSTER_NODES[@]}"; do node_running "$n" || start_node "$n"; done
  for n in "${CLUSTER_NODES[@]}"; do wait_node "$n"; done
  cluster_hook form
  cluster_faults_heal
  log "$b cluster: up, members $(cluster_hook members | tr '\n' ' ')"
  log "  clients reach $(cluster_hook where_cluster); logs: $(cluster_state)/n*/"
}

cluster_status() {
  local n rc=0
  for n in "${CLUSTER_NODES[@]}"; do cluster_hook node_status "$n" || rc=1; done
  cluster_hook cluster_status
  echo "faults in force: $(cluster_faults | paste -sd';' -)"
  return $rc
}

# probe A B [PORT]: can member A open a TCP connection to member B (default: the broker's client
# port, or for B = clients nothing listens, so A must be a node)? Exit 0 if so, within 2 s.
cluster_probe() {
  local a=$1 b=$2 port=${3:-}
  known_member "$a"; known_member "$b"
  [[ -n $port ]] || port=$(cluster_hook node_port)
  local cmd
  cmd="exec 3<>/dev/tcp/$(member_addr "$b")/$port"
  if [[ $a == clients ]]; then timeout 2 bash -c "$cmd" 2>/dev/null; else timeout 2 ip netns exec "$(node_ns "$a")" bash -c "$cmd" 2>/dev/null; fi
}

stop_node() {
  local n=$1 pid
  node_running "$n" || { rm -f "$(node_pidfile "$n")"; return 0; }
  pid=$(cat "$(node_pidfile "$n")")
  signal_tree CONT "$pid"
  [[ -z $(cluster_broker) ]] || cluster_hook node_stop "$n"
  signal_tree TERM "$pid"
  wait_until 20 "$n stop" bash -c "! kill -0 $pid" || signal_tree KILL "$pid"
  rm -f "$(node_pidfile "$n")"
}

cluster_down() {
  local n any=0 b
  b=$(cluster_broker)
  for n in "${CLUSTER_NODES[@]}"; do
    node_running "$n" && any=1
    stop_node "$n"
    # What the node left behind in its namespace (an Erlang node's epmd): gone with it.
    pkill -KILL -f "$(cluster_state)/$n/" 2>/dev/null || true
    ip netns pids "$(node_ns "$n")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  network_down
  # The nodes' data goes too: the next `up` is a fresh cluster with the default settings.
  rm -rf "$(cluster_state)"
  if ((any)); then log "${b:-the} cluster: stopped; namespaces and bridge removed"; else log "cluster: not running"; fi
}

# node ACTION N: the per-node control commands node faults use.
node_control() {
  local action=$1 n=$2
  known_node "$n"
  case $action in
    kill) node_running "$n" || die "cluster: node $n is not running"
          signal_tree KILL "$(cat "$(node_pidfile "$n")")"; pkill -KILL -f "$(cluster_state)/$n/" || true
          rm -f "$(node_pidfile "$n")" ;;
    pause) node_running "$n" || die "cluster: node $n is not running"; signal_tree STOP "$(cat "$(node_pidfile "$n")")" ;;
    resume) node_running "$n" || die "cluster: node $n is not running"; signal_tree CONT "$(cat "$(node_pidfile "$n")")" ;;
    start) node_running "$n" || start_node "$n"; wait_node "$n" ;;
    restart) stop_node "$n"; start_node "$n"; wait_node "$n" ;;
    *) die "cluster: unknown node action '$action' (expected kill, pause, resume, start, restart)" ;;
  esac
  log "cluster: $action $n done"
}

# cut A B: drop every packet between members A and B (nodes, or "clients"), both directions.
cluster_cut() {
  local a=$1 b=$2 n other
  known_member "$a"; known_member "$b"
  [[ $a != "$b" ]] || die "cluster: cannot cut $a from itself"
  for n in "$a" "$b"; do
    [[ $n == clients ]] && continue
    other=$([[ $n == "$a" ]] && echo "$b" || echo "$a")
    in_ns "$n" nft add rule inet brokerbench input ip saddr "$(member_addr "$other")" counter drop comment "\"cut $other\""
    in_ns "$n" nft add rule inet brokerbench output ip daddr "$(member_addr "$other")" counter drop comment "\"cut $other\""
  done
  log "cluster: cut $a | $b"
}

# The packet faults below act on a link between members A and B (nodes, or "clients"), or with
# one node N on all of its traffic. Each node end of the link acts on what it sends to the
# other; toward the clients, whose end is the host, it also acts on what it receives from them,
# so both directions are covered once. link_ends calls FN NODE OTHER for each node end (OTHER
# empty: all of NODE's traffic).
link_ends() { # FN A [B]
  local fn=$1 a=$2 b=${3:-} n
  if [[ -z $b ]]; then known_node "$a"; "$fn" "$a" ""; return; fi
  known_member "$a"; known_member "$b"
  [[ $a != "$b" ]] || die "cluster: no link from $a to itself"
  for n in "$a" "$b"; do
    [[ $n == clients ]] && continue
    "$fn" "$n" "$([[ $n == "$a" ]] && echo "$b" || echo "$a")"
  done
}
# What node N's end of a link matches, in nft's words or iptables': OUT for what it sends, IN
# for what it receives (empty when only the other end acts on it).
link_match() { # nft|iptables OTHER
  local addr
  OUT=() IN=()
  if [[ -z $2 ]]; then
    if [[ $1 == nft ]]; then OUT=(oifname eth0) IN=(iifname eth0); else OUT=(-o eth0) IN=(-i eth0); fi
    return
  fi
  addr=$(member_addr "$2")
  if [[ $1 == nft ]]; then OUT=(ip daddr "$addr"); else OUT=(-d "$addr"); fi
  [[ $2 == clients ]] || return 0
  if [[ $1 == nft ]]; then IN=(ip saddr "$addr"); else IN=(-s "$addr"); fi
}
# How a rule names its link, for `faults`.
link_name() { if [[ -n $1 ]]; then echo " to $1"; fi; }
# The link's arguments: A B PCT... or N PCT..., told apart by whether the second is a number.
# Sets A, B (empty for one node) and REST.
link_args() {
  A=$1 B=""
  if [[ $# -ge 2 && ! $2 =~ ^[0-9]+$ ]]; then B=$2; shift; fi
  shift
  REST=("$@")
}
whole_pct() { # NAME VALUE MIN
  [[ $2 =~ ^[0-9]+$ && $2 -ge $3 && $2 -le 100 ]] || die "cluster: $1 takes a whole percentage $3..100, not '$2'"
}
# The arguments of a fault that takes one share of the packets: sets A, B and PCT.
share_args() { # NAME ARGS...
  local name=$1
  shift
  link_args "$@"
  [[ ${#REST[@]} -eq 1 ]] || die "usage: bin/brokers $name NODE PERCENT | $name A B PERCENT (nodes n1..n3 or clients)"
  PCT=${REST[0]}
  whole_pct "$name" "$PCT" 1
}

# loss N PCT [CORR] | loss A B PCT [CORR]: drop PCT% of the packets at random. Independent drops
# are an nftables rule; with a correlation CORR% they come in bursts (the long-run share stays
# PCT%), decided packet by packet in the queue loop.
cluster_loss() {
  local A B REST pct corr
  link_args "$@"
  [[ ${#REST[@]} -ge 1 && ${#REST[@]} -le 2 ]] || die "usage: bin/brokers loss NODE PERCENT [CORRELATION] | loss A B PERCENT [CORRELATION] (nodes n1..n3 or clients)"
  pct=${REST[0]} corr=${REST[1]:-0}
  whole_pct loss "$pct" 1; whole_pct correlation "$corr" 0
  if [[ $corr -gt 0 ]]; then
    LOOP=(--loss "$(share "$pct")" --correlation "$(share "$corr")") WHAT="loss $pct% (correlation $corr%)"
    link_ends queue_end "$A" "$B"
  else
    WHAT="loss $pct%" NFT=(counter drop)
    # numgen draws 0..99, so 100% is every packet: no draw at all.
    [[ $pct -lt 100 ]] && NFT=(numgen random mod 100 "<" "$pct" counter drop)
    link_ends drop_end "$A" "$B"
  fi
  log "cluster: $WHAT on $A${B:+ - $B}"
}
drop_end() { # N OTHER
  link_match nft "$2"
  in_ns "$1" nft add rule inet brokerbench output "${OUT[@]}" "${NFT[@]}" comment "\"$WHAT$(link_name "$2")\""
  [[ ${#IN[@]} -eq 0 ]] || in_ns "$1" nft add rule inet brokerbench input "${IN[@]}" "${NFT[@]}" comment "\"$WHAT$(link_name "$2")\""
}

# duplicate N PCT | duplicate A B PCT: send PCT% of the packets twice (nftables `dup`, in the
# kernel). What a node sends is copied on its way out; what it receives from the clients is
# copied on its way in and handed to the node's own stack a second time.
cluster_duplicate() {
  local A B REST PCT
  share_args duplicate "$@"
  WHAT="duplicate $PCT%" NFT=()
  [[ $PCT -lt 100 ]] && NFT=(numgen random mod 100 "<" "$PCT")
  link_ends dup_end "$A" "$B"
  log "cluster: $WHAT on $A${B:+ - $B}"
}
dup_end() { # N OTHER
  link_match nft "$2"
  in_ns "$1" nft add rule ip brokerbench output "${OUT[@]}" "${NFT[@]}" counter dup to ip daddr comment "\"$WHAT$(link_name "$2")\""
  # Only what came in on the link: the copy comes back in on lo and must not be copied again.
  [[ ${#IN[@]} -eq 0 ]] || in_ns "$1" nft add rule ip brokerbench prerouting iifname eth0 "${IN[@]}" "${NFT[@]}" counter dup to ip daddr comment "\"$WHAT$(link_name "$2")\""
}

# corrupt N PCT | corrupt A B PCT: flip one bit of PCT% of the TCP and UDP packets, after
# making their checksum whole, so that the receiver's kernel drops them as a damaged packet
# (netstat's InCsumErrors) and TCP retransmits.
cluster_corrupt() {
  local A B REST PCT
  share_args corrupt "$@"
  LOOP=(--corrupt "$(share "$PCT")") WHAT="corrupt $PCT%"
  link_ends queue_end "$A" "$B"
  log "cluster: $WHAT on $A${B:+ - $B}"
}

# delay N MS JITTER | delay A B MS JITTER [REORDER]: hold every packet for MS ± JITTER ms
# (uniform, so packets may overtake each other, as under netem); REORDER percent of them pass
# at once, overtaking the held ones (netem's reorder).
cluster_delay() {
  local A B REST ms jitter reorder
  link_args "$@"
  [[ ${#REST[@]} -ge 2 && ${#REST[@]} -le 3 ]] || die "usage: bin/brokers delay NODE MS JITTER_MS [REORDER_PCT] | delay A B MS JITTER_MS [REORDER_PCT] (nodes n1..n3 or clients)"
  ms=${REST[0]} jitter=${REST[1]} reorder=${REST[2]:-0}
  whole_pct reorder "$reorder" 0
  [[ $ms =~ ^[0-9]+$ && $ms -ge 1 && $ms -le 60000 ]] || die "cluster: delay takes whole milliseconds 1..60000, not '$ms'"
  [[ $jitter =~ ^[0-9]+$ && $jitter -le $ms ]] || die "cluster: jitter takes whole milliseconds 0..$ms (at most the delay), not '$jitter'"
  LOOP=(--delay "${ms}ms" --jitter "${jitter}ms" --reorder "$(share "$reorder")") WHAT="delay ${ms}ms"
  link_ends queue_end "$A" "$B"
  if [[ $reorder == 0 ]]; then log "cluster: ${ms}±${jitter} ms delay on $A${B:+ - $B}"
  else log "cluster: ${ms}±${jitter} ms delay on $A${B:+ - $B}, $reorder% reordered (passed at once)"; fi
}
share() { awk -v p="$1" 'BEGIN { print p / 100 }'; }

brokerbench_bin() {
  local c
  for c in "${BROKERBENCH:-}" "${CARGO_TARGET_DIR:-$root/harness/target}/release/brokerbench" "$(command -v brokerbench || true)"; do
    [[ -n $c && -x $c ]] && { echo "$c"; return; }
  done
  die "cluster: delay, corrupt and correlated loss need the brokerbench binary: build it (cargo build --release) or set BROKERBENCH=/path/to/brokerbench"
}

# queue_end N OTHER: start a packet-faults loop ($LOOP) on a fresh netfilter queue of node N's
# namespace, wait until it listens, then queue the link's packets to it (iptables NFQUEUE; this
# kernel has no sch_netem). The queue fails open: if the loop dies, packets pass untouched.
queue_end() {
  local n=$1 dir queue i bin mark
  bin=$(brokerbench_bin)
  link_match iptables "$2"
  dir=$(cluster_state)/queues
  mkdir -p "$dir"
  queue=$(( $(cat "$dir/$n.queues" 2>/dev/null || echo 0) + 1 ))
  [[ $queue -le 31 ]] || die "cluster: $n has 31 packet faults in force already"
  echo "$queue" >"$dir/$n.queues"
  # Each loop marks what it lets go with its own bit and hands it back to the hook, whose next
  # rule takes it: faults on one link stack, as netem's options do.
  mark=$((1 << queue))
  # One simple command, so that each of nohup, ip and the loop execs the next: $! is the
  # loop's own pid, which heal signals.
  nohup ip netns exec "$(node_ns "$n")" "$bin" packet-faults --queue "$queue" --mark "$mark" "${LOOP[@]}" \
    --seed "$queue" </dev/null >>"$dir/$n.log" 2>&1 &
  echo $! >"$dir/$n.$queue.pid"
  # The kernel lists a namespace's bound queues in /proc/net/netfilter/nfnetlink_queue.
  for i in $(seq 50); do
    # shellcheck disable=SC2016  # awk's own $1
    in_ns "$n" awk -v q="$queue" '$1 == q { found = 1 } END { exit !found }' /proc/net/netfilter/nfnetlink_queue && break
    kill -0 "$(cat "$dir/$n.$queue.pid")" 2>/dev/null || die "cluster: the packet loop on $n exited: $(tail -3 "$dir/$n.log")"
    [[ $i -lt 50 ]] || die "cluster: the packet loop on $n did not bind queue $queue within 5 s"
    sleep 0.1
  done
  local to=(-m mark ! --mark "$mark/$mark" -j NFQUEUE --queue-num "$queue" --queue-bypass -m comment --comment "$WHAT$(link_name "$2")")
  in_ns "$n" iptables -w -A OUTPUT "${OUT[@]}" "${to[@]}"
  [[ ${#IN[@]} -eq 0 ]] || in_ns "$n" iptables -w -A INPUT "${IN[@]}" "${to[@]}"
}

# heal: remove every cut, loss, delay, duplication and corruption (the namespaces stay).
cluster_faults_heal() {
  local n pf
  for n in "${CLUSTER_NODES[@]}"; do
    ip netns list | grep -qw "$(node_ns "$n")" || continue
    in_ns "$n" nft flush chain inet brokerbench input
    in_ns "$n" nft flush chain inet brokerbench output
    in_ns "$n" nft flush table ip brokerbench 2>/dev/null || true
    if [[ -n $(compgen -G "$(cluster_state)/queues/$n.*.pid") ]]; then
      in_ns "$n" iptables -w -F INPUT; in_ns "$n" iptables -w -F OUTPUT
      # Stopped after its rules are gone, so it lets go of what it still holds.
      for pf in "$(cluster_state)/queues/$n".*.pid; do
        kill -TERM "$(cat "$pf")" 2>/dev/null || true
        rm -f "$pf"
      done
      rm -f "$(cluster_state)/queues/$n.queues"
    fi
  done
}

# The rules in force, per node, for status and tests.
cluster_faults() {
  local n
  for n in "${CLUSTER_NODES[@]}"; do
    echo "$n: $({ in_ns "$n" nft list ruleset 2>/dev/null | grep -o 'comment "[^"]*"' | sed 's/comment //'
      in_ns "$n" iptables -w -S 2>/dev/null | grep -o -- '--comment "[^"]*"' | sed 's/--comment //'; } | sed 's/"//g' | sort -u | paste -sd, - || true)"
  done
}

# view PREFIX: the cluster now, as the nodes see it, one `name: state` line each, for the
# harness to record while a run goes on (targets/local-cluster.yaml's `view`):
#   n1: n1 n2 n3                 the members node n1 sees running
#   n3: n3 (partitioned from n1 n2)
#   n2: paused                   it answers, but does not serve (a minority under pause_minority)
#   n2: starting                 booting (after a start or restart), or stopping
#   n1: no answer                down, or too busy to answer within 2 s
#   leader: n2                   the node leading the first queue whose name starts with PREFIX
#   leaders: n1 4, n2 2          with several such queues: how many each node leads
cluster_view() { cluster_hook view "$1"; }

cluster_command() {
  local cmd=$1; shift
  case $cmd in
    status) cluster_status ;;
    node) [[ $# -eq 2 ]] || die "usage: bin/brokers node kill|pause|resume|start|restart n1|n2|n3"; node_control "$1" "$2" ;;
    cut) [[ $# -eq 2 ]] || die "usage: bin/brokers cut A B (nodes n1..n3 or clients)"; cluster_cut "$1" "$2" ;;
    delay) cluster_delay "$@" ;;
    loss) cluster_loss "$@" ;;
    duplicate) cluster_duplicate "$@" ;;
    corrupt) cluster_corrupt "$@" ;;
    heal) cluster_faults_heal; log "cluster: healed" ;;
    faults) cluster_faults ;;
    leader) [[ $# -eq 1 ]] || die "usage: bin/brokers leader QUEUE_PREFIX"; cluster_hook leader "$1" ;;
    view) [[ $# -eq 1 ]] || die "usage: bin/brokers view QUEUE_PREFIX"; cluster_view "$1" ;;
    probe) [[ $# -ge 2 ]] || die "usage: bin/brokers probe A B [PORT]"; if cluster_probe "$@"; then echo "$1 -> $2: open"; else echo "$1 -> $2: no connection"; exit 1; fi ;;
  esac
}
