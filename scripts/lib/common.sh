# Sourced by the scripts in scripts/: messages, and installing missing Debian packages
# when run as root (otherwise saying what to install).

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed: install Go 1.26 or newer (https://go.dev/doc/install)"
export PATH="$PATH:/usr/sbin"

# ensure_packages PKG... installs the named Debian packages unless already present.
ensure_packages() {
	[ $# -gt 0 ] || return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing $* from Debian's packages"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends "$@" >/dev/null
	else
		die "missing $*: install them (Debian: sudo apt-get install $*) and run again"
	fi
}

# pg_bin is the newest installed PostgreSQL server's bin folder ("" if none).
find_pg_bin() { pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true); }
