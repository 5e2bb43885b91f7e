#!/usr/bin/env bash
# Benchmark: enid against the reference tools on the same data and the same slapd setup.
#
#   tests/bench/bench.sh [N]        (default N = 100000)
#   BENCH_ENID=/other/enid tests/bench/bench.sh [N]   measures that build instead
#
# 1. Generates N persons (tests/scripts/gen-persons.sh).
# 2. `enid apply --yes` into an empty private slapd A, versus `ldapadd` of an LDIF with the same
#    entries and attributes (dumped from A after the apply) into an empty slapd B with the same
#    configuration.
# 3. A no-op `enid plan` on A, versus a paged `ldapsearch` of the same subtree.
# Prints times (the one-second ones as the median of three), ratios and enid's peak memory. Goals: apply <= 1.5x ldapadd; plan <= 2x ldapsearch.
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
cat > "$WORK/enid.toml" <<TOML
[state]
path = "state.db"

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

echo "== enid apply --yes into slapd A"
T_APPLY=$(secs "$ENID" --config "$WORK/enid.toml" apply --yes)
echo "== dumping A's entries to LDIF, ldapadd into slapd B"
ldapsearch -x -LLL -o ldif-wrap=no -H "ldap://127.0.0.1:$PA" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=people,dc=example,dc=org -E pr=1000/noprompt '(objectClass=inetOrgPerson)' '*' \
  | grep -v '^#' > "$WORK/people.ldif"
ENTRIES=$(grep -c '^dn:' "$WORK/people.ldif")
T_LDAPADD=$(secs ldapadd -x -H "ldap://127.0.0.1:$PB" -D cn=admin,dc=example,dc=org -w secret -f "$WORK/people.ldif")

echo "== no-op enid plan versus paged ldapsearch on A"
"$ENID" --config "$WORK/enid.toml" plan > "$WORK/plan.txt"
grep -q '^No changes.' "$WORK/plan.txt" || { echo "the plan after apply is not empty:" >&2; head "$WORK/plan.txt" >&2; exit 1; }
T_PLAN=$(median3 "$ENID" --config "$WORK/enid.toml" plan)
T_SEARCH=$(median3 ldapsearch -x -LLL -H "ldap://127.0.0.1:$PA" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=people,dc=example,dc=org -E pr=1000/noprompt '(objectClass=inetOrgPerson)')
RSS_PLAN=$(peak_rss "$ENID" --config "$WORK/enid.toml" plan)

# Peak memory of an apply: a second, fresh apply into slapd B's twin would need a third server;
# measure it on a fresh state against an emptied A instead.
kill $PIDA; PIDA=$(tests/scripts/slapd.sh "$WORK/slapd-a" "$PA"); rm -f "$WORK"/state.db*
RSS_APPLY=$(peak_rss "$ENID" --config "$WORK/enid.toml" apply --yes)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "persons: $N   entries: $ENTRIES   cores: $(nproc)"
printf '%-34s %8s s\n' "enid apply (empty directory)" "$T_APPLY"
printf '%-34s %8s s\n' "ldapadd (same entries)" "$T_LDAPADD"
printf '%-34s %8s   (goal <= 1.5)\n' "ratio apply / ldapadd" "$(ratio "$T_APPLY" "$T_LDAPADD")"
printf '%-34s %8s s   (median of 3)\n' "enid plan (no changes)" "$T_PLAN"
printf '%-34s %8s s   (median of 3)\n' "ldapsearch (paged, same subtree)" "$T_SEARCH"
printf '%-34s %8s   (goal <= 2.0)\n' "ratio plan / ldapsearch" "$(ratio "$T_PLAN" "$T_SEARCH")"
printf '%-34s %8s MiB\n' "enid peak memory, apply" "$((RSS_APPLY / 1024))"
printf '%-34s %8s MiB\n' "enid peak memory, no-op plan" "$((RSS_PLAN / 1024))"
