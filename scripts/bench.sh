#!/usr/bin/env bash
# `make bench`: release binaries, the stack restarted with benchmark settings, then
# hookwire-bench (table printed; JSON and Markdown in bench/results/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/stop.sh
# The test suite's extra brokers (the three-node cluster, the TLS node and PostgreSQL cluster) take
# CPU even when idle: stopped, so that only the stack under test runs beside the bench.
bash scripts/cluster.sh down
bash scripts/tls-up.sh down
bash scripts/deps-up.sh
# A fresh database per run: results do not depend on how large the development delivery log has
# grown over earlier runs (millions of rows, and their autovacuum, during a scenario). It is left in
# place afterwards for inspection; `make stop && make run` returns to the development database.
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
as_root runuser -u postgres -- psql -qtAX -v ON_ERROR_STOP=1 -c "set client_min_messages = warning" \
  -c "drop database if exists hookwire_bench with (force)" \
  -c "create database hookwire_bench owner ${HOOKWIRE_DB_USER:-hookwire}" \
  -c "grant pg_checkpoint to ${HOOKWIRE_DB_USER:-hookwire}"
export HOOKWIRE__DATABASE__URL=${HOOKWIRE_BENCH_DATABASE_URL:-postgres://hookwire:hookwire@127.0.0.1:5432/hookwire_bench?sslmode=disable}
# The API scenarios create webhooks much faster than the default 5 per hour per key allows.
export HOOKWIRE__RATE_LIMITS__CREATE_WEBHOOK__COUNT=100000000
export HOOKWIRE__RATE_LIMITS__DEFAULT__COUNT=100000000
# Benchmarks measure throughput, not the cost of logging each request.
export HOOKWIRE__TELEMETRY__LOG_LEVEL=${HOOKWIRE__TELEMETRY__LOG_LEVEL:-warn}
PROFILE=release bash scripts/run.sh   # builds hookwire-bench too (--workspace --bins)
target/release/hookwire-bench
