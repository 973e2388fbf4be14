#!/usr/bin/env bash
# The transparency log at 1,000,000 entries, on SQLite and on PostgreSQL: appends
# per second as events make them (one transaction each, from WRITERS threads at
# once, while the sequencer integrates every 100 ms; after a fill of a thousand
# per transaction), inclusion and consistency proof generation at that size, and
# an auditor's pass over every entry. Runs the service code directly (the
# `log-bench` example), no HTTP in between.
#
#   bench/log.sh [ENTRIES] [EVENT_APPENDS] [PROOFS] [WRITERS]   (defaults: 1000000, 20000, 2000, 8)
#
# Needs: cargo (release build; CARGO_TARGET_DIR is honoured), psql and a PostgreSQL
# server at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# where a database can be created. Appends two rows to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${1:-1000000}
single=${2:-20000}
proofs=${3:-2000}
writers=${4:-8}
. bench/lib.sh
build_release --example log-bench
bin="$target/release/examples/log-bench"
pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

work=$(mktemp -d)
pg_db=""
cleanup() {
  [ -n "$pg_db" ] && psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

summary() {
  python3 - "$1" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
e, i, c = r["event_append"], r["inclusion_proof"], r["consistency_proof"]
print("{:,} entries: event appends {:,.0f}/s from {} writers (median {:.2f} ms, p99 {:.2f} ms; the sequencer integrates {:,.0f}/s of its time, batches up to {:,}; fill {:,.0f}/s in transactions of 1000); "
      "inclusion proof median {:.2f} ms, p99 {:.2f} ms; consistency proof median {:.2f} ms, p99 {:.2f} ms; "
      "every entry hashed again in {:.1f} s".format(
          r["size"], r["event_appends_per_s"], r["writers"], e["median_ms"], e["p99_ms"],
          r["integrated_per_s_of_sequencer_time"], r["largest_batch"], r["fill_appends_per_s"],
          i["median_ms"], i["p99_ms"], c["median_ms"], c["p99_ms"], r["rehash_all_s"]))
PY
}

echo "SQLite: filling to $entries entries"
sqlite=$("$bin" "$work/log.db" "$entries" "$single" "$proofs" "$writers")
echo "$sqlite"
line=$(summary "$sqlite")
record "transparency log, SQLite" "$line" "appends and proofs measured at 1,000,000 entries"

pg_db="bench_log_$$"
psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
echo "PostgreSQL: filling to $entries entries"
postgres=$("$bin" "${pg_admin%/*}/$pg_db" "$entries" "$single" "$proofs" "$writers")
echo "$postgres"
line=$(summary "$postgres")
record "transparency log, PostgreSQL" "$line" "appends and proofs measured at 1,000,000 entries"
