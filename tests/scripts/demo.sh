#!/usr/bin/env bash
# The demo: enid on the bundled sample of 2,000 persons in three schools, into a private
# OpenLDAP slapd on 127.0.0.1. Installs slapd and ldap-utils when missing (Debian).
#
#   tests/scripts/demo.sh            (from the repository root)
#
# Everything it makes is under .enid-demo/; slapd is stopped when the script ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DEMO=$ROOT/.enid-demo
PORT=${PORT:-3389}

if ! command -v slapd >/dev/null && [ ! -x /usr/sbin/slapd ] || ! command -v ldapsearch >/dev/null; then
  echo "== installing slapd and ldap-utils"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q slapd ldap-utils >/dev/null
fi
export PATH=$PATH:/usr/sbin

echo "== building enid"
cargo build -q --bin enid
ENID=$ROOT/target/debug/enid

rm -rf "$DEMO"; mkdir -p "$DEMO"
PID=$(tests/scripts/slapd.sh "$DEMO/slapd" "$PORT")
trap 'kill $PID 2>/dev/null || true' EXIT
sed "s/127.0.0.1:3389/127.0.0.1:$PORT/" config/demo.toml > "$DEMO/enid.toml"
cp tests/fixtures/sample-persons.csv "$DEMO/persons.csv"
printf 'secret\n' > "$DEMO/ldap.secret"; chmod 600 "$DEMO/ldap.secret"
export ENID_CONFIG=$DEMO/enid.toml

echo; echo "== enid check"
$ENID check
echo; echo "== enid plan (first lines)"
$ENID plan | head -n 12
echo; echo "== enid apply --yes (summary)"
$ENID apply --yes | tail -n 2
echo; echo "== three entries, with ldapsearch"
ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=people,dc=example,dc=org -z 3 '(objectClass=inetOrgPerson)' 2>/dev/null | grep -v '^#' | head -n 40 || true
echo "== groups: $(ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=groups,dc=example,dc=org '(objectClass=groupOfNames)' cn | grep -c '^cn:') (classes and schools)"
echo "== entries under ou=people: $(ldapsearch -x -LLL -H "ldap://127.0.0.1:$PORT" -D cn=admin,dc=example,dc=org -w secret \
  -b ou=people,dc=example,dc=org -E pr=1000/noprompt '(objectClass=inetOrgPerson)' dn | grep -c '^dn:')"
echo; echo "== enid plan again: nothing left to do"
$ENID plan | head -n 4
echo; echo "== a pupil leaves: removed from the export, then planned"
sed -i '/^P0000002,/d' "$DEMO/persons.csv"
$ENID plan | sed -n '/^disable/,$p'
echo; echo "== enid explain P0000002"
$ENID explain P0000002
echo; echo "Demo state is in $DEMO (config enid.toml, state.db). slapd is stopped now."
