#!/usr/bin/env bash
# Passerelle benchmark: one command, from scratch or incremental.
#
#   bench/run.sh                      # everything, defaults (10 s x 3 wrk runs per scenario)
#   BENCH_DURATION=5 bench/run.sh     # shorter wrk runs
#   GATEWAY_BIN=/path/passerelle bench/run.sh      # skip the gateway build, use this binary
#   BENCH_GATEWAY_ENV="RUST_LOG=warn" bench/run.sh  # extra settings for the gateway processes
#
# Installs wrk, sqlite3 and nginx (apt) and Datasette 0.65 (pip) when missing, starts
# PostgreSQL 15 when it is down, builds bench/floor and the gateway in release,
# then bench.py generates the 1,000,000-row dataset under bench/work/ (git-ignored),
# measures the six scenarios next to their references and writes bench/RESULTS.md.
# Bounded: every load is time-limited; only processes started here are stopped (by pid).
# Exit code: 0 when every scenario ran, 1 when one failed (RESULTS.md says which).
set -euo pipefail
BENCH=$(dirname "$(readlink -f "$0")")
ROOT=$(dirname "$BENCH")
cd "$BENCH"
T0=$(date +%s)
log() { echo "[$(date +%T) +$(( $(date +%s) - T0 ))s] $*" >&2; }
WORK=${BENCH_WORK:-$BENCH/work}
mkdir -p "$WORK/raw"

# ------------------------------------------------------------------ tools
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)  # S8, two instances behind nginx
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! datasette --version 2>/dev/null | grep -q 'version 0\.65\.'; then
  log "pip install datasette 0.65"
  python3 -m pip install -q 'datasette>=0.65,<0.66'
fi
command -v cargo >/dev/null || { echo "cargo (Rust toolchain) is required" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql (PostgreSQL client) is required" >&2; exit 1; }

# ------------------------------------------------------------------ PostgreSQL
export BENCH_PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql/15/main ]; then
    log "starting PostgreSQL 15"
    pg_ctlcluster 15 main start
  fi
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
psql "$BENCH_PG_URL/postgres" -qtAc 'select 1' >/dev/null \
  || { echo "cannot connect to PostgreSQL at $BENCH_PG_URL (set BENCH_PG_URL)" >&2; exit 1; }

# ------------------------------------------------------------------ builds
if [ -n "${CARGO_TARGET_DIR:-}" ]; then FLOOR_TARGET=$CARGO_TARGET_DIR/bench-floor; else FLOOR_TARGET=$BENCH/floor/target; fi
log "cargo build --release (bench/floor)"
cargo build --release --quiet --manifest-path floor/Cargo.toml --target-dir "$FLOOR_TARGET"
export FLOOR_BIN=$FLOOR_TARGET/release/floor

export GATEWAY_BUILD_ERROR=
if [ -z "${GATEWAY_BIN:-}" ]; then
  log "cargo build --release (the gateway, at $ROOT)"
  if (cd "$ROOT" && cargo build --release --bin passerelle) > "$WORK/raw/gateway_build.log" 2>&1; then
    export GATEWAY_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/passerelle
  else
    GATEWAY_BUILD_ERROR="cargo build --release failed ($WORK/raw/gateway_build.log): $(grep -m3 -E '^error' "$WORK/raw/gateway_build.log" | tr '\n' ' ' | cut -c1-400)"
    export GATEWAY_BUILD_ERROR
    log "the gateway did not build: Passerelle scenarios will be reported as not measured"
    tail -20 "$WORK/raw/gateway_build.log" >&2
  fi
else
  log "using GATEWAY_BIN=$GATEWAY_BIN (no gateway build)"
fi
export GATEWAY_BIN=${GATEWAY_BIN:-}

# ------------------------------------------------------------------ measure
log "measuring (bench/bench.py)"
rc=0
python3 bench.py || rc=$?
log "finished with exit code $rc in $(( $(date +%s) - T0 )) s"
exit $rc
