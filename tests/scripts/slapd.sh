#!/usr/bin/env bash
# Starts a private OpenLDAP slapd on 127.0.0.1 for tests, the demo and benchmarks.
#
#   tests/scripts/slapd.sh DIR PORT     prints the PID; stop it with `kill PID`
#   RESTART=1 tests/scripts/slapd.sh DIR PORT   starts it again on the data already in DIR
#   SEED_LDIF=F tests/scripts/slapd.sh DIR PORT loads the slapcat output F instead of the empty tree
#   TLS_PORT=N tests/scripts/slapd.sh DIR PORT  also serves ldaps:// on N and StartTLS on PORT,
#                                               with a test CA in DIR/tls/ca.pem (needs openssl)
#
# DIR is wiped and filled with a cn=config directory and an mdb database for dc=example,dc=org
# with ou=people and ou=groups. The admin is cn=admin,dc=example,dc=org with password $ROOTPW
# (default "secret"). Nothing listens anywhere but 127.0.0.1 and a unix socket in DIR.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: slapd.sh DIR PORT}")
PORT=${2:?usage: slapd.sh DIR PORT}
NOSYNC=${NOSYNC:-TRUE}
ROOTPW=${ROOTPW:-secret}
SLAPD=$(command -v slapd || echo /usr/sbin/slapd)
[ -x "$SLAPD" ] || { echo "slapd is not installed: apt-get install slapd ldap-utils" >&2; exit 1; }

if [ "${RESTART:-0}" != 1 ]; then
rm -rf "$DIR"
mkdir -p "$DIR/slapd.d" "$DIR/db"
HASH=$(slappasswd -s "$ROOTPW")
TLS_CONFIG=
if [ -n "${TLS_PORT:-}" ]; then
  # A throwaway CA and a server certificate for 127.0.0.1 and localhost.
  T="$DIR/tls"; mkdir -p "$T"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=enid test CA" \
    -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$T/server.key" -out "$T/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$T/ext.cnf"
  openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
    -extfile "$T/ext.cnf" -out "$T/server.pem" 2>/dev/null
  TLS_CONFIG="olcTLSCACertificateFile: $T/ca.pem
olcTLSCertificateFile: $T/server.pem
olcTLSCertificateKeyFile: $T/server.key"
fi
ME="gidNumber=$(id -g)+uidNumber=$(id -u),cn=peercred,cn=external,cn=auth"
cat > "$DIR/config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $DIR/slapd.pid
olcArgsFile: $DIR/slapd.args
olcLogLevel: none
$TLS_CONFIG

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 1000

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=$ME manage by * break

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: dc=example,dc=org
olcRootDN: cn=admin,dc=example,dc=org
olcRootPW: $HASH
olcDbDirectory: $DIR/db
olcDbMaxSize: 8589934592
olcDbNoSync: $NOSYNC
olcDbIndex: objectClass eq
olcDbIndex: uid,cn,mail,employeeNumber eq
olcDbIndex: entryUUID eq
olcAccess: {0}to * by dn.exact=$ME manage by * break
olcAccess: {1}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {2}to * by users read by * none
LDIF
slapadd -n0 -F "$DIR/slapd.d" -l "$DIR/config.ldif" >/dev/null
cat > "$DIR/base.ldif" <<'LDIF'
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups
LDIF
# SEED_LDIF: the whole database from a slapcat (operational attributes such as entryUUID kept)
# instead of the empty tree.
slapadd -n1 -F "$DIR/slapd.d" -l "${SEED_LDIF:-$DIR/base.ldif}" >/dev/null
fi
ENC=$(printf %s "$DIR/ldapi" | sed 's|/|%2F|g')
URLS="ldap://127.0.0.1:$PORT/ ldapi://$ENC/"
[ -z "${TLS_PORT:-}" ] || URLS="$URLS ldaps://127.0.0.1:$TLS_PORT/"
# -d 0 keeps slapd in the foreground, so $! is its PID.
setsid "$SLAPD" -d 0 -F "$DIR/slapd.d" -h "$URLS" > "$DIR/slapd.log" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$DIR/pid"
for _ in $(seq 1 200); do
  if ldapsearch -x -H "ldap://127.0.0.1:$PORT" -b "" -s base namingContexts >/dev/null 2>&1; then
    echo "$PID"
    exit 0
  fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.05
done
echo "slapd did not start on 127.0.0.1:$PORT" >&2
cat "$DIR/slapd.log" >&2
kill "$PID" 2>/dev/null || true
exit 1
