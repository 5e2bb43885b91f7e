#!/usr/bin/env bash
# Benchmark: enid's Google Workspace and Microsoft Entra targets against the local servers
# (tests/google-server, tests/graph-server) with the services' rate limits scaled down in time:
# Google's 2,400 queries a minute as 400 per 10 s, Graph's 3,000 writes per 150 s as 200 per 10 s.
#
#   tests/bench/cloud-bench.sh [N]                  (default N = 2000)
#   BENCH_ENID=/other/enid tests/bench/cloud-bench.sh [N]
#
# For each target: `enid apply --yes` of N persons (creates), the share of the limit used and the
# most in any window (never above it), then a no-op `enid plan` (Entra: after a second run, by
# the delta query) and what it sent. Goals: >= 90% of the limit, never above; the no-op plan
# sends no writes (Entra: a handful of requests).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${1:-2000}
WORK=${BENCH_DIR:-/tmp/enid-cloud-bench}
if [ -n "${BENCH_ENID:-}" ]; then
  ENID=$BENCH_ENID
else
  cargo build -q --release --bin enid
  ENID=$ROOT/target/release/enid
fi
cargo build -q --release -p cloud-bench
rm -rf "$WORK"; mkdir -p "$WORK"
tests/scripts/gen-persons.sh "$N" 10 > "$WORK/persons.csv"
"$ROOT/target/release/cloud-bench" "$ENID" "$WORK/persons.csv" "$WORK"
