#!/usr/bin/env bash
# Runs Gatehouse's benchmark suite (README: "Performance") on SQLite and on a throwaway
# PostgreSQL, against a bare net/http baseline and nginx without auth measured in the
# same run, and writes the Markdown table to docs/benchmarks.md. Load comes from wrk
# (Debian's package) pinned to one core, the servers run pinned to the other, and the
# hot-path comparisons are interleaved rounds; a ratio is printed only when the
# reference saturated its core. About ten minutes on two cores.
#
# Usage: scripts/bench.sh [gatehouse-bench suite flags, e.g. -d 5s -rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

find_pg_bin
need=()
[ -x "${pg_bin:-/nonexistent}/initdb" ] || need+=(postgresql)
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
ensure_packages "${need[@]}"
find_pg_bin
pg_fsync=on
. scripts/lib/postgres.sh

mkdir -p docs
go build -o "$work/gatehouse-bench" ./cmd/gatehouse-bench
"$work/gatehouse-bench" suite -postgres "$pg_url" -out docs/benchmarks.md "$@"
say "wrote docs/benchmarks.md"
