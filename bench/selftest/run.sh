#!/usr/bin/env bash
# Tests the harness end to end with a stand-in gateway (mock_passerelle.py),
# with short settings: BENCH_DURATION=2, 1 run, 100k rows by default.
# The figures mean nothing; RESULTS.md is written to bench/work/selftest-RESULTS.md.
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
BENCH=$(dirname "$HERE")
export GATEWAY_BIN=$HERE/mock_passerelle.py
export BENCH_DURATION=${BENCH_DURATION:-2} BENCH_REPS=${BENCH_REPS:-1} BENCH_ROWS=${BENCH_ROWS:-100000}
export BENCH_AUDIT_EVENTS=${BENCH_AUDIT_EVENTS:-5000} BENCH_WORK=$BENCH/work/selftest BENCH_RESULTS=$BENCH/work/selftest/RESULTS.md
exec "$BENCH/run.sh"
