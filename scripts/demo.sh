#!/usr/bin/env bash
# The demo around a running broker (make demo): a worker, the catalog, replayed traffic.
#   scripts/demo.sh all      worker + catalog + replay in the background, then the URLs to open
#   scripts/demo.sh worker   only the worker (idempotent)
#   scripts/demo.sh stop     stop the replay and the worker
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
run=.local/demo
port=${PERSONA_WEB_PORT:-6066}
rate=${PERSONA_DEMO_RATE:-100}
mkdir -p "$run"

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

worker() {
  if alive worker; then echo "worker already running (pid $(cat $run/worker.pid))"; return; fi
  nohup "$bin/persona" worker --web-port "$port" --datadir .local/demo/worker-data > "$run/worker.log" 2>&1 &
  echo $! > "$run/worker.pid"
  for _ in $(seq 1 120); do
    if curl -fsS "127.0.0.1:$port/health" 2>/dev/null | grep -q '"status":"ok"'; then
      echo "worker up on http://127.0.0.1:$port (log $run/worker.log)"; return; fi
    alive worker || { echo "worker exited; see $run/worker.log"; tail -n 20 "$run/worker.log"; exit 1; }
    sleep 0.5
  done
  echo "worker did not become ready in 60 s; see $run/worker.log"; exit 1
}

replay() {
  if alive replay; then echo "replay already running"; return; fi
  nohup "$bin/persona" replay --rate "$rate" > "$run/replay.log" 2>&1 &
  echo $! > "$run/replay.pid"
}

stop() {
  # Wait for each to exit: the worker's clean stop flushes its tables and commits, which needs the
  # broker that `make stop` stops next.
  for p in replay worker; do
    if alive "$p"; then
      kill "$(cat "$run/$p.pid")"
      for _ in $(seq 600); do alive "$p" || break; sleep 0.1; done
      if alive "$p"; then kill -9 "$(cat "$run/$p.pid")"; echo "killed $p (no clean stop within 60 s)"; else echo "stopped $p"; fi
    fi
    rm -f "$run/$p.pid"
  done
}

all() {
  worker
  "$bin/persona" load-catalog
  replay
  sleep 3
  user=$("$bin/persona" tail persona.events --from-beginning --max 1 --idle-exit 10 \
         | "$bin/python" -c 'import json,sys; print(json.loads(sys.stdin.readline())["value"]["user_id"])')
  cat <<EOT

persona demo is running (replaying shopper sessions at $rate events/s; log $run/replay.log).
  Page:            http://127.0.0.1:$port/
  Recommendations: curl 127.0.0.1:$port/recommendations/$user
  Profile:         curl 127.0.0.1:$port/users/$user
  Health:          curl 127.0.0.1:$port/health
  Live events:     $bin/persona tail persona.events | head
Stop everything with: make stop
EOT
}

"${1:-all}"
