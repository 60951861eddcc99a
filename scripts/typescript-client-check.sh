#!/usr/bin/env bash
# The typed TypeScript client in clients/typescript/, end to end: generate its
# types from the OpenAPI document the service serves, type-check it
# (tsc --noEmit --strict), then run its walkthrough against a live gunicorn
# started from gunicorn.conf.py on a free port, on a throwaway SQLite
# database. Exits non-zero on the first unexpected answer. Needs `npm ci`
# first and the Python venv (VENV, default .venv).
#
#   scripts/typescript-client-check.sh         # or: npm run client:check
#   scripts/typescript-client-check.sh URL     # only the walkthrough, against a running server
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN=node_modules/.bin

step() { printf -- '--- %s\n' "$*"; }

step "types from the served document"
"$VENV/bin/python" scripts/dump_openapi.py build/openapi.json
# With the rules a consumer's generator applies by default (see the config).
"$BIN/openapi-typescript" build/openapi.json --redocly clients/typescript/redocly.yaml \
  --output clients/typescript/schema.d.ts

step "type-check and build"
"$BIN/tsc" --project clients/typescript --noEmit --strict
rm -rf build/typescript-client
"$BIN/tsc" --project clients/typescript

if [ $# -gt 0 ]; then
  step "walkthrough against $1"
  exec node build/typescript-client/walkthrough.js "$1"
fi

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
  local status=$?
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$WORK/server.log" ]; then
    echo "--- last server log lines:" >&2
    tail -n 30 "$WORK/server.log" >&2
  fi
  rm -rf "$WORK"
}
trap stop_server EXIT

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
# What the service needs: a database (migrated by the release step) and a
# signing key; cheap password hashes and no login limits keep the run short.
export DATABASE_URL="sqlite:///$WORK/todo.sqlite3"
JWT_SECRET_KEY=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
export JWT_SECRET_KEY
export ARGON2_TIME_COST=1 ARGON2_MEMORY_COST=1024 RATELIMIT_ENABLED=false
export AUTO_MIGRATE=0 WEB_CONCURRENCY=2 PORT LOG_LEVEL=WARNING
unset DATABASE_DIRECT_URL

step "live server on $URL (SQLite, gunicorn.conf.py)"
"$VENV/bin/flask" --app wsgi db upgrade >"$WORK/migrate.log" 2>&1 || {
  cat "$WORK/migrate.log" >&2
  exit 1
}
# Bound to the loopback only; everything else as gunicorn.conf.py says.
"$VENV/bin/gunicorn" -c gunicorn.conf.py --bind "127.0.0.1:$PORT" wsgi:app \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "gunicorn exited at start-up" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "$URL/healthz"

step "walkthrough"
node build/typescript-client/walkthrough.js "$URL"
