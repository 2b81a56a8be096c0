# shellcheck shell=bash disable=SC2154  # state, cache and here are bin/brokers's
# rabbitmq: Debian's RabbitMQ 3.10, as one local node and as the nodes of the local cluster
# (lib/cluster.sh runs the network; the node_* hooks below run RabbitMQ on it).

register rabbitmq default
AMQP_PORT=5672
RABBIT_NODE="brokerbench@localhost"
# Plugins every node runs: the consistent-hash exchange shards a run's queues by key.
RABBIT_PLUGINS='[rabbitmq_consistent_hash_exchange].'

rabbitmq::ports() { echo $AMQP_PORT; }
rabbitmq::where() { echo "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"; }

rabbitmq::install() {
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] && return
  log "rabbitmq: installing Debian's rabbitmq-server (about a minute; log: $(install_log))"
  apt_install rabbitmq rabbitmq-server
  # The package may start a system node on 5672; we run our own, so stop that one.
  (service rabbitmq-server stop || true) >/dev/null 2>&1
}

# rabbit_env_at NODENAME ADDRESS DIR LOG: where a node listens and keeps its state, as
# rabbitmq-server and rabbitmqctl read it from the environment.
rabbit_env_at() {
  export RABBITMQ_NODENAME=$1 RABBITMQ_NODE_IP_ADDRESS=$2
  export RABBITMQ_NODE_PORT=$AMQP_PORT RABBITMQ_DIST_PORT=25672
  export RABBITMQ_MNESIA_BASE="$3/mnesia" RABBITMQ_LOG_BASE="$3/log" RABBITMQ_PID_FILE="$3/beam.pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$3/enabled_plugins" RABBITMQ_CONFIG_FILE="$3/rabbitmq"
  export RABBITMQ_LOGS=$4
  export HOME="${HOME:-/root}"
}

rabbit_env() { rabbit_env_at "$RABBIT_NODE" 127.0.0.1 "$state/rabbitmq" "$(logfile rabbitmq)"; }

# RabbitMQ's own control tool, pointed at the node bin/brokers runs (its node name and state).
rabbitmq::rabbitmqctl() { (rabbit_env; /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" "$@"); }
command_of rabbitmqctl rabbitmq::rabbitmqctl "bin/brokers rabbitmqctl ARGS...               rabbitmqctl against the local RabbitMQ node"

rabbitmq::ready() { rabbitmq::rabbitmqctl await_startup --timeout 2 && port_open $AMQP_PORT; }

rabbitmq::start() {
  mkdir -p "$state/rabbitmq/mnesia" "$state/rabbitmq/log"
  echo "$RABBIT_PLUGINS" >"$state/rabbitmq/enabled_plugins"
  # loopback_users = none lets the default guest user connect over 127.0.0.1 (it is only on loopback).
  printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' $AMQP_PORT >"$state/rabbitmq/rabbitmq.conf"
  # rabbitmq-server's own output; the node logs to rabbitmq.log (RABBITMQ_LOGS).
  (rabbit_env; nohup /usr/lib/rabbitmq/bin/rabbitmq-server >>"$state/rabbitmq/stdout.log" 2>&1 &
   echo $! >"$(pidfile rabbitmq)")
}

# Asked to stop first, so that it syncs and leaves nothing half-written; then signalled.
rabbitmq::stop() { rabbitmq::rabbitmqctl stop >/dev/null 2>&1 || true; }
# Its Erlang VM and epmd outlive rabbitmq-server's own process. Only the host's epmd: each
# cluster node has its own, in its namespace, and the cluster may be up meanwhile.
rabbitmq::stopped() {
  local pid host; host=$(readlink /proc/self/ns/net)
  for pid in $(pgrep -f "epmd -daemon"); do
    [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) == "$host" ]] && kill "$pid" 2>/dev/null
  done
  return 0
}
rabbitmq::killed() { pkill -KILL -f "$state/rabbitmq" || true; }

# Its queues and exchanges as `queue NAME` / `exchange NAME` lines, for `brokerbench leftovers`
# (AMQP has no call that lists them).
rabbitmq::list() {
  local queues exchanges
  queues=$(rabbitmq::rabbitmqctl -q list_queues name --no-table-headers) || die "rabbitmq: cannot list queues"
  exchanges=$(rabbitmq::rabbitmqctl -q list_exchanges name --no-table-headers) || die "rabbitmq: cannot list exchanges"
  sed -n 's/^./queue &/p' <<<"$queues"
  sed -n 's/^./exchange &/p' <<<"$exchanges"
}

# ---------------------------------------------------------------- the cluster's nodes

node_name() { echo "rabbit@$(node_addr "$1")"; }

rabbit_node_env() {
  local n=$1 dir; dir="$(cluster_state)/$n"
  export RABBITMQ_USE_LONGNAME=true
  rabbit_env_at "$(node_name "$n")" "$(node_addr "$n")" "$dir" "$dir/$n.log"
  # A silent peer is declared down after net_ticktime (Erlang's default 60 s, here 10 s), so a
  # partition shows in about 10-15 s: a test or a workload's fault need not last minutes.
  # Erlang 25's global defaults to prevent_overlapping_partitions, which RabbitMQ turns off only
  # once it boots (rabbitmq-server#4253; it conflicts with RabbitMQ's own partition handling).
  # Here, a minority node restarting after a heal logged global "Faking nodedown/nodeup" and
  # never finished booting; off from the VM's start, as RabbitMQ intends.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel net_ticktime ${BROKERBENCH_NET_TICKTIME:-10} -kernel prevent_overlapping_partitions false"
}

# rabbitmqctl against one node, from inside its namespace (a cut between the host and the node
# must not cut the script's own control path: only the harness's clients use the bridge).
# Within CTL_TIMEOUT seconds (default 10): during a partition not yet detected, a query such as
# cluster_status waits about a minute for the unreachable peers before it answers.
node_ctl() {
  local n=$1; shift
  (rabbit_node_env "$n"; timeout -k 2 "${CTL_TIMEOUT:-10}" ip netns exec "$(node_ns "$n")" \
    /usr/lib/rabbitmq/bin/rabbitmqctl --longnames -n "$(node_name "$n")" "$@")
}
rabbitmq::ctl() { [[ $# -ge 1 ]] || die "usage: bin/brokers ctl NODE ARGS..."; known_node "$1"; node_ctl "$@"; }
command_of ctl rabbitmq::ctl "bin/brokers ctl NODE ARGS...                   rabbitmqctl against one cluster node"

rabbitmq::node_install() { rabbitmq::install; }
rabbitmq::node_port() { echo 5672; }
rabbitmq::node_ready() { node_ctl "$1" await_startup --timeout 2 >/dev/null 2>&1; }
rabbitmq::node_log() { echo "$(cluster_state)/$1/$1.log"; }

rabbitmq::node_start() {
  local n=$1 dir; dir="$(cluster_state)/$n"
  mkdir -p "$dir/mnesia" "$dir/log"
  echo "$RABBIT_PLUGINS" >"$dir/enabled_plugins"
  # pause_minority unless `partition-handling` set another mode (which rewrites this line).
  [[ -f $dir/rabbitmq.conf ]] ||
    printf '%s\n' 'loopback_users = none' "listeners.tcp.default = $(node_addr "$n"):5672" \
      'cluster_partition_handling = pause_minority' >"$dir/rabbitmq.conf"
  (rabbit_node_env "$n"; spawn_in_node "$n" /usr/lib/rabbitmq/bin/rabbitmq-server)
}

rabbitmq::node_stop() { CTL_TIMEOUT=30 node_ctl "$1" stop >/dev/null 2>&1 || true; }

# Join the other nodes to the first unless they are already its members.
rabbitmq::form() {
  local n
  for n in "${CLUSTER_NODES[@]:1}"; do
    if ! rabbit_disk_nodes "${CLUSTER_NODES[0]}" | grep -qx "$(node_name "$n")"; then
      CTL_TIMEOUT=60 node_ctl "$n" stop_app >/dev/null
      CTL_TIMEOUT=60 node_ctl "$n" join_cluster "$(node_name "${CLUSTER_NODES[0]}")" >/dev/null ||
        die "cluster: $n could not join $(node_name "${CLUSTER_NODES[0]}")"
      CTL_TIMEOUT=60 node_ctl "$n" start_app >/dev/null
    fi
  done
}

rabbitmq::where_cluster() {
  echo "amqp://guest:guest@$(node_addr n1):5672/%2f, $(node_addr n2), $(node_addr n3)"
}

# The nodes node N counts as members (running or not), one per line.
rabbit_disk_nodes() {
  node_ctl "$1" cluster_status --formatter json 2>/dev/null |
    python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["disk_nodes"]))'
}

# The members the first answering node reports running, one per line.
rabbitmq::members() {
  local n
  for n in "${CLUSTER_NODES[@]}"; do
    node_ctl "$n" cluster_status --formatter json 2>/dev/null |
      python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null && return
  done
  return 1
}

# One line on node N; fails unless it serves.
rabbitmq::node_status() {
  local n=$1 view
  if rabbitmq::node_ready "$n"; then
    # A node that has just lost its peers can take longer than the control timeout to answer;
    # say so rather than let `set -e` end the report on the first node that is slow.
    view=$(node_ctl "$n" cluster_status --formatter json 2>/dev/null |
      python3 -c 'import json,sys; s=json.load(sys.stdin); p=s.get("partitions") or {}; print("sees running:", " ".join(s["running_nodes"]), "| partitions:", json.dumps(p) if p else "none")' 2>/dev/null) ||
      view="cluster_status gave no answer within ${CTL_TIMEOUT:-10} s"
    echo "$n $(node_name "$n"): up; $view"
  elif node_ctl "$n" ping >/dev/null 2>&1; then
    # The Erlang VM answers but RabbitMQ is stopped: pause_minority does this to a minority.
    echo "$n $(node_name "$n"): paused (the VM runs, RabbitMQ does not: a minority under pause_minority?)"; return 1
  else
    echo "$n $(node_name "$n"): down"; return 1
  fi
}

rabbitmq::cluster_status() {
  echo "partition handling: $(node_ctl n1 eval 'application:get_env(rabbit, cluster_partition_handling).' 2>/dev/null | tr -d '{}' | sed 's/^ok,//' || echo unknown)"
}

# partition-handling MODE: how every running node reacts to a partition from now on.
rabbitmq::partition_handling() {
  [[ $# -eq 1 ]] || die "usage: bin/brokers partition-handling pause_minority|autoheal|ignore"
  local mode=$1 n
  case $mode in pause_minority | autoheal | ignore) ;; *) die "cluster: partition handling is pause_minority, autoheal or ignore, not '$mode'" ;; esac
  for n in "${CLUSTER_NODES[@]}"; do
    # In the config file too: a node that restarts (autoheal restarts the losers) keeps it.
    sed -i "s/^cluster_partition_handling = .*/cluster_partition_handling = $mode/" "$(cluster_state)/$n/rabbitmq.conf"
    node_ctl "$n" eval "application:set_env(rabbit, cluster_partition_handling, $mode)." >/dev/null ||
      die "cluster: could not set partition handling on $n"
  done
  log "cluster: partition handling $mode"
}
command_of partition-handling rabbitmq::partition_handling "bin/brokers partition-handling pause_minority|autoheal|ignore   how the cluster's nodes react to a partition"

# leader PREFIX: the node (n1..n3) that leads the first queue whose name starts with PREFIX:
# a quorum queue's leader, or the node a classic queue's process lives on, as the first node
# that answers and is not paused knows it. Through erl_call, like `view`: milliseconds.
rabbitmq::leader() {
  local prefix=$1 n out
  for n in "${CLUSTER_NODES[@]}"; do
    out=$(node_eval "$n" 3 "case rabbit:is_running() of false -> \"paused\"; true -> $(queues_by_leader "$prefix")
      case Qs of [] -> \"none\"; [{_, L} | _] -> L end end." 2>/dev/null) || continue
    out=$(ok_string "$out") || continue
    case $out in
      paused) continue ;;
      none) die "cluster: no queue starts with $prefix" ;;
      *) nodes_as_n <<<"$out"; return ;;
    esac
  done
  die "cluster: no answering node leads or holds a queue starting with $prefix"
}

# The Erlang that binds Qs to [{QueueName, LeaderNode}] for the queues whose name starts with
# PREFIX, sorted by name: a quorum queue's pid is {RaName, LeaderNode}, a classic queue's is its
# process, on the node that holds it.
queues_by_leader() { # PREFIX
  printf '%s' 'P = <<"'"$1"'">>,
  Node = fun({_, N}) when is_atom(N) -> atom_to_list(N); (Pid) when is_pid(Pid) -> atom_to_list(node(Pid)); (_) -> "none" end,
  Qs = lists:sort([{element(4, amqqueue:get_name(Q)), Node(amqqueue:get_pid(Q))} || Q <- rabbit_amqqueue:list(),
         binary:longest_common_prefix([element(4, amqqueue:get_name(Q)), P]) =:= byte_size(P)]),'
}

# Evaluate an Erlang expression on node N with erl_call, from inside its namespace, within
# $2 seconds. erl_call is a small C program that speaks the distribution protocol: no Erlang VM
# boots, so it costs milliseconds where rabbitmqctl costs 0.5-1 s of CPU; `view` runs it every
# few seconds during a run. Prints the result as Erlang prints it.
node_eval() { # N SECONDS EXPRESSION
  local n=$1 secs=$2
  (rabbit_node_env "$n"; printf '%s\n' "$3" | timeout -k 1 "$secs" ip netns exec "$(node_ns "$n")" \
    erl_call -name "$(node_name "$n")" -timeout "$secs" -e)
}
nodes_as_n() { sed 's/rabbit@10\.77\.0\.1\([0-9]\)/n\1/g'; }
# The string of erl_call's `{ok, "..."}`; fails on anything else (an error, a badrpc).
ok_string() { sed -nE 's/^\{ok, ?"(.*)"\}$/\1/p' <<<"$1" | grep .; }

# view PREFIX: the cluster now, as the nodes see it (lib/cluster.sh's cluster_view says the form).
rabbitmq::view() {
  local prefix=$1 n out asked=""
  local sees='case rabbit:is_running() of
    false ->
      case catch rabbit_boot_state:get() of
        S when S =:= booting; S =:= core_started -> "starting";
        stopping -> "stopping";
        _ -> "paused"
      end;
    true ->
      Names = fun(Ns) -> string:join([atom_to_list(X) || X <- lists:sort(Ns)], " ") end,
      case rabbit_node_monitor:partitions() of
        [] -> Names(rabbit_nodes:all_running());
        P -> Names(rabbit_nodes:all_running()) ++ " (partitioned from " ++ Names(P) ++ ")"
      end
  end.'
  local leads
  leads="$(queues_by_leader "$prefix")"'
  Count = fun(L) -> string:join([N ++ " " ++ integer_to_list(length([x || {_, M} <- Qs, M =:= N])) || N <- lists:usort([M || {_, M} <- L])], ", ") end,
  case Qs of
    [] -> "leader: none (no queue yet)";
    [{_, L}] -> "leader: " ++ L;
    [{_, L} | _] -> "leader: " ++ L ++ "~nleaders: " ++ Count(Qs)
  end.'
  for n in "${CLUSTER_NODES[@]}"; do
    if out=$(node_eval "$n" 2 "$sees" 2>/dev/null) && out=$(ok_string "$out"); then
      echo "$n: $out" | nodes_as_n
      # The leader is asked of a node whose RabbitMQ runs: one that is booting would block
      # the query on tables it has not loaded yet (and slow its own boot).
      case $out in paused | starting | stopping) ;; *) [[ -n $asked ]] || asked=$n ;; esac
    else
      echo "$n: no answer"
    fi
  done
  [[ -n $asked ]] || return 0
  if out=$(node_eval "$asked" 3 "$leads" 2>/dev/null) && out=$(ok_string "$out"); then
    echo "$out" | sed 's/~n/\n/' | nodes_as_n
  else
    echo "leader: no answer from $asked"
  fi
}
