# Sourced after postgres.sh: starts Debian's PgBouncer in transaction pooling mode in
# front of the throwaway cluster (any database name passes through), stops it on exit,
# and sets pgbouncer_url. Gatehouse must work through it exactly as it does directly.
pb_port=$(free_port)
mkdir -p "$work/pgbouncer"
printf '"postgres" ""\n' >"$work/pgbouncer/userlist.txt"
cat >"$work/pgbouncer/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pb_port
unix_socket_dir =
auth_type = trust
auth_file = $work/pgbouncer/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
logfile = $work/pgbouncer/pgbouncer.log
pidfile = $work/pgbouncer/pgbouncer.pid
INI
[ "$(id -u)" = 0 ] && chown -R postgres "$work/pgbouncer"
say "starting PgBouncer (transaction mode) on 127.0.0.1:$pb_port"
"${as_pg[@]}" pgbouncer -d "$work/pgbouncer/pgbouncer.ini" ||
	{ cat "$work/pgbouncer/pgbouncer.log" >&2 2>/dev/null; die "PgBouncer did not start"; }
# On the way out, a PgBouncer that stopped early (which fails every test using it) shows
# its log, so that the failures say why.
stop_pgbouncer() {
	if ! kill "$(cat "$work/pgbouncer/pgbouncer.pid" 2>/dev/null)" 2>/dev/null; then
		say "PgBouncer had stopped before the end; the end of its log:"
		tail -n 30 "$work/pgbouncer/pgbouncer.log" >&2 2>/dev/null || true
	fi
}
trap 'stop_pgbouncer; cleanup' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$pb_port") 2>/dev/null && break; sleep 0.1; done
pgbouncer_url="postgres://postgres@127.0.0.1:$pb_port/postgres?sslmode=disable"
