#!/usr/bin/env bash
# Run a command (the test suite) against PostgreSQL through a real PgBouncer in
# transaction pooling mode, as Neon's pooled connection string would put it:
#
#   scripts/pgbouncer-test.sh .venv/bin/python -m pytest -q
#
# A fresh database is made for the run and dropped after. The command gets
#   TEST_DATABASE_URL         the database through PgBouncer (what the app uses)
#   TEST_DATABASE_DIRECT_URL  the same database straight on PostgreSQL (what
#                             migrations and the schema reset use, as
#                             DATABASE_DIRECT_URL would in production)
# Settings: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres): a PostgreSQL
# server that trusts that user; PGBOUNCER (pgbouncer): the binary.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARG...]   e.g. $0 .venv/bin/python -m pytest -q" >&2
    exit 2
fi

pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}
pg_user=${PGUSER:-postgres}
pgbouncer=${PGBOUNCER:-pgbouncer}
database="todo_pgbouncer_$$"

# PgBouncer refuses to run as root.
as_bouncer=()
if [[ $EUID -eq 0 ]]; then
    as_bouncer=(runuser -u postgres --)
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

workdir=$(mktemp -d "${TMPDIR:-/tmp}/pgbouncer-test.XXXXXX")
created_database=false

teardown() {
    local status=$?
    if [[ -s $workdir/pgbouncer.pid ]]; then
        kill "$(cat "$workdir/pgbouncer.pid")" 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -e $workdir/pgbouncer.pid ]] || break
            sleep 0.1
        done
    fi
    if $created_database; then
        psql -X -q -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres \
            -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null || true
    fi
    if [[ $status -ne 0 && -f $workdir/pgbouncer.log ]]; then
        echo "--- pgbouncer.log (last lines)" >&2
        tail -n 20 "$workdir/pgbouncer.log" >&2
    fi
    rm -rf "$workdir"
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(free_port)

# Any database name is passed through (`*`), so tests may create their own.
cat >"$workdir/pgbouncer.ini" <<EOF
[databases]
* = host=$pg_host port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $workdir/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
logfile = $workdir/pgbouncer.log
pidfile = $workdir/pgbouncer.pid
EOF
printf '"%s" ""\n' "$pg_user" >"$workdir/userlist.txt"
if [[ $EUID -eq 0 ]]; then
    chown -R postgres "$workdir"
fi

psql -X -q -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres \
    -c "CREATE DATABASE \"$database\"" >/dev/null
created_database=true

"${as_bouncer[@]}" "$pgbouncer" -d -q "$workdir/pgbouncer.ini"
for _ in $(seq 100); do
    if psql -X -q -h 127.0.0.1 -p "$port" -U "$pg_user" -d "$database" -c "SELECT 1" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
psql -X -q -h 127.0.0.1 -p "$port" -U "$pg_user" -d "$database" -c "SELECT 1" >/dev/null

export TEST_DATABASE_URL="postgresql://$pg_user@127.0.0.1:$port/$database"
export TEST_DATABASE_DIRECT_URL="postgresql://$pg_user@$pg_host:$pg_port/$database"
echo "PgBouncer (transaction pooling) on 127.0.0.1:$port in front of $pg_host:$pg_port/$database" >&2
"$@"
