#!/usr/bin/env bash
# Benchmark: enid's AD target against `ldapadd`, on the same Samba AD domain controller over LDAPS.
#
#   tests/bench/ad-bench.sh [N]                   (default N = 500; needs root, like samba.sh)
#   BENCH_ENID=/other/enid tests/bench/ad-bench.sh [N]
#
# 1. `enid apply --yes` of N persons into an empty OU: creates per second (each create is an add
#    with the password, a read of the objectGUID, and the enable).
# 2. `ldapadd` (one connection, LDAPS) of the same accounts (their OUs first), enabled with a
#    password in the add, into a second empty OU.
# 3. A no-op `enid plan` against the N accounts, and a paged `ldapsearch` of the same OU.
# Prints the times and their ratios. Samba serialises writes and is CPU-bound: hundreds of
# accounts, not 100,000 (OpenLDAP carries the load benchmark: bench.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${1:-500}
WORK=${BENCH_DIR:-/tmp/enid-ad-bench}
export PATH=$PATH:/usr/sbin
if [ -n "${BENCH_ENID:-}" ]; then
  ENID=$BENCH_ENID
else
  cargo build -q --release --bin enid
  ENID=$ROOT/target/release/enid
fi
rm -rf "$WORK"; mkdir -p "$WORK"
PW='Passw0rd!Passw0rd'
DC_PID=$(WATCH_PID=$$ tests/scripts/samba.sh "$WORK/dc")
trap 'kill $DC_PID 2>/dev/null || true' EXIT
export LDAPTLS_CACERT=$WORK/dc/tls/ca.pem
DOMAIN="DC=samdom,DC=example,DC=org"
ADMIN=Administrator@samdom.example.org
ldap() { "$@" -x -H ldaps://127.0.0.1 -D "$ADMIN" -w "$PW"; }
printf 'dn: OU=Enid,%s\nobjectClass: organizationalUnit\n\ndn: OU=Ref,%s\nobjectClass: organizationalUnit\n' \
  "$DOMAIN" "$DOMAIN" | ldap ldapadd > /dev/null

echo "== generating $N persons"
tests/scripts/gen-persons.sh "$N" 5 > "$WORK/persons.csv"
printf '%s\n' "$PW" > "$WORK/ad.secret"; chmod 600 "$WORK/ad.secret"
cat > "$WORK/enid.toml" <<TOML
[state]
path = "state.db"

[sources.sis]
type = "csv"
path = "persons.csv"

[targets.ad]
type = "ad"
url = "ldaps://127.0.0.1"
tls_ca_file = "$WORK/dc/tls/ca.pem"
bind_dn = "$ADMIN"
bind_password_file = "ad.secret"
base_dn = "OU=Enid,$DOMAIN"
upn_suffix = "skola.example.org"
TOML

secs() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk -v a="$e" -v b="$s" 'BEGIN { printf "%.2f", a - b }'; }

echo "== enid apply --yes: $N creates"
T_ENID=$(secs "$ENID" --config "$WORK/enid.toml" apply --yes)
MADE=$(ldap ldapsearch -LLL -b "OU=Enid,$DOMAIN" '(objectClass=user)' 1.1 | grep -c '^dn:' || true)

echo "== ldapadd of the same accounts (LDIF read back from enid's, with a password, enabled)"
ldap ldapsearch -LLL -o ldif-wrap=no -b "OU=Enid,$DOMAIN" '(|(objectClass=user)(objectClass=organizationalUnit))' \
  objectClass cn ou sAMAccountName userPrincipalName givenName sn displayName department employeeNumber \
  > "$WORK/enid.ldif"
python3 - "$WORK/enid.ldif" "$DOMAIN" > "$WORK/ref.ldif" <<'PY'
import base64, sys
text, domain = open(sys.argv[1]).read(), sys.argv[2]
pw = base64.b64encode('"Ref-Passw0rd!x9"'.encode("utf-16-le")).decode()
out = []
for block in text.strip().split("\n\n"):
    lines = block.splitlines()
    first = lines[0]
    dn = base64.b64decode(first[5:]).decode() if first.startswith("dn:: ") else first[4:]
    dn = dn.replace(f"OU=Enid,{domain}", f"OU=Ref,{domain}")
    if dn.lower() == f"ou=ref,{domain}".lower():
        continue
    rest = [l for l in lines[1:]]
    user = any(l.lower() == "objectclass: user" for l in rest)
    # usernames are unique in the domain: the reference accounts get their own
    rest = [l.replace("sAMAccountName: ", "sAMAccountName: r") if l.startswith("sAMAccountName: ") else l for l in rest]
    rest = [l.replace("userPrincipalName: ", "userPrincipalName: r") if l.startswith("userPrincipalName: ") else l for l in rest]
    if user:
        rest += ["userAccountControl: 512", f"unicodePwd:: {pw}"]
    out.append("\n".join([f"dn:: {base64.b64encode(dn.encode()).decode()}"] + rest))
# OUs first (shallow before deep), then the users
out.sort(key=lambda b: (0 if "organizationalUnit" in b else 1, b.count(",")))
print("\n\n".join(out))
PY
T_REF=$(secs ldap ldapadd -f "$WORK/ref.ldif")
MADE_REF=$(ldap ldapsearch -LLL -b "OU=Ref,$DOMAIN" '(objectClass=user)' 1.1 | grep -c '^dn:' || true)
[ "$MADE_REF" = "$MADE" ] || { echo "ldapadd made $MADE_REF accounts, enid $MADE" >&2; exit 1; }

echo "== no-op enid plan and paged ldapsearch"
T_PLAN=$(secs "$ENID" --config "$WORK/enid.toml" plan)
NOOP=$("$ENID" --config "$WORK/enid.toml" plan --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["operations"]))')
T_SEARCH=$(secs ldap ldapsearch -LLL -E pr=500/noprompt -b "OU=Enid,$DOMAIN" '(&(objectCategory=person)(objectClass=user))' \
  sAMAccountName userAccountControl objectGUID cn employeeNumber userPrincipalName givenName sn displayName department)

echo
echo "accounts made by enid: $MADE of $N persons (longer usernames than 20 characters are held)"
awk -v e="$T_ENID" -v r="$T_REF" -v n="$MADE" 'BEGIN { printf "apply:      enid %.2f s (%.1f /s), ldapadd %.2f s (%.1f /s), enid/ldapadd %.2f\n", e, n / e, r, n / r, e / r }'
awk -v p="$T_PLAN" -v s="$T_SEARCH" -v o="$NOOP" 'BEGIN { printf "no-op plan: enid %.2f s (%d operations), ldapsearch %.2f s, ratio %.2f\n", p, o, s, p / s }'
