#!/usr/bin/env bash
# `make bench`: release binaries, the stack restarted with benchmark settings, then
# hookwire-bench (table printed; JSON and Markdown in bench/results/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/stop.sh
# The API scenarios create webhooks much faster than the default 5 per hour per key allows.
export HOOKWIRE__RATE_LIMITS__CREATE_WEBHOOK__COUNT=100000000
export HOOKWIRE__RATE_LIMITS__DEFAULT__COUNT=100000000
# Benchmarks measure throughput, not the cost of logging each request.
export HOOKWIRE__TELEMETRY__LOG_LEVEL=${HOOKWIRE__TELEMETRY__LOG_LEVEL:-warn}
PROFILE=release bash scripts/run.sh   # builds hookwire-bench too (--workspace --bins)
target/release/hookwire-bench
