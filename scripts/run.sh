#!/usr/bin/env bash
# `make run`: PostgreSQL and RabbitMQ up, migrations applied, the three services built and started
# in the background (logs in .run/<service>.log). Idempotent: starts only what is not running.
# PROFILE=release builds optimised binaries (the benchmarks use it).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-debug}
RUN_DIR=.run
mkdir -p "$RUN_DIR"

bash scripts/deps-up.sh

# Every binary of the workspace in one invocation: the same feature set as the test suite's
# build, so `make run`, `make test` and `make bench` share their compiled dependencies.
if [[ $PROFILE == release ]]; then
  cargo build --release --locked --workspace --bins
else
  cargo build --locked --workspace --bins
fi
BIN=target/$PROFILE

"$BIN/hookwire-registry" migrate

running() { [[ -f $RUN_DIR/$1.pid ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

# Fewer glibc malloc arenas: lower resident memory for the services (docs/operations.md, "Memory").
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}

start() {
  local name=$1 port=$2
  if running "$name"; then
    echo "[run] $name already running (pid $(cat "$RUN_DIR/$name.pid"))"
    return
  fi
  nohup "$BIN/hookwire-$name" serve >>"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
  echo "[run] started $name (pid $!)"
}

wait_ready() {
  local name=$1 port=$2
  for _ in $(seq 1 100); do
    if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then return 0; fi
    if ! running "$name"; then
      echo "[run] $name exited; last lines of $RUN_DIR/$name.log:" >&2
      tail -20 "$RUN_DIR/$name.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "[run] $name is not ready after 20 s; see $RUN_DIR/$name.log" >&2
  exit 1
}

start registry 8080
wait_ready registry 8080
start publisher 8081
start dispatcher 8082
wait_ready publisher 8081
wait_ready dispatcher 8082

cat <<EOT
[run] Hookwire is up:
  registry    http://127.0.0.1:8080   (management API, /v1/...)   log: $RUN_DIR/registry.log
  publisher   http://127.0.0.1:8081   (POST /v1/events)           log: $RUN_DIR/publisher.log
  dispatcher  http://127.0.0.1:8082   (health and metrics)        log: $RUN_DIR/dispatcher.log
  console     http://127.0.0.1:8080/console/#/admin   (a tenant's portal: \`hookwire portal\`)
  CLI         $BIN/hookwire   (docs/cli.md)
  admin token: \$HOOKWIRE_ADMIN_TOKEN (development default: dev-admin-token)
  producer token: \$HOOKWIRE_PRODUCER_TOKEN (development default: dev-producer-token)
EOT
