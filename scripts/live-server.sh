# Sourced by the scripts that check a live service (contract-test.sh,
# check-typescript-client.sh): a gunicorn started from gunicorn.conf.py, as
# ops run it, on loopback and a fresh database, stopped (and the database
# dropped) when the script exits.
#
#   source scripts/live-server.sh
#   start_live_server sqlite|postgresql PYTHON   # sets base_url, workdir
#   token=$(login_token someone@example.com access_token)
#
# PYTHON is the virtualenv's python (its flask and gunicorn are used);
# PGHOST, PGPORT, PGUSER as for psql.

live_pg_host=${PGHOST:-127.0.0.1}
live_pg_port=${PGPORT:-5432}
live_pg_user=${PGUSER:-postgres}
live_database="todo_live_$$"
live_server_pid=
live_created_database=false
workdir=$(mktemp -d "${TMPDIR:-/tmp}/live-server.XXXXXX")

stop_live_server() {
    local status=$?
    if [[ -n $live_server_pid ]]; then
        kill "$live_server_pid" 2>/dev/null || true
        wait "$live_server_pid" 2>/dev/null || true
    fi
    if $live_created_database; then
        dropdb --if-exists --force -h "$live_pg_host" -p "$live_pg_port" -U "$live_pg_user" \
            "$live_database" >/dev/null 2>&1 || true
    fi
    if [[ $status -ne 0 && -f $workdir/server.log ]]; then
        echo "--- server log (last lines)" >&2
        tail -n 20 "$workdir/server.log" >&2
    fi
    rm -rf "$workdir"
    exit "$status"
}
trap stop_live_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_live_server() {
    local backend=$1 python=$2 port
    [[ $python == /* ]] || python=$PWD/$python
    live_python=$python
    local venv_bin
    venv_bin=$(dirname "$python")
    if [[ $backend == sqlite ]]; then
        DATABASE_URL="sqlite:///$workdir/todo.sqlite3"
    else
        createdb -h "$live_pg_host" -p "$live_pg_port" -U "$live_pg_user" "$live_database"
        live_created_database=true
        DATABASE_URL="postgresql://$live_pg_user@$live_pg_host:$live_pg_port/$live_database"
    fi
    export DATABASE_URL
    JWT_SECRET_KEY=$("$python" -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_SECRET_KEY
    export AUTO_MIGRATE=0
    unset DATABASE_DIRECT_URL

    "$venv_bin/flask" db upgrade >"$workdir/migrate.log" 2>&1 || {
        cat "$workdir/migrate.log" >&2
        exit 1
    }
    port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base_url="http://127.0.0.1:$port"
    "$python" -m gunicorn -c gunicorn.conf.py --bind "127.0.0.1:$port" wsgi:app \
        >"$workdir/server.log" 2>&1 &
    live_server_pid=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$base_url/healthz" 2>/dev/null && return 0
        kill -0 "$live_server_pid" 2>/dev/null || { echo "gunicorn exited" >&2; exit 1; }
        sleep 0.2
    done
    echo "gunicorn did not answer /healthz" >&2
    exit 1
}

# A real account and one of its real tokens (access_token or refresh_token),
# through the API itself.
login_token() {
    local email=$1 kind=$2 password=live-server-password body
    body=$(printf '{"email": "%s", "password": "%s"}' "$email" "$password")
    curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$body" \
        "$base_url/api/auth/register"
    curl -fsS -H 'Content-Type: application/json' -d "$body" "$base_url/api/auth/login" |
        "$live_python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$kind"
}
