#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages), then runs every test.
#
#   tests/scripts/test.sh          (from anywhere; needs root or sudo for apt-get)
#
# The integration tests start their own private slapd on 127.0.0.1 through
# tests/scripts/slapd.sh, one per test, and stop it when the test ends. One scim2-server (PyPI,
# in a virtualenv under target/) serves every SCIM test, each in a tenant of its own; it is
# started here (tests/scripts/scim.sh) and stopped when the tests end; so is one PostgreSQL
# (tests/scripts/postgres.sh, Debian's postgresql), in which each test of the PostgreSQL state
# has a database of its own. One Samba AD domain controller (tests/scripts/samba.sh, provisioned anew each time, about 10 s) serves every Active
# Directory test, each in an OU of its own; it needs root, as Samba's LDAP ports are 389 and 636.
# The web page's tests start chromedriver and a headless Chromium (Debian packages) per test;
# their screenshots are kept under target/test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/sbin

missing=()
{ command -v slapd >/dev/null || [ -x /usr/sbin/slapd ]; } || missing+=(slapd)
command -v ldapsearch >/dev/null || missing+=(ldap-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The web page's tests drive a real headless Chromium through chromedriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || [ -x /usr/lib/chromium/chromedriver ] || missing+=(chromium-driver)
# The PostgreSQL state's tests run against a private server (tests/scripts/postgres.sh).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
for p in samba samba-ad-dc winbind ldb-tools; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi

echo "== scim2-server for the SCIM tests"
SCIM_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SCIM_PID=$(WATCH_PID=$$ tests/scripts/scim.sh "$SCIM_PORT")
export ENID_TEST_SCIM_URL=http://127.0.0.1:$SCIM_PORT

echo "== PostgreSQL for the state store's tests"
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PG_PID=$(WATCH_PID=$$ tests/scripts/postgres.sh "$PWD/target/test-pg" "$PG_PORT")
export ENID_TEST_PG_PORT=$PG_PORT

echo "== Samba AD domain controller for the AD tests"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
AD_DIR=$PWD/target/test-samba
AD_PID=$($SUDO env WATCH_PID=$$ tests/scripts/samba.sh "$AD_DIR")
export ENID_TEST_AD_DIR=$AD_DIR

echo "== cargo test --workspace --all-targets"
LOG=$(mktemp)
trap 'rm -f "$LOG"; kill "$SCIM_PID" "$PG_PID" 2>/dev/null || true; $SUDO kill "$AD_PID" 2>/dev/null || true' EXIT
set +e
cargo test --workspace --all-targets --locked 2>&1 | tee "$LOG"
STATUS=${PIPESTATUS[0]}
set -e
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "cargo test: %d passed, %d failed\n", p, f }' "$LOG"
exit "$STATUS"
