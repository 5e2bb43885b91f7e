#!/usr/bin/env bash
# Starts the PyPI scim2-server (an in-memory SCIM 2.0 server) on 127.0.0.1 for tests and
# benchmarks, installing it into a virtualenv on first use.
#
#   tests/scripts/scim.sh PORT             prints the PID; stop it with `kill PID`
#   WATCH_PID=N tests/scripts/scim.sh PORT the server also stops when process N ends
#
# The server takes the bearer token $SCIM_TOKEN (default "testtoken") and creates a tenant on the
# first request to /TENANT (--dynamic-tenants), so tests that share one server each use a base
# URL of their own: http://127.0.0.1:PORT/<tenant>. The virtualenv is $ENID_TEST_VENV (default
# target/test-venv); it needs python3 with venv (Debian: python3-venv). SCIM_LOG names the file the
# server logs each request to (default: a temporary file).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${1:?usage: scim.sh PORT}
VENV=${ENID_TEST_VENV:-$PWD/target/test-venv}
TOKEN=${SCIM_TOKEN:-testtoken}
VERSION=0.8.3
if [ ! -x "$VENV/bin/scim2-server" ]; then
  mkdir -p "$(dirname "$VENV")"
  # One installer at a time: tests starting together share the virtualenv.
  exec 9>"$VENV.lock"
  flock 9
  if [ ! -x "$VENV/bin/scim2-server" ]; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q "scim2-server==$VERSION" >&2
  fi
  flock -u 9
fi
LOG=${SCIM_LOG:-$(mktemp -t scim2-server.XXXXXX.log)}
setsid "$VENV/bin/scim2-server" --hostname 127.0.0.1 --port "$PORT" --bearer-token "$TOKEN" --dynamic-tenants \
  > "$LOG" 2>&1 < /dev/null &
PID=$!
if [ -n "${WATCH_PID:-}" ]; then
  # A watchdog: the server goes when the process that needs it does.
  setsid bash -c "while kill -0 $WATCH_PID 2>/dev/null && kill -0 $PID 2>/dev/null; do sleep 1; done; kill $PID 2>/dev/null" \
    > /dev/null 2>&1 < /dev/null &
fi
for _ in $(seq 1 200); do
  if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()' \
       "$PORT" 2>/dev/null; then
    echo "$PID"
    exit 0
  fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.05
done
echo "scim2-server did not start on 127.0.0.1:$PORT" >&2
cat "$LOG" >&2
kill "$PID" 2>/dev/null || true
exit 1
