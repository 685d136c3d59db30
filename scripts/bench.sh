#!/usr/bin/env bash
# Runs Gatehouse's benchmark suite (README: "Performance") on SQLite and on a throwaway
# PostgreSQL, against a minimal net/http baseline measured in the same run, and writes
# the Markdown table to docs/benchmarks.md. About five minutes on two cores.
#
# Usage: scripts/bench.sh [gatehouse-bench suite flags, e.g. -d 5s -anon 200000]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

find_pg_bin
[ -x "${pg_bin:-/nonexistent}/initdb" ] || { ensure_packages postgresql; find_pg_bin; }
pg_fsync=on
. scripts/lib/postgres.sh

mkdir -p docs
go build -o "$work/gatehouse-bench" ./cmd/gatehouse-bench
"$work/gatehouse-bench" suite -postgres "$pg_url" -out docs/benchmarks.md "$@"
say "wrote docs/benchmarks.md"
