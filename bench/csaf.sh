#!/usr/bin/env bash
# The CSAF 2.0 provider as aggregators poll it: with ADVISORIES published advisories
# (SQLite), wrk at 64 connections against changes.csv, index.txt, the ROLIE feed,
# one document and its OpenPGP signature, each run interleaved with nginx serving the
# same bytes from static files. Loopback only; every load run is bounded in time.
#
#   bench/csaf.sh [ADVISORIES] [SECONDS]      (defaults: 300, 10 s)
#
# Needs: nginx, wrk, curl, python3, cargo (it builds the release binary itself;
# CARGO_TARGET_DIR is honoured). Appends a row to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
advisories=${1:-300}
seconds=${2:-10}
. bench/lib.sh
build_release --bin patchwarden
bin="$target/release/patchwarden"
for tool in nginx wrk curl python3; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done

work=$(mktemp -d)
pw_pid=""; nginx_started=""
cleanup() {
  [ -n "$pw_pid" ] && kill "$pw_pid" 2>/dev/null || true
  [ -n "$nginx_started" ] && nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
pw_port=$(free_port)
nginx_port=$(free_port)

mkdir -p "$work/data"
export PATCHWARDEN_DATABASE_URL="$work/data/patchwarden.db" PATCHWARDEN_DATA_DIR="$work/data" \
  PATCHWARDEN_KEYS_DIR="$work/keys" PATCHWARDEN_BIND="127.0.0.1:$pw_port" PATCHWARDEN_LOG_LEVEL=warn \
  PATCHWARDEN_WORKERS=2 PATCHWARDEN_PUBLIC_URL="http://127.0.0.1:$pw_port"
echo 'benchmark vendor password' | "$bin" user add --email vendor@bench.example --role vendor-admin --password-stdin >/dev/null
vendor=$("$bin" token create --email vendor@bench.example 2>/dev/null)
"$bin" serve 2>"$work/serve.log" &
pw_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$pw_port/healthz" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$pw_port"
api() { curl -sf -H "Authorization: Bearer $vendor" -H 'content-type: application/json' "$@"; }
api -X POST "$base/api/v1/products" -d '{"slug":"screenos","name":"ScreenOS","version_scheme":"vendor"}' >/dev/null

echo "publishing $advisories advisories"
for i in $(seq 1 "$advisories"); do
  draft=$(api -X POST "$base/api/v1/advisories" -d "{\"title\":\"ScreenOS finding $i\",\"summary\":\"Finding $i.\",
    \"cvss_v3\":\"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\",\"cves\":[\"CVE-2026-$((10000 + i))\"],
    \"affected\":[{\"product\":\"screenos\",\"ranges\":[{\"introduced\":\"6.3.0r12\",\"fixed\":\"6.3.0r21\"}]}]}" | json '["id"]')
  api -X POST "$base/api/v1/advisories/$draft/publish" -d '{"change_summary":"Initial"}' >/dev/null
done

# The same bytes for nginx, at the same paths.
paths=(.well-known/csaf/white/changes.csv .well-known/csaf/white/index.txt .well-known/csaf/feed-tlp-white.json)
document=".well-known/csaf/white/$(head -1 < <(curl -sf "$base/.well-known/csaf/white/index.txt"))"
paths+=("$document" "$document.asc")
for path in "${paths[@]}"; do
  mkdir -p "$work/www/$(dirname "$path")"
  curl -sf "$base/$path" > "$work/www/$path"
done
lines=$(wc -l < "$work/www/.well-known/csaf/white/index.txt")
[ "$lines" = "$advisories" ] || { echo "index.txt lists $lines documents, not $advisories" >&2; exit 1; }

mkdir -p "$work/nginx/logs"
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
    default_type application/octet-stream;
  }
}
CONF
chmod -R a+rX "$work"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
nginx_started=1
for path in "${paths[@]}"; do
  cmp -s <(curl -sf "http://127.0.0.1:$nginx_port/$path") "$work/www/$path" || { echo "nginx does not serve $path" >&2; exit 1; }
done

# requests/s and p99 in ms of one wrk run against the URL $1.
measure() {
  wrk -t2 -c64 -d"${seconds}s" --latency "$1" | awk '
    /Requests\/sec/ { rps = $2 }
    / 99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+/, "", v);
             if (u == "us") v /= 1000; else if (u == "s") v *= 1000; p99 = v }
    / Non-2xx/ { bad = $5 }
    END { if (bad != "") { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
          printf "%.0f %.2f\n", rps, p99 }'
}
summary=""
for path in "${paths[@]}"; do
  size=$(stat -c %s "$work/www/$path")
  read -r pw_rps pw_p99 < <(measure "http://127.0.0.1:$pw_port/$path")
  read -r nx_rps nx_p99 < <(measure "http://127.0.0.1:$nginx_port/$path")
  name=$(basename "$path")
  case "$path" in "$document") name="document" ;; "$document.asc") name="document .asc" ;; esac
  printf '%-22s %8s B  patchwarden %6s req/s p99 %6s ms   nginx %6s req/s p99 %6s ms   ratio %s\n' "$name" "$size" \
    "$pw_rps" "$pw_p99" "$nx_rps" "$nx_p99" "$(ratio "$pw_rps" "$nx_rps")"
  summary="$summary${summary:+; }$name ($size B): $pw_rps req/s p99 $pw_p99 ms vs nginx $nx_rps req/s ($(ratio "$pw_rps" "$nx_rps"))"
done
record "csaf.sh $advisories advisories, ${seconds}s a run, 64 connections, SQLite" "$summary" "none set; nginx serving the same bytes is the reference"
