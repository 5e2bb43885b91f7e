#!/usr/bin/env bash
# Benchmark: enid against the reference tools on the same data and the same slapd setup.
#
#   tests/bench/bench.sh [N]        (default N = 100000)
#   BENCH_ENID=/other/enid tests/bench/bench.sh [N]   measures that build instead
#   BENCH_COMPARE=/old/enid tests/bench/bench.sh [N]  also plans with that build at each step and
#                                                     fails unless its plan ids are the same (a
#                                                     leaner representation must give the same plans)
#   BENCH_STATE=postgres tests/bench/bench.sh [N]     the state in a private PostgreSQL
#                                                     (tests/scripts/postgres.sh) instead of SQLite;
#                                                     peak memory is enid's own, not the server's
#
# 1. Generates N persons (tests/scripts/gen-persons.sh).
# 2. `enid apply --yes` into an empty private slapd A, versus the directory's write floor: the
#    same entries and attributes (dumped from A after the apply) added to an empty slapd B with the
#    same configuration by four parallel `ldapadd` streams (slapd's writes scale with a few
#    connections); a single `ldapadd` stream is shown too.
# 3. A no-op `enid plan` on A, versus a paged `ldapsearch` of the same subtree.
# 4. A run of 1,000 changes (new surnames for 1,000 persons; `enid apply --yes`).
# 5. Peak memory of an apply into an empty directory and of the no-op plan.
# Prints times (the one-second ones as the median of three), ratios, the cost per identity
# (to compare N = 100,000 with N = 1,000,000) and enid's peak memory.
# Goals (issue 19): apply at least 90% of the four-stream floor's throughput (ratio <= 1.11);
# no-op plan <= 1.5x ldapsearch; at 1,000,000 the cost per identity at most 1.3x that at
# 100,000; peak memory <= 1 GB at 1,000,000.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${1:-100000}
WORK=${BENCH_DIR:-/tmp/enid-bench}
export PATH=$PATH:/usr/sbin
command -v slapd >/dev/null || { echo "slapd missing: run tests/scripts/test.sh once (it installs slapd)" >&2; exit 1; }

# BENCH_ENID=/path/to/enid measures another build (a before/after comparison) instead.
if [ -n "${BENCH_ENID:-}" ]; then
  ENID=$BENCH_ENID
else
  cargo build -q --release --bin enid
  ENID=$ROOT/target/release/enid
fi
rm -rf "$WORK"; mkdir -p "$WORK"
echo "== generating $N persons"
tests/scripts/gen-persons.sh "$N" 10 > "$WORK/persons.csv"

free_port() { echo $((20000 + RANDOM % 20000)); }
PA=$(free_port); PB=$(free_port)
PIDA=$(tests/scripts/slapd.sh "$WORK/slapd-a" "$PA")
PIDB=$(tests/scripts/slapd.sh "$WORK/slapd-b" "$PB")
trap 'kill $PIDA $PIDB 2>/dev/null || true' EXIT

printf 'secret\n' > "$WORK/ldap.secret"; chmod 600 "$WORK/ldap.secret"
if [ "${BENCH_STATE:-sqlite}" = postgres ]; then
  PGP=$(free_port)
  PGPID=$(tests/scripts/postgres.sh "$WORK/pg" "$PGP")
  trap 'kill $PIDA $PIDB $PGPID 2>/dev/null || true' EXIT
  printf 'enid-test-pw\n' > "$WORK/db.pw"; chmod 600 "$WORK/db.pw"
  STATE="url = \"postgres://enid@127.0.0.1:$PGP/enid\"
db_password_file = \"db.pw\""
  PSQL=(psql -h 127.0.0.1 -p "$PGP" -U postgres -d postgres -Xq)
  [ "$(id -u)" = 0 ] && PSQL=(runuser -u postgres -- "${PSQL[@]}")
  fresh_state() { "${PSQL[@]}" -c "DROP DATABASE enid" -c "CREATE DATABASE enid OWNER enid"; }
else
  STATE='path = "state.db"'
  fresh_state() { rm -f "$WORK"/state.db*; }
fi
cat > "$WORK/enid.toml" <<TOML
[state]
$STATE

[sources.sis]
type = "csv"
path = "persons.csv"

[targets.directory]
type = "ldap"
url = "ldap://127.0.0.1:$PA"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password_file = "ldap.secret"
base_dn = "ou=people,dc=example,dc=org"
TOML

# Wall seconds of a command, with its output discarded.
secs() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk -v a="$e" -v b="$s" 'BEGIN { printf "%.2f", a - b }'; }
# The median of three runs, for the measurements that take about a second: one run on a shared
# two-core machine varies by half a second.
median3() { local a b c; a=$(secs "$@"); b=$(secs "$@"); c=$(secs "$@"); printf '%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p; }
# Peak RSS (KiB) of a command, from /proc, sampled every 20 ms.
peak_rss() {
  "$@" > /dev/null & local pid=$! peak=0 rss
  while kill -0 $pid 2>/dev/null; do
    rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    sleep 0.02
  done
  wait $pid
  echo "$peak"
}

# The plan id of a build's plan of what is there now.
plan_id() { "$1" --config "$WORK/enid.toml" plan --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["plan_id"])'; }
# With BENCH_COMPARE, the other build must plan exactly the same (its plan id covers every operation).
same_plan() {
  [ -n "${BENCH_COMPARE:-}" ] || return 0
  local mine theirs
  mine=$(plan_id "$ENID"); theirs=$(plan_id "$BENCH_COMPARE")
  [ "$mine" = "$theirs" ] || { echo "plan ids differ ($1): $mine here, $theirs from $BENCH_COMPARE" >&2; exit 1; }
  echo "   same plan id as $BENCH_COMPARE ($1): $mine"
}

same_plan "creates into an empty directory"
echo "== enid apply --yes into slapd A"
T_APPLY=$(secs "$ENID" --config "$WORK/enid.toml" apply --yes)
echo "== dumping A's entries to LDIF, ldapadd into slapd B"
ldapsearch -x -LLL -o ldif-wrap=no -H "ldap://127.0.0.1:$PA" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=people,dc=example,dc=org -E pr=1000/noprompt '(objectClass=inetOrgPerson)' '*' \
  | grep -v '^#' > "$WORK/people.ldif"
ENTRIES=$(grep -c '^dn:' "$WORK/people.ldif")
# Four streams: the entries dealt round-robin into four files, added at once.
awk -v dir="$WORK" 'BEGIN { RS = ""; ORS = "\n\n" } { print > (dir "/people." (NR % 4) ".ldif") }' "$WORK/people.ldif"
ldapadd4() {
  local i pids=()
  for i in 0 1 2 3; do
    ldapadd -x -H "ldap://127.0.0.1:$PB" -D cn=admin,dc=example,dc=org -w secret -f "$WORK/people.$i.ldif" > /dev/null &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
}
T_LDAPADD4=$(secs ldapadd4)
# One stream, into B emptied again.
kill $PIDB; rm -rf "$WORK/slapd-b"; PIDB=$(tests/scripts/slapd.sh "$WORK/slapd-b" "$PB")
T_LDAPADD=$(secs ldapadd -x -H "ldap://127.0.0.1:$PB" -D cn=admin,dc=example,dc=org -w secret -f "$WORK/people.ldif")

echo "== no-op enid plan versus paged ldapsearch on A"
"$ENID" --config "$WORK/enid.toml" plan > "$WORK/plan.txt"
grep -q '^No changes.' "$WORK/plan.txt" || { echo "the plan after apply is not empty:" >&2; head "$WORK/plan.txt" >&2; exit 1; }
same_plan "no changes"
T_PLAN=$(median3 "$ENID" --config "$WORK/enid.toml" plan)
T_SEARCH=$(median3 ldapsearch -x -LLL -H "ldap://127.0.0.1:$PA" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=people,dc=example,dc=org -E pr=1000/noprompt '(objectClass=inetOrgPerson)')
RSS_PLAN=$(peak_rss "$ENID" --config "$WORK/enid.toml" plan)

echo "== a run of changes (new surnames)"
# 1,000, or 5% of a small N (more would be held by the default thresholds).
CHANGES=$(( N / 20 < 1000 ? N / 20 : 1000 ))
awk -F, -v OFS=, -v n="$CHANGES" 'NR > 1 && NR <= n + 1 { $3 = $3 "son" } { print }' "$WORK/persons.csv" > "$WORK/persons.new"
mv "$WORK/persons.new" "$WORK/persons.csv"
same_plan "$CHANGES changes"
T_CHANGES=$(secs "$ENID" --config "$WORK/enid.toml" apply --yes)
"$ENID" --config "$WORK/enid.toml" plan > "$WORK/plan.txt"
grep -q '^No changes.' "$WORK/plan.txt" || { echo "the $CHANGES changes were not all applied:" >&2; head "$WORK/plan.txt" >&2; exit 1; }

# Peak memory of an apply: a second, fresh apply into slapd B's twin would need a third server;
# measure it on a fresh state against an emptied A instead.
kill $PIDA; PIDA=$(tests/scripts/slapd.sh "$WORK/slapd-a" "$PA"); fresh_state
RSS_APPLY=$(peak_rss "$ENID" --config "$WORK/enid.toml" apply --yes)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# Microseconds per identity.
per() { awk -v t="$1" -v n="$2" 'BEGIN { printf "%.1f", t * 1e6 / n }'; }
echo
echo "persons: $N   entries: $ENTRIES   cores: $(nproc)   state: ${BENCH_STATE:-sqlite}"
printf '%-40s %8s s   %s us/identity\n' "enid apply (empty directory)" "$T_APPLY" "$(per "$T_APPLY" "$N")"
printf '%-40s %8s s\n' "ldapadd, four streams (the floor)" "$T_LDAPADD4"
printf '%-40s %8s s\n' "ldapadd, one stream" "$T_LDAPADD"
printf '%-40s %8s   (goal <= 1.11: 90%% of the floor)\n' "ratio apply / four-stream ldapadd" "$(ratio "$T_APPLY" "$T_LDAPADD4")"
printf '%-40s %8s\n' "ratio apply / one-stream ldapadd" "$(ratio "$T_APPLY" "$T_LDAPADD")"
printf '%-40s %8s s   (median of 3)   %s us/identity\n' "enid plan (no changes)" "$T_PLAN" "$(per "$T_PLAN" "$N")"
printf '%-40s %8s s   (median of 3)\n' "ldapsearch (paged, same subtree)" "$T_SEARCH"
printf '%-40s %8s   (goal <= 1.5)\n' "ratio plan / ldapsearch" "$(ratio "$T_PLAN" "$T_SEARCH")"
printf '%-40s %8s s   %s us/identity\n' "enid apply, $CHANGES changes" "$T_CHANGES" "$(per "$T_CHANGES" "$N")"
printf '%-40s %8s MiB   (%s bytes/identity)\n' "enid peak memory, apply" "$((RSS_APPLY / 1024))" "$((RSS_APPLY * 1024 / N))"
printf '%-40s %8s MiB   (%s bytes/identity)\n' "enid peak memory, no-op plan" "$((RSS_PLAN / 1024))" "$((RSS_PLAN * 1024 / N))"
