#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages), then runs every test.
#
#   tests/scripts/test.sh          (from anywhere; needs root or sudo for apt-get)
#
# The integration tests start their own private slapd on 127.0.0.1 through
# tests/scripts/slapd.sh, one per test, and stop it when the test ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/sbin

missing=()
{ command -v slapd >/dev/null || [ -x /usr/sbin/slapd ]; } || missing+=(slapd)
command -v ldapsearch >/dev/null || missing+=(ldap-utils)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi

echo "== cargo test --workspace --all-targets"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
set +e
cargo test --workspace --all-targets --locked 2>&1 | tee "$LOG"
STATUS=${PIPESTATUS[0]}
set -e
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "cargo test: %d passed, %d failed\n", p, f }' "$LOG"
exit "$STATUS"
