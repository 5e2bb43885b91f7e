#!/usr/bin/env bash
# Benchmark: enid's SCIM target against a plain client, on the same scim2-server.
#
#   tests/bench/scim-bench.sh [N]                   (default N = 5000)
#   BENCH_ENID=/other/enid tests/bench/scim-bench.sh [N]
#
# 1. `enid apply --yes` of N persons into an empty tenant: creates per second.
# 2. A plain client (Python, http.client) posting the same user bodies (read back from the first
#    tenant, server-made fields removed) to a second empty tenant, with enid's concurrency.
# 3. A no-op `enid plan` against the N users: the requests it makes, read from the server's own
#    log (listings only: no write may appear).
# Prints the rates, their ratio (goal >= 0.9) and the plan's requests.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${1:-5000}
IN_FLIGHT=${IN_FLIGHT:-4}
WORK=${BENCH_DIR:-/tmp/enid-scim-bench}
if [ -n "${BENCH_ENID:-}" ]; then
  ENID=$BENCH_ENID
else
  cargo build -q --release --bin enid
  ENID=$ROOT/target/release/enid
fi
rm -rf "$WORK"; mkdir -p "$WORK"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SCIM_PID=$(SCIM_LOG="$WORK/server.log" tests/scripts/scim.sh "$PORT")
trap 'kill $SCIM_PID 2>/dev/null || true' EXIT
BASE=http://127.0.0.1:$PORT
echo "== generating $N persons"
tests/scripts/gen-persons.sh "$N" 10 > "$WORK/persons.csv"
printf 'testtoken\n' > "$WORK/scim.token"; chmod 600 "$WORK/scim.token"
cat > "$WORK/enid.toml" <<TOML
[state]
path = "state.db"

[sources.sis]
type = "csv"
path = "persons.csv"

[targets.lms]
type = "scim"
url = "$BASE/enid"
token_file = "scim.token"
max_in_flight = $IN_FLIGHT

[targets.lms.policy.attributes]
emails = [{ value = "{{ username }}@skola.example.org", type = "work", primary = true }]
TOML

secs() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk -v a="$e" -v b="$s" 'BEGIN { printf "%.2f", a - b }'; }

echo "== enid apply --yes: $N creates"
T_ENID=$(secs "$ENID" --config "$WORK/enid.toml" apply --yes)

echo "== the same bodies, posted by a plain client with $IN_FLIGHT in flight"
T_PLAIN=$(python3 - "$BASE" "$N" "$IN_FLIGHT" <<'PY'
import http.client, json, sys, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor
base, n, in_flight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
u = urllib.parse.urlparse(base)
H = {"Authorization": "Bearer testtoken", "Content-Type": "application/scim+json"}
def call(method, path, body=None):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request(method, path, body=body, headers=H)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data
bodies, start = [], 1
while True:
    status, data = call("GET", f"/enid/Users?startIndex={start}&count=500")
    page = json.loads(data)
    for r in page["Resources"]:
        for k in ("id", "meta"):
            r.pop(k, None)
        bodies.append(json.dumps(r))
    start += len(page["Resources"])
    if not page["Resources"] or start > page["totalResults"]:
        break
assert len(bodies) >= n * 0.99, len(bodies)
t = time.time()
with ThreadPoolExecutor(in_flight) as pool:
    statuses = list(pool.map(lambda b: call("POST", "/plain/Users", b)[0], bodies))
elapsed = time.time() - t
assert all(s == 201 for s in statuses), set(statuses)
print(f"{elapsed:.2f}")
PY
)
CREATED=$(grep -c '"POST /enid/Users' "$WORK/server.log" || true)

echo "== a no-op enid plan against the $N users"
BEFORE=$(wc -l < "$WORK/server.log")
"$ENID" --config "$WORK/enid.toml" plan > "$WORK/plan.txt"
grep -q '^No changes.' "$WORK/plan.txt" || { echo "the plan after apply is not empty:" >&2; head "$WORK/plan.txt" >&2; exit 1; }
PLAN_LOG=$(tail -n +"$((BEFORE + 1))" "$WORK/server.log" | grep -E '"(GET|POST|PUT|PATCH|DELETE) /enid' || true)
READS=$(printf '%s\n' "$PLAN_LOG" | grep -c '"GET ' || true)
WRITES=$(printf '%s\n' "$PLAN_LOG" | grep -cE '"(POST|PUT|PATCH|DELETE) ' || true)
T_PLAN=$(secs "$ENID" --config "$WORK/enid.toml" plan)

awk -v n="$CREATED" -v te="$T_ENID" -v tp="$T_PLAIN" -v plan="$T_PLAN" -v reads="$READS" -v writes="$WRITES" -v f="$IN_FLIGHT" 'BEGIN {
  printf "\nusers: %d   in flight: %d   server: scim2-server 0.8.3 (single-threaded WSGI)\n", n, f
  printf "enid apply (%d creates)           %6.2f s   %6.0f creates/s\n", n, te, n / te
  printf "plain client (same bodies)        %6.2f s   %6.0f creates/s\n", tp, n / tp
  printf "ratio enid / plain (creates/s)     %5.2f   (goal >= 0.9)\n", tp / te
  printf "no-op enid plan                    %5.2f s: %d listing requests, %d writes\n", plan, reads, writes
}'
