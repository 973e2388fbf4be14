#!/usr/bin/env bash
# The transparency log at 1,000,000 entries, on SQLite and on PostgreSQL: appends
# per second as events make them (one transaction each, after a fill of a thousand
# per transaction), inclusion and consistency proof generation at that size, and
# an auditor's pass over every entry. Runs the service code directly (the
# `log-bench` example), no HTTP in between.
#
#   bench/log.sh [ENTRIES] [EVENT_APPENDS] [PROOFS]     (defaults: 1000000, 5000, 2000)
#
# Needs: cargo (release build; CARGO_TARGET_DIR is honoured), psql and a PostgreSQL
# server at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# where a database can be created. Appends two rows to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${1:-1000000}
single=${2:-5000}
proofs=${3:-2000}
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
print("{:,} entries: event appends {:,.0f}/s (median {:.2f} ms, p99 {:.2f} ms; fill {:,.0f}/s in transactions of 1000); "
      "inclusion proof median {:.2f} ms, p99 {:.2f} ms; consistency proof median {:.2f} ms, p99 {:.2f} ms; "
      "every entry hashed again in {:.1f} s".format(
          r["size"], r["event_appends_per_s"], e["median_ms"], e["p99_ms"], r["fill_appends_per_s"],
          i["median_ms"], i["p99_ms"], c["median_ms"], c["p99_ms"], r["rehash_all_s"]))
PY
}

echo "SQLite: filling to $entries entries"
sqlite=$("$bin" "$work/log.db" "$entries" "$single" "$proofs")
echo "$sqlite"
line=$(summary "$sqlite")
record "transparency log, SQLite" "$line" "appends and proofs measured at 1,000,000 entries"

pg_db="bench_log_$$"
psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
echo "PostgreSQL: filling to $entries entries"
postgres=$("$bin" "${pg_admin%/*}/$pg_db" "$entries" "$single" "$proofs")
echo "$postgres"
line=$(summary "$postgres")
record "transparency log, PostgreSQL" "$line" "appends and proofs measured at 1,000,000 entries"
