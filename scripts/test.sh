#!/usr/bin/env bash
# Runs the whole test suite and ends with one plain total line, `tests: N passed, N failed`,
# so the result is not hidden behind cargo's last (often empty) doc-test summary.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
# The fault tests start dispatchers as processes: the binaries must exist.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
