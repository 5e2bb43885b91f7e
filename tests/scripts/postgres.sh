#!/usr/bin/env bash
# Starts a private PostgreSQL (Debian's `postgresql`) on 127.0.0.1 for tests and benchmarks.
#
#   tests/scripts/postgres.sh DIR PORT             prints the postmaster's PID; stop it with `kill PID`
#   WATCH_PID=N tests/scripts/postgres.sh DIR PORT  the server also stops when process N ends
#   REMOVE_AFTER=1 (with WATCH_PID)                  ...and DIR is removed once it has stopped
#                                                    (a test's private cluster: some 1 GB each)
#
# DIR is wiped and gets a new cluster (initdb as the `postgres` system user, which initdb needs
# when run by root), listening on 127.0.0.1:PORT and a unix socket in DIR only, without fsync
# (test data). The superuser `postgres` connects without a password from 127.0.0.1 (trust); the
# role `enid` (password $PG_PASSWORD, default "enid-test-pw") owns the database `enid`, and
# connects with its password (scram-sha-256), as an installation would.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: postgres.sh DIR PORT}")
PORT=${2:?usage: postgres.sh DIR PORT}
PASSWORD=${PG_PASSWORD:-enid-test-pw}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$BIN/initdb" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi

rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --locale=C.UTF-8 --no-sync > "$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
# The superuser from 127.0.0.1 without a password (the test script's own setup), everyone else
# with theirs.
{
  echo "local all all trust"
  echo "host all postgres 127.0.0.1/32 trust"
  echo "host all all 127.0.0.1/32 scram-sha-256"
} > "$DIR/data/pg_hba.conf"
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w -t 30 start \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  > /dev/null || { cat "$DIR/pg.log" >&2; exit 1; }
PID=$(head -1 "$DIR/data/postmaster.pid")
"${AS[@]}" "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -q -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE enid LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE enid OWNER enid" > /dev/null
if [ -n "${WATCH_PID:-}" ]; then
  # A watchdog: the server goes when the process that needs it does.
  CLEAN=""
  if [ "${REMOVE_AFTER:-}" = 1 ]; then
    CLEAN="; while kill -0 $PID 2>/dev/null; do sleep 0.2; done; rm -rf '$DIR'"
  fi
  setsid bash -c "while kill -0 $WATCH_PID 2>/dev/null && kill -0 $PID 2>/dev/null; do sleep 1; done; kill $PID 2>/dev/null$CLEAN" \
    > /dev/null 2>&1 < /dev/null &
fi
echo "$PID"
