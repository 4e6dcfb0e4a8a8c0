#!/usr/bin/env bash
# `make stop`: stops the services `make run` started (not PostgreSQL or RabbitMQ).
set -uo pipefail
cd "$(dirname "$0")/.."
for name in dispatcher publisher registry; do
  pidfile=.run/$name.pid
  [[ -f $pidfile ]] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "[stop] stopped $name"
  fi
  rm -f "$pidfile"
done
