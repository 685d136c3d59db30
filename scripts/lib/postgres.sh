# Sourced by scripts/test.sh and scripts/bench.sh: starts a throwaway PostgreSQL
# cluster (initdb + pg_ctl in a temporary folder, on a free loopback port), stops and
# removes it on exit, and sets pg_url to its admin URL. Needs common.sh and pg_bin; pg_fsync=on keeps durable writes
# (the tests turn it off for speed).
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

# free_port picks a port below Linux's ephemeral range (32768-60999), where outgoing
# connections never take it between this check and the bind.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --no-sync >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; die "initdb failed"; }
# Another program may still bind the port first: then try another, a few times.
for try in 1 2 3 4 5; do
	pg_port=$(free_port)
	say "starting PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
	if "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -t 60 \
		-o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c fsync=${pg_fsync:-off} -c max_connections=300" start >/dev/null; then
		break
	fi
	grep -q "Address already in use" "$work/pg.log" && [ "$try" -lt 5 ] || { cat "$work/pg.log" >&2; die "PostgreSQL did not start"; }
	: >"$work/pg.log"
done

pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
