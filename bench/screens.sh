#!/usr/bin/env bash
# The consoles at fleet scale: 100,000 devices of one customer, on SQLite and on
# PostgreSQL. Times (median of 7, server-side rendering included) the customer
# admin's home, the vendor's home, the device list's first page and the page a
# keyset walk reaches last, in each order, with and without the advisory's exposure
# column; beside them the offset page the JSON API serves at the same depth, which
# is what the screen's paging replaced. Loopback only.
#
#   bench/screens.sh [DEVICES]      (default 100000)
#
# Needs: curl, python3, cargo (it builds the release binary itself; CARGO_TARGET_DIR
# is honoured) and a PostgreSQL server at BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test) where a database can be created. Appends
# a row to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-100000}
. bench/lib.sh
build_release --bin patchwarden
bin="$target/release/patchwarden"
for tool in curl python3 psql; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

work=$(mktemp -d)
pw_pid=""; pg_db=""
cleanup() {
  [ -n "$pw_pid" ] && kill "$pw_pid" 2>/dev/null || true
  [ -n "$pg_db" ] && psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

screenos_fleet "$devices" > "$work/fleet.jsonl"

# A web session of `email`: the login form's CSRF pair, then the session cookie.
session() {
  local email=$1 password=$2 jar="$work/jar-$RANDOM" csrf
  csrf=$(curl -sf -c "$jar" "$web/login" | python3 -c '
import re, sys
print(re.search(r"name=\"csrf_token\" value=\"([^\"]+)\"", sys.stdin.read()).group(1))')
  curl -sf -b "$jar" -c "$jar" -o /dev/null --data-urlencode "email=$email" --data-urlencode "password=$password" \
    --data-urlencode "csrf_token=$csrf" "$web/login"
  awk '$6 == "pw_session" { print "pw_session=" $7 }' "$jar"
}

# Median milliseconds of 7 GETs of `path` with the cookie or bearer header given,
# once the page has answered 200 with `marker` in it (a timing of a redirect to the
# login page, or of an empty list, would measure nothing).
median_ms() {
  local header=$1 path=$2 marker=$3 code
  code=$(curl -s -o "$work/page" -w '%{http_code}' -H "$header" "$web$path")
  if [ "$code" != 200 ] || ! grep -q -- "$marker" "$work/page"; then
    echo "$path answered $code without \`$marker\`" >&2; head -c 600 "$work/page" >&2; exit 1
  fi
  # Every page of the list measured is a full one: 50 devices.
  case "$path" in /fleet/devices*)
    [ "$(grep -o 'data-device=' "$work/page" | wc -l)" = 50 ] || { echo "$path: not 50 devices" >&2; exit 1; } ;;
  esac
  for _ in 1 2 3 4 5 6 7; do
    curl -sf -o /dev/null -w '%{time_total}\n' -H "$header" "$web$path"
  done | sort -n | awk '{ t[NR] = $1 } END { printf "%.1f", t[int((NR + 1) / 2)] * 1000 }'
}

# The query string of the last page a keyset walk in `order` reaches: it starts
# after the device that precedes the last 50 in that order.
last_page() {
  local order=$1 filter=$2
  local after
  after=$(python3 - "$work/db-order.txt" "$order" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
order = sys.argv[2]
if order == "name":
    rows.sort(key=lambda r: (r[1], r[0]))
elif order == "name_desc":
    rows.sort(key=lambda r: (r[1], r[0]), reverse=True)
elif order == "seen_oldest":
    # never seen first (by id), then the longest silent
    rows.sort(key=lambda r: (r[2] != "", r[2], r[0]))
print(rows[-51][0])
PY
)
  echo "sort=$order&after=$after$filter"
}

run() {
  local label=$1 database=$2 dir=$3
  mkdir -p "$dir"
  export PATCHWARDEN_DATABASE_URL="$database" PATCHWARDEN_DATA_DIR="$dir/data" PATCHWARDEN_KEYS_DIR="$work/keys" \
    PATCHWARDEN_BIND="127.0.0.1:$port" PATCHWARDEN_LOG_LEVEL=warn
  echo 'benchmark vendor password' | "$bin" user add --email vendor@bench.example --role vendor-admin --password-stdin >/dev/null
  "$bin" customer add --slug acme --name Acme >/dev/null
  echo 'benchmark acme password' | "$bin" user add --email admin@acme.example --role customer-admin --customer acme \
    --password-stdin >/dev/null
  vendor=$("$bin" token create --email vendor@bench.example 2>/dev/null)
  "$bin" serve 2>"$dir/serve.log" &
  pw_pid=$!
  web="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -sf "$web/healthz" >/dev/null && break; sleep 0.1; done
  api() { curl -sf -H "Authorization: Bearer $vendor" -H 'content-type: application/json' "$@"; }
  api -X POST "$web/api/v1/products" -d '{"slug":"screenos","name":"ScreenOS","version_scheme":"vendor"}' >/dev/null
  api -X PUT "$web/api/v1/customers/acme/entitlements" -d '{"products":["screenos"]}' >/dev/null
  local draft
  draft=$(api -X POST "$web/api/v1/advisories" -d '{"title":"Unauthorized code in ScreenOS","summary":"Backdoor.",
    "cvss_v3":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","emergency":true,"fix_deadline":"2030-01-01T00:00:00Z",
    "affected":[{"product":"screenos","ranges":[{"introduced":"6.2.0r15","fixed":"6.2.0r19"},{"introduced":"6.3.0r12","fixed":"6.3.0r21"}]}]}' | json '["id"]')
  advisory=$(api -X POST "$web/api/v1/advisories/$draft/publish" -d '{}' | json '["id"]')
  "$bin" device import --customer acme --file "$work/fleet.jsonl" 2>/dev/null > "$dir/tokens.jsonl"
  # Half the devices poll once, so "last seen" has times to order by.
  python3 - "$dir/tokens.jsonl" "$web" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
tokens = [json.loads(line)["token"] for line in open(sys.argv[1])][1::2]
def poll(token):
    request = urllib.request.Request(sys.argv[2] + "/api/v1/device/poll", data=b'{}', method="POST",
        headers={"Authorization": "Bearer " + token, "content-type": "application/json"})
    try:
        urllib.request.urlopen(request).read()
    except Exception:
        pass
with ThreadPoolExecutor(16) as pool:
    list(pool.map(poll, tokens[:20000]))
PY
  # The server writes the polls' sightings within seconds.
  local polled
  polled=$(python3 -c 'import json,sys; print([json.loads(l)["id"] for l in open(sys.argv[1])][1])' "$dir/tokens.jsonl")
  for _ in $(seq 1 100); do
    api "$web/api/v1/devices/$polled" | grep -q '"last_seen_at":"' && break
    sleep 0.2
  done
  local customer_session vendor_session
  customer_session=$(session admin@acme.example 'benchmark acme password')
  vendor_session=$(session vendor@bench.example 'benchmark vendor password')
  # Every device's id, name and last-seen time, to find where each walk ends.
  python3 - "$web" "$vendor" "$devices" > "$work/db-order.txt" <<'PY'
import json, sys, urllib.request
web, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for page in range(1, n // 500 + 2):
    request = urllib.request.Request(f"{web}/api/v1/devices?per_page=500&page={page}", headers={"Authorization": "Bearer " + token})
    rows = json.load(urllib.request.urlopen(request))["devices"]
    for d in rows:
        print(f"{d['id']}\t{d['name']}\t{d.get('last_seen_at') or ''}")
    if len(rows) < 500:
        break
PY
  local c="cookie: $customer_session" v="cookie: $vendor_session" b="Authorization: Bearer $vendor"
  local results=""
  add() { results+="$1 $2 ms; "; echo "$label: $1 $2 ms"; }
  add "customer home" "$(median_ms "$c" / 'class="exposure emergency"')"
  add "vendor home" "$(median_ms "$v" / "id=\"progress-$advisory\"")"
  add "list first page" "$(median_ms "$c" '/fleet/devices' 'id="next-page"')"
  for order in name name_desc seen_oldest; do
    add "list last page by $order" "$(median_ms "$c" "/fleet/devices?$(last_page "$order" "")" 'data-device=')"
  done
  add "list with exposure, first page" "$(median_ms "$c" "/fleet/devices?advisory=$advisory" 'data-state=')"
  add "list with exposure, last page" "$(median_ms "$c" "/fleet/devices?$(last_page name "&advisory=$advisory")" 'data-state=')"
  add "API offset page at the same depth" "$(median_ms "$b" "/api/v1/devices?per_page=50&page=$((devices / 50))" '"devices":\[{')"
  summary+="$label: ${results%; }. "
  kill "$pw_pid"; wait "$pw_pid" 2>/dev/null || true; pw_pid=""
}

port=$(free_port)
summary=""
run SQLite "$work/sqlite/patchwarden.db" "$work/sqlite"
pg_db="pw_screens_$$"
psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
pg_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$pg_admin" "$pg_db")
run PostgreSQL "$pg_url" "$work/pg"
record "consoles, $devices devices of one customer — build $(git rev-parse --short HEAD)" "${summary% }" \
  "every screen ≤ 200 ms at 100,000 devices; the last page as quick as the first"
