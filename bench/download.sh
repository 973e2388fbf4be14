#!/usr/bin/env bash
# Patch download throughput: patchwarden (release build, local storage) against nginx
# serving the same file from disk, single stream, 32 and 1,000 concurrent, plus the
# server's peak memory. Loopback only; every load run is bounded in time.
#
#   bench/download.sh [SIZE_MIB] [SECONDS]      (defaults: 256 MiB, 20 s per run)
#
# Needs: nginx, wrk, curl, python3 and cargo; builds the release binary itself
# (CARGO_TARGET_DIR is honoured) and appends a row to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# A thousand connections to each server, plus their files.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
size_mib=${1:-256}
seconds=${2:-20}
. bench/lib.sh
build_release --bin patchwarden
bin="$target/release/patchwarden"
for tool in nginx wrk curl; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done

work=$(mktemp -d)
pw_pid=""; pw2_pid=""; nginx_started=""
cleanup() {
  [ -n "$pw_pid" ] && kill "$pw_pid" 2>/dev/null || true
  [ -n "$pw2_pid" ] && kill "$pw2_pid" 2>/dev/null || true
  [ -n "$nginx_started" ] && nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

pw_port=$(free_port); nginx_port=$(free_port); pw2_port=$(free_port); front_port=$(free_port)

head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/patch.bin"
sha=$(sha256sum "$work/patch.bin" | cut -d' ' -f1)

export PATCHWARDEN_DATA_DIR="$work/data" PATCHWARDEN_KEYS_DIR="$work/keys" PATCHWARDEN_BIND="127.0.0.1:$pw_port" \
  PATCHWARDEN_LOG_LEVEL=warn PATCHWARDEN_WORKERS=2 PATCHWARDEN_MAX_PATCH_BYTES=$((8 * 1024 * 1024 * 1024))
echo 'benchmark vendor password' | "$bin" user add --email vendor@bench.example --role vendor-admin --password-stdin >/dev/null
"$bin" customer add --slug acme --name Acme >/dev/null
echo 'benchmark customer password' | "$bin" user add --email it@acme.example --role customer-admin --customer acme --password-stdin >/dev/null
vendor=$("$bin" token create --email vendor@bench.example 2>/dev/null)
customer=$("$bin" token create --email it@acme.example 2>/dev/null)

"$bin" serve 2>"$work/serve.log" &
pw_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$pw_port/healthz" >/dev/null && break; sleep 0.1; done
api() { curl -sf -H "Authorization: Bearer $vendor" -H 'content-type: application/json' "$@"; }
base="http://127.0.0.1:$pw_port/api/v1"
api -X POST "$base/products" -d '{"slug":"screenos","name":"ScreenOS","version_scheme":"vendor"}' >/dev/null
api -X PUT "$base/customers/acme/entitlements" -d '{"products":["screenos"]}' >/dev/null
id=$(api -X POST "$base/patches" -d "{\"product\":\"screenos\",\"version\":\"6.3.0r21\",\"filename\":\"patch.bin\",\"sha256\":\"$sha\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -sf -X PUT -H "Authorization: Bearer $vendor" --data-binary "@$work/patch.bin" "$base/patches/$id/file" >/dev/null
api -X POST "$base/patches/$id/publish" >/dev/null
url="$base/patches/$id/download"

# A 2 GiB upload streams to storage while hashed: the server's peak memory must not
# grow with the file.
peak() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pw_pid/status"; }
before=$(peak)
truncate -s 2G "$work/big.bin"
big_sha=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
big=$(api -X POST "$base/patches" -d "{\"product\":\"screenos\",\"version\":\"6.3.0r22\",\"filename\":\"big.bin\",\"sha256\":\"$big_sha\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
started=$(date +%s.%N)
curl -sf -X PUT -H "Authorization: Bearer $vendor" -H 'Expect:' -T "$work/big.bin" "$base/patches/$big/file" >/dev/null
upload_seconds=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
upload_line="2 GiB upload: ${upload_seconds} s; server peak RSS ${before} MiB before, $(peak) MiB after"
# The same file through the resumable upload: one PATCH with the whole body, so the
# server hashes as it writes and the cost over PUT is the offset bookkeeping.
resumable=$(api -X POST "$base/patches" -d "{\"product\":\"screenos\",\"version\":\"6.3.0r23\",\"filename\":\"big.bin\",\"sha256\":\"$big_sha\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api -X POST "$base/patches/$resumable/upload" -d "{\"size\": $((2 * 1024 * 1024 * 1024))}" >/dev/null
started=$(date +%s.%N)
curl -sf -X PATCH -H "Authorization: Bearer $vendor" -H 'Expect:' -H 'Upload-Offset: 0' \
  -H 'Content-Type: application/offset+octet-stream' -T "$work/big.bin" "$base/patches/$resumable/upload" >/dev/null
resumable_seconds=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
rm -f "$work/big.bin"
upload_line="$upload_line
2 GiB resumable upload (one PATCH): ${resumable_seconds} s; server peak RSS $(peak) MiB after"
got=$(curl -sf -H "Authorization: Bearer $customer" "$url" | sha256sum | cut -d' ' -f1)
[ "$got" = "$sha" ] || { echo "download does not match the upload" >&2; exit 1; }

mkdir -p "$work/nginx/logs" "$work/www"
cp "$work/patch.bin" "$work/www/patch.bin"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
  # patchwarden behind nginx with download offload: patchwarden authorises, nginx sends.
  server {
    listen 127.0.0.1:$front_port;
    location /_patch_files/ { internal; alias $work/data/patches/; }
    location / { proxy_pass http://127.0.0.1:$pw2_port; }
  }
}
CONF
# A second instance on the same data answers downloads with X-Accel-Redirect.
PATCHWARDEN_BIND="127.0.0.1:$pw2_port" PATCHWARDEN_DOWNLOAD_OFFLOAD_PREFIX=/_patch_files/ "$bin" serve 2>"$work/serve2.log" &
pw2_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$pw2_port/healthz" >/dev/null && break; sleep 0.1; done

# nginx workers run unprivileged: let them read the files.
chmod 755 "$work" "$work/www"
chmod 644 "$work/www/patch.bin"
chmod -R a+rX "$work/data/patches"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
nginx_started=1
got=$(curl -sf "http://127.0.0.1:$nginx_port/patch.bin" | sha256sum | cut -d' ' -f1)
[ "$got" = "$sha" ] || { echo "nginx does not serve the file" >&2; exit 1; }
front_url="http://127.0.0.1:$front_port/api/v1/patches/$id/download"
got=$(curl -sf -H "Authorization: Bearer $customer" "$front_url" | sha256sum | cut -d' ' -f1)
[ "$got" = "$sha" ] || { echo "the offloaded download does not match" >&2; exit 1; }

# Transfer/sec from wrk, in MiB/s.
rate() {
  wrk "$@" | awk '/Transfer\/sec/ { v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
    if (u=="GB") n*=1024; else if (u=="KB") n/=1024; printf "%.0f", n }'
}
summary=""
run() {
  local label=$1 threads=$2 conns=$3 target=$4
  local pw nx
  pw=$(rate -t"$threads" -c"$conns" -d"${seconds}s" -H "Authorization: Bearer $customer" "$target")
  nx=$(rate -t"$threads" -c"$conns" -d"${seconds}s" "http://127.0.0.1:$nginx_port/patch.bin")
  printf '%-22s patchwarden %6s MiB/s   nginx %6s MiB/s   ratio %s\n' "$label" "$pw" "$nx" "$(ratio "$pw" "$nx")"
  summary="$summary${summary:+; }$label $pw vs $nx MiB/s ($(ratio "$pw" "$nx"))"
}
echo "$upload_line"
echo "file: ${size_mib} MiB, ${seconds} s per run, $(nproc) cores"
run "single stream" 1 1 "$url"
run "32 concurrent" 2 32 "$url"
run "single, offloaded" 1 1 "$front_url"
run "32 conc., offloaded" 2 32 "$front_url"
peak=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$pw_pid/status)
echo "patchwarden peak RSS: $peak"
# A thousand customers fetching the fix at once: the server's memory must not grow
# with the number of downloads in flight. Its highest RSS is sampled during the run
# (VmHWM also holds the uploads above).
sample_rss() {
  local most=0 now
  while kill -0 "$pw_pid" 2>/dev/null; do
    now=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pw_pid/status")
    [ "$now" -gt "$most" ] && most=$now && echo "$most" > "$work/rss_most"
    sleep 0.2
  done
}
echo 0 > "$work/rss_most"
sample_rss &
sampler=$!
run "1000 concurrent" 2 1000 "$url"
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
thousand_rss="$(cat "$work/rss_most") MiB"
echo "patchwarden highest RSS during 1000 concurrent downloads: $thousand_rss"
record "download, ${size_mib} MiB file, vs nginx" "$summary; peak RSS $peak; highest RSS during 1000 concurrent $thousand_rss" \
  "ratio ≥ 1.0 (single), ≥ 0.8 (32 concurrent), ≥ 0.9 and RSS ≤ 100 MiB (1000 concurrent)"
