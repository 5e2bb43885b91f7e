#!/usr/bin/env bash
# Benchmark: how long one changed person takes to reach the directory through `enid run`.
#
#   tests/bench/latency.sh [--ss12000] [N] [CHANGES]   (defaults: N = 100000 persons, CHANGES = 20)
#   BENCH_ENID=/other/enid tests/bench/latency.sh ...   measures that build instead
#   BENCH_PERF=/tmp/idle.perf tests/bench/latency.sh ...  also profiles the idle service
#
# 1. Generates N persons, starts a private slapd and applies them (`enid apply`). The source is
#    a CSV export, or with --ss12000 the local SS 12000 server (tests/ss12000-server, N persons
#    generated, its `--control` stdin changing them).
# 2. Starts `enid run` (apply within thresholds; file changes settled for 1 s, or an incremental
#    read of the SS 12000 API every second), waits for its first (full) run.
# 3. CHANGES times: gives one pupil a new surname (the CSV written beside the export and renamed
#    into place, as an export job should; or a change in the SS 12000 server), and measures the
#    seconds until slapd shows it. Prints p50 and p99 (the largest, for fewer than 100 changes).
# 4. The service's CPU seconds over 10 idle seconds after the changes (goal: near zero).
# Goal: p50 <= 2 s, p99 <= 10 s at 100,000 persons.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SS12000=
if [ "${1:-}" = "--ss12000" ]; then SS12000=1; shift; fi
N=${1:-100000}
CHANGES=${2:-20}
WORK=${BENCH_DIR:-/tmp/enid-latency}
export PATH=$PATH:/usr/sbin
command -v slapd >/dev/null || { echo "slapd missing: run tests/scripts/test.sh once (it installs slapd)" >&2; exit 1; }
if [ -n "${BENCH_ENID:-}" ]; then
  ENID=$BENCH_ENID
else
  cargo build -q --release --bin enid
  ENID=$ROOT/target/release/enid
fi
if [ -n "$SS12000" ]; then
  cargo build -q --release -p ss12000-server
  SIS=$ROOT/target/release/ss12000-server
fi
rm -rf "$WORK"; mkdir -p "$WORK"
PORT=$((20000 + RANDOM % 20000))
SLAPD=$(tests/scripts/slapd.sh "$WORK/slapd" "$PORT")
DAEMON=
SISPID=
trap 'kill $SLAPD $DAEMON $SISPID 2>/dev/null || true; exec 3>&- || true' EXIT
printf 'secret\n' > "$WORK/ldap.secret"; chmod 600 "$WORK/ldap.secret"
if [ -n "$SS12000" ]; then
  echo "== generating $N persons in the SS 12000 server"
  SISPORT=$((PORT + 1))
  mkfifo "$WORK/sis.in"
  "$SIS" --persons "$N" --port "$SISPORT" --control < "$WORK/sis.in" > "$WORK/sis.out" 2>&1 &
  SISPID=$!
  exec 3> "$WORK/sis.in"
  until grep -q "^ss12000-server:" "$WORK/sis.out" 2>/dev/null; do sleep 0.2; done
  SISURL=$(sed -n 's/^ss12000-server: .* at //p' "$WORK/sis.out")
  printf 'enid-test-secret\n' > "$WORK/sis.secret"; chmod 600 "$WORK/sis.secret"
  SOURCE="type = \"ss12000\"
url = \"$SISURL\"
token_url = \"$SISURL/token\"
client_id = \"enid\"
client_secret_file = \"sis.secret\""
  WATCH='incremental = "1s"'
else
  echo "== generating $N persons"
  tests/scripts/gen-persons.sh "$N" 10 > "$WORK/persons.csv"
  SOURCE='type = "csv"
path = "persons.csv"'
  WATCH='settle = "1s"'
fi
cat > "$WORK/enid.toml" <<TOML
[state]
path = "state.db"

[sources.sis]
$SOURCE

[targets.directory]
type = "ldap"
url = "ldap://127.0.0.1:$PORT"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password_file = "ldap.secret"
base_dn = "ou=people,dc=example,dc=org"

[schedule]
full = "24h"
apply = "within_thresholds"
$WATCH
TOML
cd "$WORK"
echo "== applying $N persons"
"$ENID" --config enid.toml apply --yes > /dev/null
echo "== starting enid run"
ENID_LOG=${BENCH_LOG:-warn} "$ENID" --config enid.toml run 2> daemon.log &
DAEMON=$!
# (Not `| grep -q`: under pipefail, grep leaving early fails the pipeline.)
until "$ENID" --config enid.toml runs --json > runs.json 2>/dev/null && grep -q '"command":"run"' runs.json; do
  sleep 0.5
done
now() { date +%s.%N; }
found() { ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=people,dc=example,dc=org "(sn=$1)" dn 2>/dev/null | grep -q '^dn:'; }
: > latencies
for i in $(seq 1 "$CHANGES"); do
  if [ -n "$SS12000" ]; then
    start=$(now)
    echo "family-name $((i * 997)) Latency$i" >&3
  else
    line=$((i * 997 % N + 2))
    awk -F, -v OFS=, -v l="$line" -v s="Latency$i" 'NR == l { $3 = s } { print }' persons.csv > persons.csv.new
    start=$(now)
    mv persons.csv.new persons.csv
  fi
  until found "Latency$i"; do sleep 0.05; done
  awk -v a="$(now)" -v b="$start" 'BEGIN { printf "%.2f\n", a - b }' >> latencies
done
cpu() { awk '{ print $14 + $15 }' "/proc/$DAEMON/stat"; }
# BENCH_PERF=file records where the idle service spends its CPU (perf record) meanwhile.
c0=$(cpu)
if [ -n "${BENCH_PERF:-}" ]; then perf record -q -F 499 -g -o "$BENCH_PERF" -p "$DAEMON" -- sleep 10 2>/dev/null; else sleep 10; fi
c1=$(cpu)
ticks=$(getconf CLK_TCK)
sort -n latencies > sorted
count=$(wc -l < sorted)
p50=$(sed -n "$(( (count + 1) / 2 ))p" sorted)
p99=$(sed -n "$(( (count * 99 + 99) / 100 ))p" sorted)
echo "== $CHANGES changes of one person each, $N persons${SS12000:+ (SS 12000, incremental = 1s)}"
echo "change-to-target latency: p50 ${p50} s, p99 ${p99} s (goal: p50 <= 2 s, p99 <= 10 s)"
awk -v a="$c0" -v b="$c1" -v t="$ticks" 'BEGIN { printf "the service idle: %.2f CPU seconds in 10 s\n", (b - a) / t }'
