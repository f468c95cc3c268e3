#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller) on loopback, for development and tests.
#
#   scripts/kafka.sh fetch    download the broker jars from Maven Central once (needs mvn)
#   scripts/kafka.sh up       fetch, format storage once, start in the background, wait until it serves
#   scripts/kafka.sh down     stop the broker this script started (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh status   say whether it runs
#   scripts/kafka.sh reset    down, then delete its data
#
# Every command is idempotent. Settings (environment):
#   PERSONA_KAFKA_DIR   state folder (default: <repo>/.local/kafka): jars, data, log, pid
#   PERSONA_KAFKA_PORT  client port on 127.0.0.1 (default 9092); the controller uses PORT+1
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
here="$repo/scripts/kafka"
dir=${PERSONA_KAFKA_DIR:-$repo/.local/kafka}
port=${PERSONA_KAFKA_PORT:-9092}
cport=$((port + 1))
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs="$dir/libs-$version"
data="$dir/data-$port"
log="$dir/broker-$port.log"
pidfile="$dir/broker-$port.pid"
props="$dir/server-$port.properties"

say() { echo "kafka: $*" >&2; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  # Only a process we started: java running kafka.Kafka with our properties file.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $props"; then
    echo "$pid"; return 0
  fi
  rm -f "$pidfile"; return 1
}

serving() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

fetch() {
  [ -f "$libs/.complete" ] && return 0
  command -v mvn >/dev/null || { say "mvn is needed to fetch the broker (apt-get install maven)"; exit 1; }
  say "fetching Apache Kafka $version from Maven Central into $libs"
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
}

java_cmd=(java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/log4j2.properties" "-Dpersona.kafka.log=$log" -cp "$libs/*")

write_props() {
  { cat "$here/server.properties"
    echo "log.dirs=$data"
    echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
    echo "controller.quorum.voters=1@127.0.0.1:$cport"; } > "$props"
}

format() {
  [ -f "$data/meta.properties" ] && return 0
  mkdir -p "$data"
  local id; id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid)
  "${java_cmd[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$id" -c "$props" >&2
}

up() {
  if pid=$(running_pid); then say "already running (pid $pid) on 127.0.0.1:$port"; return 0; fi
  if serving; then say "something else already listens on 127.0.0.1:$port; not starting"; exit 1; fi
  fetch
  mkdir -p "$dir"
  write_props
  format
  nohup "${java_cmd[@]}" kafka.Kafka "$props" > "$dir/broker-$port.out" 2>&1 &
  local started=$!
  echo "$started" > "$pidfile"
  for _ in $(seq 1 360); do  # 3 minutes: a loaded 2-core machine starts the JVM slowly
    if serving && grep -q "Kafka Server started" "$log" 2>/dev/null; then
      say "up on 127.0.0.1:$port (pid $started, log $log)"; return 0
    fi
    # the process itself, not running_pid: until nohup has exec'd java its command line is not
    # the broker's yet, and running_pid would take the new pid file for a stale one and delete it
    if ! kill -0 "$started" 2>/dev/null; then
      rm -f "$pidfile"
      say "broker exited while starting; last lines of $dir/broker-$port.out and $log:"
      tail -n 20 "$dir/broker-$port.out" "$log" >&2 || true; exit 1
    fi
    sleep 0.5
  done
  say "broker did not start within 180 s; see $log"; exit 1
}

down() {
  local pid
  if ! pid=$(running_pid); then say "not running"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return 0; }; sleep 0.5; done
  say "no clean stop after 30 s; killing"; kill -KILL "$pid" || true; rm -f "$pidfile"
}

status() {
  if pid=$(running_pid); then echo "running (pid $pid) on 127.0.0.1:$port"; else echo "not running"; return 3; fi
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) status ;;
  reset) down; rm -rf "$data" "$log"; say "data removed" ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
