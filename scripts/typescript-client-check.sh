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

# Cheap password hashes and no login limits keep the run short.
export ARGON2_TIME_COST=1 ARGON2_MEMORY_COST=1024 RATELIMIT_ENABLED=false
export WEB_CONCURRENCY=2 LOG_LEVEL=WARNING

# shellcheck source=scripts/live-server.sh
source scripts/live-server.sh
step "live server (SQLite, gunicorn.conf.py)"
start_live_server sqlite "$VENV/bin/python"

step "walkthrough against $base_url"
node build/typescript-client/walkthrough.js "$base_url"
