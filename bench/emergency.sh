#!/usr/bin/env bash
# An emergency publish reaching a polling fleet: DEVICES simulated devices
# (`patchwarden-agent --simulate`, default 10,000, all honest, on 6.3.0r19 and
# 6.3.0r20) enrol and poll a release server (SQLite) every INTERVAL seconds (default
# 30). Then the vendor publishes the emergency advisory and its fix. Measured: from
# the publish to the moment every device has been offered the fix (goal: one poll
# interval + 1 s), and to every device having downloaded, verified and installed it
# and reported so; the server's and the simulator's peak memory, and the server's
# memory sampled in each phase (enrolling, polling, the emergency) with the
# connections open at its highest. The simulated
# devices keep their state under /dev/shm when it exists. Loopback only.
#
#   bench/emergency.sh [DEVICES] [INTERVAL]
#
# Needs: curl, python3 and cargo (it builds the server and the agent in release
# mode; CARGO_TARGET_DIR is honoured). Appends a row to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-10000}
interval=${2:-30}
. bench/lib.sh
build_release --bin patchwarden --bin patchwarden-agent
bin="$target/release/patchwarden"
agent="$target/release/patchwarden-agent"
for tool in curl python3; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
shm=$( [ -d /dev/shm ] && mktemp -d -p /dev/shm || mktemp -d )
pw_pid=""; agent_pid=""; sampler_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$pw_pid" ] && kill "$pw_pid" 2>/dev/null || true
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work" "$shm"
}
trap cleanup EXIT
now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }
pw_port=$(free_port); stats_port=$(free_port)

export PATCHWARDEN_DATABASE_URL="$work/patchwarden.db" PATCHWARDEN_DATA_DIR="$work/data" PATCHWARDEN_KEYS_DIR="$work/keys" \
  PATCHWARDEN_BIND="127.0.0.1:$pw_port" PATCHWARDEN_LOG_LEVEL=warn PATCHWARDEN_WORKERS=2 \
  PATCHWARDEN_POLL_INTERVAL="${interval}s" PATCHWARDEN_EMERGENCY_POLL_INTERVAL=10s \
  PATCHWARDEN_ENROLLMENT_ATTEMPTS_PER_MINUTE=100000 PATCHWARDEN_PUBLIC_URL="http://127.0.0.1:$pw_port" \
  PATCHWARDEN_OUTBOUND_DENY="$deny_but_loopback"
"$bin" customer add --slug acme --name Acme >/dev/null
echo 'benchmark vendor password' | "$bin" user add --email vendor@bench.example --role vendor-admin --password-stdin >/dev/null
echo 'benchmark admin password' | "$bin" user add --email admin@acme.example --role customer-admin --customer acme --password-stdin >/dev/null
vendor=$("$bin" token create --email vendor@bench.example 2>/dev/null)
admin=$("$bin" token create --email admin@acme.example 2>/dev/null)
"$bin" serve 2>"$work/serve.log" &
pw_pid=$!
# The server's memory and its open connections twice a second, by phase, to say
# when the peak comes and what is open then.
echo enrolling > "$work/phase"
( while kill -0 "$pw_pid" 2>/dev/null; do
    printf '%s %s %s\n' "$(cat "$work/phase")" "$(awk '/VmRSS/ {print $2}' "/proc/$pw_pid/status" 2>/dev/null)" \
      "$(ss -Htn state established "( sport = :$pw_port )" 2>/dev/null | wc -l)"
    sleep 0.5
  done > "$work/samples" ) &
sampler_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$pw_port/healthz" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$pw_port/api/v1"
api() { local token=$1; shift; curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
api "$vendor" -X POST "$base/products" -d '{"slug":"screenos","name":"ScreenOS","version_scheme":"vendor"}' >/dev/null
api "$vendor" -X PUT "$base/customers/acme/entitlements" -d '{"products":["screenos"]}' >/dev/null
draft=$(api "$vendor" -X POST "$base/advisories" -d '{"title":"Unauthorized code in ScreenOS","summary":"Backdoor.",
  "cvss_v3":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H","emergency":true,"cves":["CVE-2015-7755"],
  "affected":[{"product":"screenos","ranges":[{"introduced":"6.3.0r12","fixed":"6.3.0r21"}]}]}' | json '["id"]')
head -c 65536 /dev/urandom > "$work/fix.bin"
token=$(api "$admin" -X POST "$base/enrollment-tokens" -d "{\"max_uses\": $devices}" | json '["token"]')
curl -sf "$base/keys" | json '[0]["public_key"]' > "$work/vendor.pub"
cat > "$work/agent.toml" <<TOML
server = "http://127.0.0.1:$pw_port"
product = "screenos"
platform = "ssg-500"
name = "bench"
version = "6.3.0r20"
enrollment_token = "$token"
public_keys = ["$work/vendor.pub"]
state_file = "$shm/state.json"
download_dir = "$shm/downloads"
pull_listen = "127.0.0.1:$stats_port"
TOML
PATCHWARDEN_AGENT_LOG=warn "$agent" --config "$work/agent.toml" --simulate "$devices" --versions 6.3.0r19,6.3.0r20 \
  --start-spread-s "$interval" --work-dir "$shm/fleet" 2>"$work/agent.log" &
agent_pid=$!
stats="http://127.0.0.1:$stats_port/stats"
echo "$devices simulated devices enrolling over ${interval} s; poll interval ${interval} s (each answer shortens it by up to 20 %)"
python3 - "$stats" "$devices" "$interval" <<'PY'
import json, sys, time, urllib.request
stats, devices, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + 10 * interval + 60
while True:
    try:
        s = json.load(urllib.request.urlopen(stats))
        if s["enrolled"] == devices and s["polls"] >= devices:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit(f"the fleet did not enrol and poll: {s if 's' in dir() else 'no statistics'}")
    time.sleep(0.2)
print(f"all {devices} enrolled and polling")
PY
# One more interval, so that every device polls on its own rhythm.
echo polling > "$work/phase"
sleep "$interval"

patch=$(api "$vendor" -X POST "$base/patches" -d "{\"product\":\"screenos\",\"version\":\"6.3.0r21\",
  \"applies_to\":[{\"introduced\":\"6.3.0r12\",\"fixed\":\"6.3.0r21\"}],\"fixes\":[\"$draft\"],
  \"filename\":\"screenos-6.3.0r21.bin\"}" | json '["id"]')
curl -sf -X PUT -H "Authorization: Bearer $vendor" --data-binary "@$work/fix.bin" "$base/patches/$patch/file" >/dev/null
published_ms=$(now_ms)
echo emergency > "$work/phase"
api "$vendor" -X POST "$base/advisories/$draft/publish" -d '{"change_summary":"Emergency publication"}' >/dev/null
api "$vendor" -X POST "$base/patches/$patch/publish" >/dev/null
echo "published the advisory and its fix"
read -r offered installed < <(python3 - "$stats" "$devices" "$interval" "$published_ms" <<'PY'
import json, sys, time, urllib.request
stats, devices, interval, published = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
deadline = time.time() + 6 * interval + 120
offered = None
while True:
    s = json.load(urllib.request.urlopen(stats))
    if offered is None and s["offered"] == devices:
        offered = (s["last_first_offer_ms"] - published) / 1000
        print(f"offered to all {devices} after {offered:.2f} s", file=sys.stderr)
    if s["installed"] == devices:
        installed = (s["last_install_ms"] - published) / 1000
        print(f"installed by all {devices} after {installed:.2f} s", file=sys.stderr)
        print(f"of the polls that brought first offers, one began at most {s['first_offer_late_max_ms']} ms "
              f"after its interval ended, and the slowest took {s['first_offer_poll_max_ms']} ms", file=sys.stderr)
        break
    if time.time() > deadline:
        sys.exit(f"not done in time: {s}")
    time.sleep(0.1)
print(f"{offered:.2f} {installed:.2f}")
PY
)
echo "server latency by route over the whole run (from /metrics):"
route_latency "http://127.0.0.1:$pw_port/metrics" 'device/|log/proof|/download' | sed 's/^/  /'
server_peak=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$pw_pid/status")
agent_peak=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$agent_pid/status")
errors=$(grep -c 'ERROR' "$work/serve.log" || true)
kill "$sampler_pid" 2>/dev/null || true
# Per phase: the highest RSS sampled, the connections open at that sample, the most open.
phases=$(awk '$2 != "" {
    if (!($1 in top) || $2 > top[$1]) { top[$1] = $2; at[$1] = $3 }
    if ($3 > most[$1]) most[$1] = $3
    if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END { for (i = 1; i <= n; i++) { p = order[i]
    printf "%s%s %.0f MiB with %d connections open (most %d)", (i > 1 ? "; " : ""), p, top[p] / 1024, at[p], most[p] } }' "$work/samples")
echo "server RSS sampled by phase: $phases"
echo "server peak RSS $server_peak, simulator peak RSS $agent_peak, server errors logged $errors"
record "emergency publish to $devices polling devices" \
  "offered to all ${offered} s after publishing, installed by all ${installed} s (poll interval ${interval} s, answers shortened by up to 20 %, 64 KiB patch); server peak RSS $server_peak (simulator $agent_peak), sampled by phase: $phases; server errors $errors" \
  "offered ≤ interval + 1 s = $((interval + 1)) s"
