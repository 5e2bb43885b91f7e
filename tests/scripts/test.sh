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

echo "== cargo test --workspace"
cargo test --workspace --locked 2>&1
