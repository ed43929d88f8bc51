#!/usr/bin/env bash
# One vs two processes writing the one audit chain on one PostgreSQL database.
# Usage: BIN=target/release/passerelle [EVENTS=50000] [ROUNDS=3] bench/audit-two-writers.sh
# (a local PostgreSQL on 127.0.0.1:5432, user postgres; a scratch database is created and dropped).
set -euo pipefail
BIN=${BIN:?}
EVENTS=${EVENTS:-50000}
ROUNDS=${ROUNDS:-3}
DB=audit_two_writers_$$
OUT=$(mktemp -d)
psql -h 127.0.0.1 -U postgres -qc "create database $DB"
trap 'rm -rf "$OUT"; psql -h 127.0.0.1 -U postgres -qc "drop database if exists $DB with (force)"' EXIT
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB PASSERELLE_DEV_MODE=true RUST_LOG=error
run() { "$BIN" bench-audit --events "$1" --concurrency 32; }
run 2000 >/dev/null   # migrations, keys, warm-up
for round in $(seq 1 "$ROUNDS"); do
  start=$(date +%s.%N); one=$(run "$EVENTS"); end=$(date +%s.%N)
  echo "round $round one-process: $one wall=$(echo "$end - $start" | bc)"
  start=$(date +%s.%N)
  run $((EVENTS / 2)) > "$OUT/a.txt" & a=$!
  run $((EVENTS / 2)) > "$OUT/b.txt" & b=$!
  ( for _ in $(seq 1 40); do psql -h 127.0.0.1 -U postgres -Atc "select coalesce(wait_event_type,'cpu')||':'||coalesce(wait_event,'-') from pg_stat_activity where datname='$DB' and state='active' and query not like '%pg_stat_activity%'" ; sleep 0.1; done ) > "$OUT/waits-$round.txt" 2>/dev/null & s=$!
  wait $a; wait $b; end=$(date +%s.%N); kill $s 2>/dev/null || true
  echo "  waits sampled (two processes): $(sort "$OUT/waits-$round.txt" | uniq -c | sort -rn | head -5 | tr -s ' ' | tr '\n' ';')"
  wall=$(echo "$end - $start" | bc)
  echo "round $round two-processes: A $(cat "$OUT/a.txt") | B $(cat "$OUT/b.txt") | wall=$wall aggregate=$(echo "$EVENTS / $wall" | bc) ev/s"
  echo "  load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
"$BIN" audit verify | head -5
psql -h 127.0.0.1 -U postgres -d $DB -Atc "select count(*), count(distinct seq), min(seq), max(seq) from audit_events"
