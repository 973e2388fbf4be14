# Shared by the benchmark scripts: the release build, the machine's description and
# the dated row each run appends to bench/RESULTS.md. Sourced, not run.

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac

# Builds what the benchmark runs, in release mode (a no-op when it is up to date).
build_release() {
  cargo build --release --quiet "$@"
}

# "2 cores, AMD EPYC 7B13, Linux 6.1.0"
machine() {
  local model
  model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo | tr -s ' ')
  echo "$(nproc) cores, ${model:-unknown CPU}, $(uname -s) $(uname -r)"
}

# Appends one row to the run log at the end of bench/RESULTS.md:
#   record BENCHMARK RESULT GOAL
record() {
  printf '| %s | %s | %s | %s | %s |\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$1" "$2" "$3" "$(machine)" \
    >> bench/RESULTS.md
  echo "recorded in bench/RESULTS.md: $1: $2"
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

# The default outbound deny list less loopback: the benchmarks' simulated devices
# answer pulls on loopback addresses, which pulls do not reach by default.
deny_but_loopback="0.0.0.0/8,169.254.0.0/16,224.0.0.0/4,::/128,fe80::/10,ff00::/8,fd00:ec2::254"

# A free loopback port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A field of the JSON on standard input: json '["id"]'.
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# A fleet of $1 ScreenOS devices as `patchwarden device import` reads it, on a spread
# of versions: most on the 6.3.0 train around the backdoor, some on 6.2.0, one in
# twenty never seen; labelled with one of 50 sites.
screenos_fleet() {
  python3 - "$1" <<'PY'
import json, sys
n = int(sys.argv[1])
for i in range(n):
    d = {"name": f"fw-{i:06d}", "product": "screenos", "platform": "ssg-500", "labels": {"site": f"site-{i % 50}"}}
    if i % 20 != 0:
        d["version"] = f"6.3.0r{12 + i % 14}" if i % 5 else f"6.2.0r{10 + i % 10}"
    print(json.dumps(d))
PY
}

# The server's request latency by route, from its /metrics histogram: for each route
# pattern that matches $2 (a regular expression), the number of requests and the
# bucket bounds under which half and 99 % of them finished.
#   route_latency METRICS_URL ROUTE_REGEX
route_latency() {
  curl -sf "$1" | python3 -c '
import re, sys
wanted = re.compile(sys.argv[1])
buckets, counts = {}, {}
for line in sys.stdin:
    m = re.match(r"patchwarden_http_request_duration_seconds_bucket\{le=\"([^\"]+)\",route=\"([^\"]+)\"\} (\d+)", line) \
        or re.match(r"patchwarden_http_request_duration_seconds_bucket\{route=\"([^\"]+)\",le=\"([^\"]+)\"\} (\d+)", line)
    if not m:
        continue
    a, b, n = m.groups()
    le, route = (a, b) if not a.startswith("/") else (b, a)
    if wanted.search(route):
        buckets.setdefault(route, []).append((float("inf") if le == "+Inf" else float(le), int(n)))
for route, bs in sorted(buckets.items()):
    bs.sort()
    total = bs[-1][1]
    if total == 0:
        continue
    def under(q):
        for le, n in bs:
            if n >= q * total:
                return "∞" if le == float("inf") else f"{le * 1000:g} ms"
    print(f"{route}: {total} requests, p50 ≤ {under(0.5)}, p99 ≤ {under(0.99)}, max ≤ {under(1.0)}")
' "$2"
}
