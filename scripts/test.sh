#!/usr/bin/env bash
# Runs every Gatehouse test against real services: a throwaway PostgreSQL cluster
# (initdb + pg_ctl in a temporary folder, on a free loopback port), nginx and Caddy for
# the proxy end-to-end tests, and the race detector. It installs what is missing from
# Debian's packages when run as root; otherwise it says what to install.
#
# Usage: scripts/test.sh [extra go test flags]   (README: "Run all the tests")
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed: install Go 1.26 or newer (https://go.dev/doc/install)"

# --- packages --------------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
need=()
[ -x "${pg_bin:-/nonexistent}/initdb" ] || need+=(postgresql)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing ${need[*]} from Debian's packages"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
		pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	else
		die "missing ${need[*]}: install them (Debian: sudo apt-get install ${need[*]}) and run again"
	fi
fi
export PATH="$PATH:/usr/sbin"

# --- a throwaway PostgreSQL --------------------------------------------------------
work=$(mktemp -d /tmp/gatehouse-test.XXXXXX)
chmod 755 "$work"
as_pg=()
if [ "$(id -u)" = 0 ]; then
	as_pg=(runuser -u postgres --) # initdb and postgres refuse to run as root
	chown postgres "$work"
fi
cleanup() {
	"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
pg_port=$(free_port)
say "starting PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --no-sync >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; die "initdb failed"; }
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -t 60 \
	-o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null ||
	{ cat "$work/pg.log" >&2; die "PostgreSQL did not start"; }

export TEST_GATEHOUSE_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
export TEST_GATEHOUSE_REQUIRE_ALL=1

# --- the tests -------------------------------------------------------------------
say "go vet"
go vet ./...
say "go test -race (SQLite, PostgreSQL, nginx, fuzz seed corpora)"
go test -race -count=1 -timeout 20m "$@" ./...
say "fuzzing the network-facing parsers briefly"
for spec in forwardauth:FuzzForwardedRequest web:FuzzReturnURL config:FuzzLoad; do
	pkg=./internal/${spec%%:*} target=${spec#*:}
	go test -run='^$' -fuzz="^${target}\$" -fuzztime=15s -fuzzminimizetime=0 "$pkg" >/dev/null ||
		die "fuzz target $target found a failure: see $pkg/testdata/fuzz"
done
say "all tests passed"
