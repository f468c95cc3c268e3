#!/usr/bin/env bash
# Local Apache Kafka cluster on loopback: three KRaft nodes, each broker + controller, a quorum of
# three voters; every topic with 3 replicas and min.insync.replicas 2 (scripts/kafka/cluster.properties).
# For failure tests: one node may be stopped and the cluster goes on taking acks=all writes.
#
#   scripts/kafka-cluster.sh up        fetch the jars, format each node once, start all three, wait
#   scripts/kafka-cluster.sh down      stop every node this script started (SIGTERM, SIGKILL after 30 s)
#   scripts/kafka-cluster.sh status    one line per node; exit 0 only if all three run
#   scripts/kafka-cluster.sh stop N    stop node N (1, 2 or 3) cleanly; kill N: SIGKILL it
#   scripts/kafka-cluster.sh start N   start node N again and wait until it serves
#   scripts/kafka-cluster.sh reset     down, then delete the cluster's data
#   scripts/kafka-cluster.sh bootstrap print the bootstrap servers (host:port,host:port,host:port)
#
# Every command is idempotent. Settings (environment):
#   PERSONA_KAFKA_DIR           state folder (default: <repo>/.local/kafka-cluster): jars, data, logs, pids
#   PERSONA_KAFKA_CLUSTER_PORT  client port of node 1 (default 29092); nodes 2 and 3 use the next two
#   PERSONA_KAFKA_CONTROLLER_PORT  controller port of node 1 (default client port + 100), likewise
# Bootstrap servers: 127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094 (printed by `up`).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
here="$repo/scripts/kafka"
dir=${PERSONA_KAFKA_DIR:-$repo/.local/kafka-cluster}
base=${PERSONA_KAFKA_CLUSTER_PORT:-29092}
cbase=${PERSONA_KAFKA_CONTROLLER_PORT:-$((base + 100))}
nodes=(1 2 3)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs="$dir/libs-$version"

say() { echo "kafka-cluster: $*" >&2; }

port() { echo $((base + $1 - 1)); }
cport() { echo $((cbase + $1 - 1)); }
props() { echo "$dir/node-$1.properties"; }
data() { echo "$dir/node-$1"; }
log() { echo "$dir/node-$1.log"; }
pidfile() { echo "$dir/node-$1.pid"; }
bootstrap() { local n s=""; for n in "${nodes[@]}"; do s="$s${s:+,}127.0.0.1:$(port "$n")"; done; echo "$s"; }

check_node() {
  case "${1:-}" in 1|2|3) ;; *) say "node must be 1, 2 or 3"; exit 2 ;; esac
}

running_pid() {
  local f; f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  local pid; pid=$(cat "$f")
  # Only a process we started: java running kafka.Kafka with this node's properties file.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $(props "$1")"; then
    echo "$pid"; return 0
  fi
  rm -f "$f"; return 1
}

serving() { (exec 3<>"/dev/tcp/127.0.0.1/$(port "$1")") 2>/dev/null; }

# The jars: scripts/kafka.sh fetches them (Maven Central) into the same state folder.
fetch() { PERSONA_KAFKA_DIR="$dir" "$repo/scripts/kafka.sh" fetch; }

# Sets java_cmd: the JVM command line of node $1 (its own log file).
java_for() {
  java_cmd=(java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$here/log4j2.properties" "-Dpersona.kafka.log=$(log "$1")" -cp "$libs/*")
}

write_props() {
  local n=$1 voters="" v
  for v in "${nodes[@]}"; do voters="$voters${voters:+,}$v@127.0.0.1:$(cport "$v")"; done
  { cat "$here/cluster.properties"
    echo "node.id=$n"
    echo "log.dirs=$(data "$n")"
    echo "listeners=PLAINTEXT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(cport "$n")"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$(port "$n")"
    # Static voters: every node is formatted with the same cluster id and no quorum flag.
    echo "controller.quorum.voters=$voters"; } > "$(props "$n")"
}

cluster_id() {
  local f="$dir/cluster.id"
  if [ ! -s "$f" ]; then
    java_for 1
    "${java_cmd[@]}" kafka.tools.StorageTool random-uuid > "$f.tmp" && mv "$f.tmp" "$f"
  fi
  cat "$f"
}

format() {
  local n=$1
  [ -f "$(data "$n")/meta.properties" ] && return 0
  mkdir -p "$(data "$n")"
  java_for "$n"
  "${java_cmd[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$(cluster_id)" -c "$(props "$n")" >&2
}

launch() {
  local n=$1 pid
  if pid=$(running_pid "$n"); then say "node $n already running (pid $pid) on 127.0.0.1:$(port "$n")"; return 0; fi
  if serving "$n"; then say "something else already listens on 127.0.0.1:$(port "$n"); not starting"; exit 1; fi
  write_props "$n"
  format "$n"
  java_for "$n"
  : > "$(log "$n")"  # "Kafka Server started" below must be this start's
  nohup "${java_cmd[@]}" kafka.Kafka "$(props "$n")" > "$dir/node-$n.out" 2>&1 &
  echo $! > "$(pidfile "$n")"
}

wait_serving() {
  local n=$1 started
  started=$(cat "$(pidfile "$n")")
  for _ in $(seq 1 360); do  # 3 minutes: a loaded 2-core machine starts three JVMs slowly
    if serving "$n" && grep -q "Kafka Server started" "$(log "$n")" 2>/dev/null; then
      say "node $n up on 127.0.0.1:$(port "$n") (pid $started, log $(log "$n"))"; return 0
    fi
    # the process itself, not running_pid: until nohup has exec'd java its command line is not
    # the node's yet, and running_pid would take the new pid file for a stale one and delete it
    if ! kill -0 "$started" 2>/dev/null; then
      rm -f "$(pidfile "$n")"
      say "node $n exited while starting; last lines of $dir/node-$n.out and $(log "$n"):"
      tail -n 20 "$dir/node-$n.out" "$(log "$n")" >&2 || true; exit 1
    fi
    sleep 0.5
  done
  say "node $n did not start within 180 s; see $(log "$n")"; exit 1
}

up() {
  fetch
  mkdir -p "$dir"
  local n
  for n in "${nodes[@]}"; do launch "$n"; done  # together: a controller needs a majority to elect
  for n in "${nodes[@]}"; do wait_serving "$n"; done
  say "bootstrap servers $(bootstrap)"
}

start() {
  check_node "$1"; fetch; mkdir -p "$dir"
  launch "$1"; wait_serving "$1"
}

# SIGTERM to the given nodes at once (a node alone waits for the others' controlled shutdown
# otherwise), SIGKILL what is left after 30 s.
terminate() {
  local sig=$1 n pid; shift
  local -a pids=()
  for n in "$@"; do
    if pid=$(running_pid "$n"); then kill "-$sig" "$pid"; pids+=("$n:$pid"); else say "node $n not running"; fi
  done
  for _ in $(seq 1 60); do
    local left=()
    for p in "${pids[@]}"; do kill -0 "${p#*:}" 2>/dev/null && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && break
    sleep 0.5
  done
  for p in "${pids[@]}"; do
    if kill -0 "${p#*:}" 2>/dev/null; then say "node ${p%%:*}: no clean stop after 30 s; killing"; kill -KILL "${p#*:}" || true; fi
    rm -f "$(pidfile "${p%%:*}")"; say "node ${p%%:*} stopped"
  done
}

status() {
  local n pid up=0
  for n in "${nodes[@]}"; do
    if pid=$(running_pid "$n"); then echo "node $n running (pid $pid) on 127.0.0.1:$(port "$n")"; up=$((up + 1))
    else echo "node $n not running"; fi
  done
  [ "$up" -eq ${#nodes[@]} ] || return 3
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) terminate TERM "${nodes[@]}" ;;
  status) status ;;
  stop) check_node "${2:-}"; terminate TERM "$2" ;;
  kill) check_node "${2:-}"; terminate KILL "$2" ;;
  start) start "${2:-}" ;;
  bootstrap) bootstrap ;;
  reset) terminate TERM "${nodes[@]}"; rm -rf "$dir"/node-* "$dir/cluster.id"; say "data removed" ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
