#!/usr/bin/env bash
# The device poll at fleet scale: 100,000 enrolled devices, 128 concurrent
# connections, each request with another device's token, against nginx answering
# the same bytes from a static file, runs interleaved; plus the exposure of one
# advisory over the whole fleet on SQLite and on PostgreSQL, and the server's peak
# memory. Loopback only; every load run is bounded in time.
#
#   bench/poll.sh [DEVICES] [SECONDS] [ROUNDS]      (defaults: 100000, 15 s, 2)
#
# With BENCH_ROLLOUT=1 the rounds are run again with a five-wave rollout of the fix
# started (its first wave, 1 %, open): the poll that decides per device whether a
# rollout holds its update back, against the same server without one; then once more
# after the rollout is advanced to its finish, which tells what later rounds lose by
# coming later.
#
# Needs: nginx, wrk, curl, python3, cargo (it builds the release binary itself;
# CARGO_TARGET_DIR is honoured) and, for the PostgreSQL exposure timing, a server at
# BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test) where a
# database can be created. Appends a row to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-100000}
seconds=${2:-15}
rounds=${3:-2}
. bench/lib.sh
build_release --bin patchwarden
bin="$target/release/patchwarden"
for tool in nginx wrk curl python3; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

work=$(mktemp -d)
pw_pid=""; nginx_started=""; pg_db=""
cleanup() {
  [ -n "$pw_pid" ] && kill "$pw_pid" 2>/dev/null || true
  [ -n "$nginx_started" ] && nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
  [ -n "$pg_db" ] && psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
screenos_fleet "$devices" > "$work/fleet.jsonl"

# Starts a server on database $1 and sets it up: accounts, product, the emergency
# advisory, the fix, and the fleet. Leaves pw_pid, base, vendor, advisory set.
start_server() {
  local database=$1 dir=$2
  export PATCHWARDEN_DATABASE_URL="$database" PATCHWARDEN_DATA_DIR="$dir/data" PATCHWARDEN_KEYS_DIR="$work/keys" \
    PATCHWARDEN_BIND="127.0.0.1:$pw_port" PATCHWARDEN_LOG_LEVEL=warn PATCHWARDEN_WORKERS=2
  echo 'benchmark vendor password' | "$bin" user add --email vendor@bench.example --role vendor-admin --password-stdin >/dev/null
  "$bin" customer add --slug acme --name Acme >/dev/null
  vendor=$("$bin" token create --email vendor@bench.example 2>/dev/null)
  "$bin" serve 2>"$dir/serve.log" &
  pw_pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$pw_port/healthz" >/dev/null && break; sleep 0.1; done
  base="http://127.0.0.1:$pw_port/api/v1"
  api() { curl -sf -H "Authorization: Bearer $vendor" -H 'content-type: application/json' "$@"; }
  api -X POST "$base/products" -d '{"slug":"screenos","name":"ScreenOS","version_scheme":"vendor"}' >/dev/null
  api -X PUT "$base/customers/acme/entitlements" -d '{"products":["screenos"]}' >/dev/null
  local draft
  draft=$(api -X POST "$base/advisories" -d '{"title":"Unauthorized code in ScreenOS","summary":"Backdoor.",
    "cvss_v3":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","emergency":true,"cves":["CVE-2015-7755"],
    "fix_deadline":"2026-01-01T00:00:00Z",
    "affected":[{"product":"screenos","ranges":[{"introduced":"6.2.0r15","fixed":"6.2.0r19"},{"introduced":"6.3.0r12","fixed":"6.3.0r21"}]}]}' | json '["id"]')
  advisory=$(api -X POST "$base/advisories/$draft/publish" -d '{"change_summary":"Initial"}' | json '["id"]')
  head -c 65536 /dev/urandom > "$dir/fix.bin"
  local sha patch
  sha=$(sha256sum "$dir/fix.bin" | cut -d' ' -f1)
  patch=$(api -X POST "$base/patches" -d "{\"product\":\"screenos\",\"version\":\"6.3.0r21\",\"platform\":\"ssg-500\",
    \"applies_to\":[{\"introduced\":\"6.3.0r12\",\"fixed\":\"6.3.0r21\"}],\"fixes\":[\"$advisory\"],
    \"filename\":\"screenos-6.3.0r21.bin\",\"sha256\":\"$sha\"}" | json '["id"]')
  curl -sf -X PUT -H "Authorization: Bearer $vendor" --data-binary "@$dir/fix.bin" "$base/patches/$patch/file" >/dev/null
  api -X POST "$base/patches/$patch/publish" >/dev/null
  local started
  started=$(date +%s.%N)
  "$bin" device import --customer acme --file "$work/fleet.jsonl" 2>/dev/null > "$dir/tokens.jsonl"
  import_seconds=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
  # The running server learns the fleet through the change counter.
  loaded() { [ "$(curl -sf "http://127.0.0.1:$pw_port/metrics" | awk '/^patchwarden_fleet_devices / {print $2}')" = "$devices" ]; }
  for _ in $(seq 1 600); do loaded && break; sleep 0.1; done
  loaded || { echo "the server did not load the fleet:" >&2; curl -sf "http://127.0.0.1:$pw_port/metrics" | grep fleet_devices >&2
         tail -5 "$dir/serve.log" >&2; exit 1; }
  loaded_rss=$(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$pw_pid/status")
  loaded_parts=$(fleet_memory)
  echo "server RSS with the fleet loaded, before any poll: $loaded_rss (the fleet's own: $loaded_parts)"
}

# What the fleet's own structures take now, by part, from the server's /metrics.
fleet_memory() {
  curl -sf "http://127.0.0.1:$pw_port/metrics" | awk '/^patchwarden_fleet_memory_bytes/ {
      part = $1; sub(/.*part="/, "", part); sub(/".*/, "", part); gsub(/_/, " ", part)
      printf "%s%s %.1f MiB", (n++ ? ", " : ""), part, $2 / 1048576 }'
}

# Median of `runs` timings of the exposure of the advisory over the whole fleet.
exposure_ms() {
  for _ in 1 2 3 4 5 6 7; do
    curl -sf -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $vendor" "$base/advisories/$advisory/exposure"
  done | sort -n | awk '{ t[NR] = $1 } END { printf "%.1f", t[int((NR + 1) / 2)] * 1000 }'
}

stop_server() { kill "$pw_pid"; wait "$pw_pid" 2>/dev/null || true; pw_pid=""; }

pw_port=$(free_port); nginx_port=$(free_port)
mkdir -p "$work/sqlite"
start_server "$work/sqlite/patchwarden.db" "$work/sqlite"
echo "devices: $devices (import ${import_seconds} s on SQLite), $(nproc) cores, ${seconds} s per run, 128 connections"
sqlite_exposure=$(exposure_ms)
sqlite_loaded_rss=$loaded_rss
sqlite_loaded_parts=$loaded_parts
sqlite_import=$import_seconds
counts=$(curl -sf -H "Authorization: Bearer $vendor" "$base/advisories/$advisory/exposure" | python3 -c '
import json, sys
print("affected %(affected)s, fixed %(fixed)s, unaffected %(unaffected)s, unknown %(unknown)s, overdue %(overdue)s" % json.load(sys.stdin))')
echo "exposure over the fleet, SQLite: ${sqlite_exposure} ms (median of 7)"

# The tokens for wrk, and one poll answer for nginx to serve.
python3 -c '
import json, sys
for line in open(sys.argv[1]): print(json.loads(line)["token"])' "$work/sqlite/tokens.jsonl" > "$work/tokens.txt"
one=$(head -1 "$work/tokens.txt")
mkdir -p "$work/www/api/v1/device" "$work/nginx/logs"
curl -sf -H "Authorization: Bearer $one" -H 'content-type: application/json' -d '{"version":"6.3.0r20"}' \
  "$base/device/poll" > "$work/www/api/v1/device/poll"
size=$(stat -c %s "$work/www/api/v1/device/poll")
grep -q '"patch_id"' "$work/www/api/v1/device/poll" || { echo "the poll did not offer the fix" >&2; exit 1; }

cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
    default_type application/json;
    # The static module refuses POST; answer it with the file, as for GET.
    error_page 405 =200 \$uri;
  }
}
CONF
chmod -R a+rX "$work"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
nginx_started=1
got=$(curl -sf -X POST -d '{"version":"6.3.0r20"}' "http://127.0.0.1:$nginx_port/api/v1/device/poll" | wc -c)
[ "$got" = "$size" ] || { echo "nginx does not answer the poll body ($got of $size bytes)" >&2; exit 1; }

# Every request takes the next token (each wrk thread walks its own half).
cat > "$work/poll.lua" <<LUA
local tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
local n = 0
function setup(thread) n = n + 1; thread:set("start", n) end
function init(args) i = start * 7919 end
function request()
  i = i % #tokens + 1
  return wrk.format("POST", "/api/v1/device/poll",
    { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" },
    '{"version":"6.3.0r20"}')
end
LUA

# requests/s and p99 in ms of one wrk run against $1.
measure() {
  wrk -t2 -c128 -d"${seconds}s" --latency -s "$work/poll.lua" "$1" | awk '
    /Requests\/sec/ { rps = $2 }
    / 99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+/, "", v);
             if (u == "us") v /= 1000; else if (u == "s") v *= 1000; p99 = v }
    / Non-2xx/ { bad = $5 }
    END { if (bad != "") { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
          printf "%.0f %.2f\n", rps, p99 }'
}
# Waits until the server has written every sighting its run queued (the flush runs
# below the polls' priority, so a burst leaves a backlog), so that nginx is measured
# on an idle machine; prints the seconds it took.
drained() {
  local started queued
  started=$(date +%s.%N)
  for _ in $(seq 1 1200); do
    queued=$(curl -sf "http://127.0.0.1:$pw_port/metrics" | awk '/^patchwarden_fleet_observations_queued / {print $2}')
    [ "$queued" = 0 ] && break
    sleep 0.5
  done
  [ "$queued" = 0 ] || { echo "the server did not write its sightings within 600 s ($queued left)" >&2; exit 1; }
  python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')"
}
rounds_summary=""
for round in $(seq 1 "$rounds"); do
  read -r pw_rps pw_p99 < <(measure "http://127.0.0.1:$pw_port")
  rss=$(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$pw_pid/status")
  echo "round $round: server RSS after the run $rss (the fleet's own: $(fleet_memory))"
  [ "$round" = 1 ] && first_round_parts="RSS $rss, the fleet's own: $(fleet_memory)"
  drain=$(drained)
  read -r nx_rps nx_p99 < <(measure "http://127.0.0.1:$nginx_port")
  printf 'round %s: patchwarden %6s req/s p99 %5s ms (sightings written %s s after)   nginx %6s req/s p99 %5s ms   ratio %s\n' "$round" \
    "$pw_rps" "$pw_p99" "$drain" "$nx_rps" "$nx_p99" "$(ratio "$pw_rps" "$nx_rps")"
  rounds_summary="$rounds_summary${rounds_summary:+; }$pw_rps req/s p99 $pw_p99 ms (written ${drain} s after) vs nginx $nx_rps req/s p99 $nx_p99 ms ($(ratio "$pw_rps" "$nx_rps"))"
done
rollout_summary=""
after_summary=""
# Runs the rounds again, printing each as "$1, round N" on stderr; prints their summary.
labelled_rounds() {
  local summary="" round rps p99 nx_rps nx_p99
  for round in $(seq 1 "$rounds"); do
    read -r rps p99 < <(measure "http://127.0.0.1:$pw_port")
    drained >/dev/null
    read -r nx_rps nx_p99 < <(measure "http://127.0.0.1:$nginx_port")
    printf '%s, round %s: patchwarden %6s req/s p99 %5s ms   nginx %6s req/s p99 %5s ms   ratio %s\n' "$1" "$round" \
      "$rps" "$p99" "$nx_rps" "$nx_p99" "$(ratio "$rps" "$nx_rps")" >&2
    summary="$summary${summary:+; }$rps req/s p99 $p99 ms vs nginx $nx_rps req/s ($(ratio "$rps" "$nx_rps"))"
  done
  echo "$summary"
}
if [ "${BENCH_ROLLOUT:-0}" = 1 ]; then
  # The same load with a rollout of the fix in force: five waves, the first (1 %)
  # open, so most answers are held back with the rollout's log entry.
  wave() { echo "{\"percent\":$1,\"success_threshold\":90,\"error_threshold\":5,\"min_reports\":50,\"install_timeout\":\"2h\"}"; }
  patch_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["update"]["patch_id"])' "$work/www/api/v1/device/poll")
  rollout=$(curl -sf -H "Authorization: Bearer $vendor" -H 'content-type: application/json' "$base/patches/$patch_id/rollouts" \
    -d "{\"waves\":[$(wave 1),$(wave 5),$(wave 25),$(wave 50),$(wave 100)]}" | json '["id"]')
  curl -sf -X POST -H "Authorization: Bearer $vendor" "$base/rollouts/$rollout/start" | json '["waves"][0]["counts"]["members"]' \
    | xargs -I{} echo "rollout $rollout started: {} devices in its first wave of five"
  rollout_summary=$(labelled_rounds "with the rollout")
  # The rounds once more after the rollout finished (every device offered the fix
  # again): what the later rounds of a run lose by coming later, rollout or not.
  for _ in 1 2 3 4 5; do
    curl -sf -X POST -H "Authorization: Bearer $vendor" "$base/rollouts/$rollout/advance" >/dev/null
  done
  after_summary=$(labelled_rounds "after the rollout finished")
fi
echo "response: $size bytes; $counts"
metrics=$(curl -sf "http://127.0.0.1:$pw_port/metrics")
echo "observations dropped: $(echo "$metrics" | awk '/^patchwarden_fleet_observations_dropped_total/ {print $2}'),\
 queued now: $(echo "$metrics" | awk '/^patchwarden_fleet_observations_queued/ {print $2}')"
peak=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$pw_pid/status")
echo "patchwarden peak RSS: $peak"
stop_server

if command -v psql >/dev/null && psql -q "$pg_admin" -c 'SELECT 1' >/dev/null 2>&1; then
  pg_db="pw_bench_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_url=$(python3 -c "import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path='/$pg_db').geturl())" "$pg_admin")
  mkdir -p "$work/pg"
  start_server "$pg_url" "$work/pg"
  pg_exposure=$(exposure_ms)
  echo "exposure over the fleet, PostgreSQL: $pg_exposure ms (median of 7; import ${import_seconds} s)"
  stop_server
  record "poll and exposure, $devices devices" \
    "poll: $rounds_summary${rollout_summary:+; with a 5-wave rollout in force: $rollout_summary}${after_summary:+; after it finished: $after_summary}; exposure SQLite $sqlite_exposure ms, PostgreSQL $pg_exposure ms; import SQLite $sqlite_import s, PostgreSQL $import_seconds s; server RSS $sqlite_loaded_rss with the fleet loaded ($sqlite_loaded_parts), after the first round $first_round_parts, peak $peak" \
    "poll ≥ 1.3 of nginx, p99 ≤ 10 ms; exposure ≤ 50 ms; at 1M devices: ≤ 200 MiB loaded, ≤ 300 MiB peak, PostgreSQL import ≤ 60 s"
else
  echo "PostgreSQL at $pg_admin not reachable: exposure timed on SQLite only" >&2
  exit 1
fi
