#!/usr/bin/env bash
# Benchmark: how long one changed person takes to reach the directory through `enid run`.
#
#   tests/bench/latency.sh [N] [CHANGES]     (defaults: N = 100000 persons, CHANGES = 20)
#   BENCH_ENID=/other/enid tests/bench/latency.sh ...   measures that build instead
#
# 1. Generates N persons, starts a private slapd and applies them (`enid apply`).
# 2. Starts `enid run` (apply within thresholds, file changes settled for 1 s), waits for its
#    first (full) run.
# 3. CHANGES times: rewrites the export with one person's new surname (written beside it and
#    renamed into place, as an export job should), and measures the seconds until slapd shows
#    it. Prints p50 and p99 (the largest, for fewer than 100 changes).
# 4. The service's CPU seconds over 10 idle seconds after the changes (goal: near zero).
# Goal: p50 <= 2 s, p99 <= 10 s at 100,000 persons.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
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
rm -rf "$WORK"; mkdir -p "$WORK"
echo "== generating $N persons"
tests/scripts/gen-persons.sh "$N" 10 > "$WORK/persons.csv"
PORT=$((20000 + RANDOM % 20000))
SLAPD=$(tests/scripts/slapd.sh "$WORK/slapd" "$PORT")
DAEMON=
trap 'kill $SLAPD $DAEMON 2>/dev/null || true' EXIT
printf 'secret\n' > "$WORK/ldap.secret"; chmod 600 "$WORK/ldap.secret"
cat > "$WORK/enid.toml" <<TOML
[state]
path = "state.db"

[sources.sis]
type = "csv"
path = "persons.csv"

[targets.directory]
type = "ldap"
url = "ldap://127.0.0.1:$PORT"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password_file = "ldap.secret"
base_dn = "ou=people,dc=example,dc=org"

[schedule]
full = "24h"
apply = "within_thresholds"
settle = "1s"
TOML
cd "$WORK"
echo "== applying $N persons"
"$ENID" --config enid.toml apply --yes > /dev/null
echo "== starting enid run"
ENID_LOG=warn "$ENID" --config enid.toml run 2> daemon.log &
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
  line=$((i * 997 % N + 2))
  awk -F, -v OFS=, -v l="$line" -v s="Latency$i" 'NR == l { $3 = s } { print }' persons.csv > persons.csv.new
  start=$(now)
  mv persons.csv.new persons.csv
  until found "Latency$i"; do sleep 0.05; done
  awk -v a="$(now)" -v b="$start" 'BEGIN { printf "%.2f\n", a - b }' >> latencies
done
cpu() { awk '{ print $14 + $15 }' "/proc/$DAEMON/stat"; }
c0=$(cpu); sleep 10; c1=$(cpu)
ticks=$(getconf CLK_TCK)
sort -n latencies > sorted
count=$(wc -l < sorted)
p50=$(sed -n "$(( (count + 1) / 2 ))p" sorted)
p99=$(sed -n "$(( (count * 99 + 99) / 100 ))p" sorted)
echo "== $CHANGES changes of one person each, $N persons"
echo "change-to-target latency: p50 ${p50} s, p99 ${p99} s (goal: p50 <= 2 s, p99 <= 10 s)"
awk -v a="$c0" -v b="$c1" -v t="$ticks" 'BEGIN { printf "the service idle: %.2f CPU seconds in 10 s\n", (b - a) / t }'
