#!/usr/bin/env bash
# Scheduled pulls at fleet scale: DEVICES devices (default 10,000) whose pull URLs
# point at simulated devices (bench/responder.rs) spread over 250 loopback
# addresses, all on the schedule `*/30 * * * * *`, so that every 30 s the whole
# fleet falls due at once. For each of BURSTS bursts (default 3): how long from the
# first pull to the last, the rate, how long after the due second the last pull
# was answered, and the server's memory after it — which must stay flat however
# many pulls have been made. SQLite by default; BENCH_DATABASE_URL=postgres://…
# for PostgreSQL (a database it may create and drop). Loopback only.
#
#   bench/pull.sh [DEVICES] [BURSTS]
#
# Needs: curl, python3 and cargo: it builds the server and the responder in release
# mode (CARGO_TARGET_DIR is honoured). Appends a row to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-10000}
bursts=${2:-3}
addresses=250
. bench/lib.sh
build_release --bin patchwarden --example pull-responder
bin="$target/release/patchwarden"
responder="$target/release/examples/pull-responder"
for tool in curl python3; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
# Many connections at once on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
pw_pid=""; responder_pid=""; pg_db=""; pg_admin=""
cleanup() {
  [ -n "$pw_pid" ] && kill "$pw_pid" 2>/dev/null || true
  [ -n "$responder_pid" ] && kill "$responder_pid" 2>/dev/null || true
  [ -n "$pg_db" ] && psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

database="$work/patchwarden.db"
backend=SQLite
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
  pg_admin=$BENCH_DATABASE_URL
  pg_db="pw_pull_bench_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
  database=$(python3 -c "import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path='/$pg_db').geturl())" "$pg_admin")
  backend=PostgreSQL
fi

port=$(free_port); pw_port=$(free_port)
"$responder" "$port" 127.0.1.1 "$addresses" &
responder_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.1.1:$port/stats" >/dev/null && break; sleep 0.1; done

export PATCHWARDEN_DATABASE_URL="$database" PATCHWARDEN_DATA_DIR="$work/data" PATCHWARDEN_KEYS_DIR="$work/keys" \
  PATCHWARDEN_BIND="127.0.0.1:$pw_port" PATCHWARDEN_LOG_LEVEL=warn PATCHWARDEN_WORKERS=1 \
  PATCHWARDEN_PULL_CONCURRENCY=${PULL_CONCURRENCY:-512} PATCHWARDEN_PULL_PER_HOST=4 \
  PATCHWARDEN_PULL_CONCURRENCY_PER_CUSTOMER=${PULL_CONCURRENCY:-512}
# The simulated devices answer on loopback addresses (127.0.1.x), which pulls do
# not reach by default: the default less loopback.
export PATCHWARDEN_OUTBOUND_DENY="$deny_but_loopback"
echo 'benchmark vendor password' | "$bin" user add --email vendor@bench.example --role vendor-admin --password-stdin >/dev/null
"$bin" customer add --slug acme --name Acme >/dev/null
vendor=$("$bin" token create --email vendor@bench.example 2>/dev/null)
"$bin" serve 2>"$work/serve.log" &
pw_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$pw_port/healthz" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$pw_port/api/v1"
api() { curl -sf -H "Authorization: Bearer $vendor" -H 'content-type: application/json' "$@"; }
api -X POST "$base/products" -d '{"slug":"screenos","name":"ScreenOS","version_scheme":"vendor"}' >/dev/null
api -X PUT "$base/customers/acme/entitlements" -d '{"products":["screenos"]}' >/dev/null
api -X POST "$base/products/screenos/images" \
  -d '{"version":"6.3.0r20","image_sha256":"5f2b5a51e7c5cd4f8a4f0e6c1fb7a43f0e1c0a2a9b6b2e5f0d6c3a8e4b1f7c2d"}' >/dev/null

python3 - "$devices" "$port" "$addresses" > "$work/fleet.jsonl" <<'PY'
import json, sys
n, port, addresses = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    host = f"127.0.1.{i % addresses + 1}"
    print(json.dumps({"name": f"fw-{i:06d}", "product": "screenos", "platform": "ssg-500", "version": "6.3.0r20",
                      "pull_url": f"http://{host}:{port}/d/{i}", "pull_schedule": "*/30 * * * * *"}))
PY
"$bin" device import --customer acme --file "$work/fleet.jsonl" >/dev/null 2>&1

echo "$backend, $devices devices on $addresses addresses, $(nproc) cores, pull_concurrency ${PULL_CONCURRENCY:-512}, pull_per_host 4"
python3 - "$devices" "$bursts" "http://127.0.1.1:$port/stats" "$pw_pid" <<'PY' | tee "$work/bursts.txt"
import json, sys, time, urllib.request
devices, bursts, stats, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def served():
    return json.load(urllib.request.urlopen(stats))["served"]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
start_count = served()
for burst in range(1, bursts + 1):
    goal = start_count + burst * devices
    before = served()
    while served() == before:
        time.sleep(0.02)
    first = time.time()
    # The burst fell due at the last whole half minute.
    due = first - (first % 30)
    deadline = first + 120
    while served() < goal:
        if time.time() > deadline:
            sys.exit(f"burst {burst}: only {served() - before} of {devices} pulls in 120 s")
        time.sleep(0.02)
    last = time.time()
    took = last - first
    print(f"burst {burst}: {devices} pulls in {took:.2f} s = {devices / took:,.0f} pulls/s; "
          f"last answered {last - due:.2f} s after the due second; server RSS {rss():.0f} MiB")
extra = served() - start_count - bursts * devices
print(f"pulls beyond one per device per burst: {extra}")
PY
failed=$(grep -c 'job failed' "$work/serve.log" || true)
echo "job failures logged: $failed"
rates=$(sed -n 's/.* = \([0-9,]*\) pulls\/s.*server RSS \([0-9]*\) MiB/\1\/s (\2 MiB)/p' "$work/bursts.txt" | paste -sd ' ' -)
record "scheduled pulls, $devices devices, $backend" "bursts: $rates; $(tail -1 "$work/bursts.txt"); job failures $failed" \
  "≥ 5,000 devices/s; memory flat across bursts"
