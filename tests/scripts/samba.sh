#!/usr/bin/env bash
# Provisions a Samba AD domain controller and starts it on 127.0.0.1, for tests and benchmarks.
#
#   tests/scripts/samba.sh DIR             prints the PID; stop it with `kill PID`
#   WATCH_PID=N tests/scripts/samba.sh DIR the DC also stops when process N ends
#   KEEP=1 tests/scripts/samba.sh DIR      starts the domain already in DIR
#
# DIR is wiped and provisioned anew (about 8 s); with KEEP=1 a domain already in DIR is started
# again instead. The domain is $REALM (default SAMDOM.EXAMPLE.ORG, NetBIOS name
# $DOMAIN, default SAMDOM); the administrator is Administrator@<realm> with password $ADMINPW. The
# DC's LDAP certificate comes from a throwaway CA (DIR/tls/ca.pem) and names IP 127.0.0.1, so
# clients verify it. Every socket is on the loopback interface. Needs root (Samba's LDAP ports are
# 389 and 636, fixed: one DC per machine) and the Debian packages samba, samba-ad-dc, ldb-tools,
# ldap-utils and openssl.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: samba.sh DIR}")
REALM=${REALM:-SAMDOM.EXAMPLE.ORG}
DOMAIN=${DOMAIN:-SAMDOM}
ADMINPW=${ADMINPW:-'Passw0rd!Passw0rd'}
export PATH=$PATH:/usr/sbin:/sbin
command -v samba >/dev/null || { echo "samba is not installed: apt-get install samba samba-ad-dc ldb-tools" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "samba.sh must run as root (the DC listens on ports 389 and 636)" >&2; exit 1; }

if (exec 3<>/dev/tcp/127.0.0.1/636) 2>/dev/null; then
  echo "something already listens on 127.0.0.1:636 (another domain controller?); stop it first" >&2
  exit 1
fi
# A fresh domain unless KEEP=1 and DIR holds one.
if [ "${KEEP:-0}" != 1 ] || [ ! -f "$DIR/etc/smb.conf" ]; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  samba-tool domain provision --targetdir="$DIR" --realm="$REALM" --domain="$DOMAIN" \
    --server-role=dc --dns-backend=NONE --adminpass="$ADMINPW" --host-name=dc1 --host-ip=127.0.0.1 \
    --use-rfc2307 --option="interfaces=lo" --option="bind interfaces only=yes" > "$DIR/provision.log" 2>&1 \
    || { echo "samba-tool domain provision failed:" >&2; tail -20 "$DIR/provision.log" >&2; exit 1; }
  # A certificate the client can verify: from a throwaway CA, for 127.0.0.1.
  T="$DIR/tls"; mkdir -p "$T"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=enid test CA" \
    -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$T/server.key" -out "$T/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$T/ext.cnf"
  openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
    -extfile "$T/ext.cnf" -out "$T/server.pem" 2>/dev/null
  chmod 600 "$T/server.key"
  C="$DIR/etc/smb.conf"
  # Provision copies the machine's DNS forwarder and its own service list: both go. Logs stay in DIR.
  sed -i -e '/dns forwarder/d' -e '/server services/d' -e "s|log file = .*|log file = $DIR/log.%m|" "$C"
  sed -i "/^\[global\]/a\\
	server services = -dns -nbt -wrepl -dnsupdate -ntp_signd\\
	disable netbios = yes\\
	smb ports = 10445\\
	ldb:nosync = true\\
	log level = 1\\
	tls enabled = yes\\
	tls keyfile = $T/server.key\\
	tls certfile = $T/server.pem\\
	tls cafile = $T/ca.pem" "$C"
fi

setsid samba -i -s "$DIR/etc/smb.conf" > "$DIR/samba.out" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$DIR/samba.pid"
if [ -n "${WATCH_PID:-}" ]; then
  # A watchdog: the DC goes when the process that needs it does.
  setsid bash -c "while kill -0 $WATCH_PID 2>/dev/null && kill -0 $PID 2>/dev/null; do sleep 1; done; kill $PID 2>/dev/null" \
    > /dev/null 2>&1 < /dev/null &
fi
for _ in $(seq 1 600); do
  if LDAPTLS_CACERT="$DIR/tls/ca.pem" ldapsearch -x -H ldaps://127.0.0.1 -D "Administrator@${REALM,,}" -w "$ADMINPW" \
       -b "" -s base defaultNamingContext >/dev/null 2>&1; then
    echo "$PID"
    exit 0
  fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
echo "the Samba DC did not start (log: $DIR/samba.out):" >&2
tail -20 "$DIR/samba.out" >&2
kill "$PID" 2>/dev/null || true
exit 1
